"""The world every bad-input case starts from: small, valid inputs of every kind, built once and copied per case.

``world/`` holds a predictions file, a manifest of 44 bundled clips with a split file, the bundled TFLite model
and its labels, a score report, a gate configuration and a small sweep matrix. Each case gets its own copy as
its working folder, so a case that wrongly writes or overwrites shows up as a changed file.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[2]
BUNDLED = REPO / "datasets" / "synth-kws"
MODEL = REPO / "models" / "kws-ds-cnn" / "model.tflite"
LABELS = ["_unknown_", "down", "go", "left", "no", "off", "on", "right", "stop", "up", "yes"]


def _predictions(path: Path) -> None:
    rng = np.random.default_rng(0)
    n = 240
    speaker = rng.integers(0, 12, n)
    truth = np.array(["yes", "no", "_unknown_"])[rng.integers(0, 3, n)]
    right = rng.random(n) < 0.8
    prediction = np.where(right, truth, "no")
    gender = np.where(speaker % 2 == 0, "female", "male")
    pd.DataFrame({"label": truth, "prediction": prediction, "gender": gender, "speaker": speaker}).to_csv(
        path, index=False
    )


def _dataset(root: Path) -> None:
    """44 bundled clips (4 speakers x 11 labels) with their rows, and a split file that puts 2 speakers in test."""
    manifest = pd.read_csv(BUNDLED / "manifest.csv", dtype=str)
    speakers = sorted(manifest["speaker"].unique())
    chosen = manifest[manifest["speaker"].isin([speakers[0], speakers[1], speakers[-2], speakers[-1]])]
    for relative in chosen["path"]:
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(BUNDLED / relative, root / relative)
    chosen.to_csv(root / "manifest.csv", index=False)
    test = chosen["speaker"].isin([speakers[1], speakers[-1]])
    chosen[["path", "label", "speaker"]].assign(split=np.where(test, "test", "train")).to_csv(
        root / "split.csv", index=False
    )


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from typer.testing import CliRunner

    from ondevice_audit.cli import app

    root = tmp_path_factory.mktemp("world")
    _predictions(root / "p.csv")
    _dataset(root / "data")
    shutil.copyfile(MODEL, root / "model.tflite")
    (root / "labels.txt").write_text("\n".join(LABELS) + "\n")
    (root / "gate.toml").write_text("[tool.ondevice-audit.gate]\nmax_rb = 0.5\n")
    args = ["score", str(root / "p.csv"), "-g", "gender", "--bootstrap", "100", "--permutations", "100", "-f", "json"]
    result = CliRunner().invoke(app, [*args, "-o", str(root / "report.json")], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    (root / "matrix.toml").write_text(
        'sample_rate = 16000\nfeatures = "mfcc"\narchitecture = "cnn-trad-fpool3"\n\n[data]\n'
        'manifest = "data/manifest.csv"\ngroups = ["gender"]\nsplit = [0.5, 0.0, 0.5]\n'
    )
    return root
