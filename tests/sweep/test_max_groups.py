"""``[data] max_groups``: a sweep refuses an attribute with more groups than the limit before any work, naming the
matrix setting, and one that raises it scores that attribute (~15 s: the bundled TFLite model, no training)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from ondevice_audit.cli import app
from ondevice_audit.metrics import defaults
from ondevice_audit.report.document import load_report

runner = CliRunner()
REPO = Path(__file__).resolve().parents[2]
SYNTH_KWS = REPO / "datasets" / "synth-kws"
MODEL = REPO / "models" / "kws-ds-cnn" / "model.tflite"
MATRIX = """runtime = "litert"
[data]
manifest = "manifest.csv"
groups = ["gender", "clip"]
split = [0.1, 0.0, 0.9]
bootstrap = 0
permutations = 0
[training]
latency_samples = 2
"""


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """60 speakers' clips, each with its own ``clip`` id: an id column given as a group, as users do by mistake."""
    root = tmp_path_factory.mktemp("max-groups")
    manifest = pd.read_csv(SYNTH_KWS / "manifest.csv")
    speakers = sorted(manifest["speaker"].unique())[:60]
    rows = manifest[manifest["speaker"].isin(speakers)].reset_index(drop=True)
    for relative in rows["path"]:
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(SYNTH_KWS / relative, root / relative)
    rows.assign(clip=[f"c{i}" for i in range(len(rows))]).to_csv(root / "manifest.csv", index=False)
    shutil.copyfile(MODEL, root / "model.tflite")
    return root


def _sweep(root: Path, matrix: str, out: str) -> object:
    (root / f"{out}.toml").write_text(matrix)
    argv = ["sweep", "-m", str(root / f"{out}.toml"), "--model", str(root / "model.tflite"), "--out",
            str(root / out), "--cache", str(root / "cache"), "--quiet"]  # fmt: skip
    return runner.invoke(app, argv)


def test_the_default_limit_refuses_before_any_work_naming_the_matrix_setting(world: Path) -> None:
    result = _sweep(world, MATRIX, "refused")
    assert result.exit_code == 2, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "--max-groups" not in errors[0], result.stderr
    n = int(errors[0].split("clip has ")[1].split(" groups")[0])
    assert n > defaults.MAX_GROUPS
    assert f"more than data.max_groups {defaults.MAX_GROUPS}" in errors[0]
    assert f"set data.max_groups = {n} in refused.toml" in errors[0]
    assert not (world / "refused").exists() and not (world / "cache").exists()  # nothing computed, nothing written


def test_a_raised_limit_scores_the_attribute(world: Path) -> None:
    result = _sweep(world, MATRIX.replace("[data]\n", "[data]\nmax_groups = 1000\n"), "raised")
    assert result.exit_code == 0, result.output
    report = load_report(world / "raised" / "cells" / "baseline" / "report.json")
    scored = pd.read_csv(world / "raised" / "cells" / "baseline" / "predictions.csv", dtype=str)
    clip = next(a for a in report["attributes"] if a["name"] == "clip")
    assert len(clip["groups"]) == scored["clip"].nunique() == len(scored) > defaults.MAX_GROUPS
    assert report["settings"]["max_groups"] == 1000
    gender = next(a for a in report["attributes"] if a["name"] == "gender")
    for group in gender["groups"]:
        rows = scored[scored["gender"] == group["name"]]
        assert group["metrics"]["accuracy"] == pytest.approx((rows["label"] == rows["prediction"]).mean())
