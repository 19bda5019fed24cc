"""Mitigation as a sweep factor: matrix checks, cache keys, real training of none vs reweight, the summary.

The 2-cell run trains on the tone dataset with the female speakers thinned to a 30 % share (2 of 6 training
speakers), so reweighting has something to do: female clips weigh 2, male ones 2/3.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from ondevice_audit.cli import app
from ondevice_audit.errors import UsageError
from ondevice_audit.report.document import load_report
from ondevice_audit.sweep import Cache, load_matrix, parse_matrix, run_sweep
from ondevice_audit.sweep.stages import build_plan, prepare_context

runner = CliRunner()
IMBALANCE = 'train_imbalance = "gender=female:0.3"\n'


def with_data(path: Path, extra: str) -> Path:
    """Add ``extra`` keys to the matrix's [data] table."""
    path.write_text(path.read_text().replace('metric = "accuracy"\n', 'metric = "accuracy"\n' + extra))
    return path


@pytest.mark.parametrize(
    ("top", "data", "named"),
    [
        ('mitigation = ["none", "fair"]\n', "", "mitigation = 'fair' is not valid"),
        ("", 'mitigation_group = "age"\n', "data.mitigation_group = 'age'"),
        ("", 'train_imbalance = "gender=female"\n', "data.train_imbalance"),
        ("", 'train_imbalance = "age=old:0.2"\n', "'age', which is not one of data.groups"),
    ],
)
def test_a_bad_mitigation_setting_is_refused_naming_it(top: str, data: str, named: str) -> None:
    text = top + '[data]\nmanifest = "m.csv"\ngroups = ["gender", "accent"]\n' + data
    with pytest.raises(UsageError) as caught:
        parse_matrix(tomllib.loads(text), Path("x.toml"))
    assert named in str(caught.value)


def test_reweight_heldout_needs_a_validation_split() -> None:
    text = 'mitigation = "reweight-heldout"\n[data]\nmanifest = "m.csv"\ngroups = ["gender"]\nsplit = [0.8, 0, 0.2]\n'
    with pytest.raises(UsageError, match="reweight-heldout needs a validation share"):
        parse_matrix(tomllib.loads(text), Path("x.toml"))


def test_mitigation_and_imbalance_enter_the_training_and_pruning_keys(
    tone_dataset: Path, tmp_path: Path, write_matrix
) -> None:
    factors = 'mitigation = ["none", "balanced"]\n[pruning]\nfinal_sparsity = 0.5\n'
    plain = load_matrix(write_matrix(tmp_path / "plain", tone_dataset, factors))
    thinned = load_matrix(with_data(write_matrix(tmp_path / "thin", tone_dataset, factors), IMBALANCE))
    assert [c.mitigation for c in plain.cells] == ["none", "balanced"] and plain.data.mitigation_group == "gender"
    cache = Cache(tmp_path / "cache")
    keys = {}
    for name, matrix in (("plain", plain), ("thin", thinned)):
        plan = build_plan(prepare_context(matrix, cache.root), cache)
        for index, cell in enumerate(plan.cells):
            keys[name, index] = {plan.tasks[k].stage: k for k in cell.chain}
        balanced = plan.tasks[keys[name, 1]["prune"]].settings
        assert dataclasses.asdict(balanced)["mitigation"] == {"name": "balanced", "group": "gender"}
    assert keys["plain", 0]["features"] == keys["plain", 1]["features"]
    assert keys["plain", 0]["train"] != keys["plain", 1]["train"]
    assert keys["plain", 0]["prune"] != keys["plain", 1]["prune"]
    # Thinning the training speakers is new features, so new everything downstream.
    assert keys["plain", 0]["features"] != keys["thin", 0]["features"]
    assert keys["plain", 0]["train"] != keys["thin", 0]["train"]
    context = prepare_context(thinned, cache.root)
    train = context.frames["train"]
    assert (train["gender"] == "female").mean() <= 0.3 and train["speaker"].nunique() == 8


@pytest.fixture(scope="module")
def mitigated(tmp_path_factory: pytest.TempPathFactory, tone_dataset: Path, write_matrix) -> tuple[Path, str]:
    root = tmp_path_factory.mktemp("mitigated")
    path = write_matrix(
        root,
        tone_dataset,
        'architecture = "ds-cnn"\nmitigation = ["none", "reweight"]\n',
        epochs=8,
        batch_size=16,
        learning_rate=0.01,
    )
    with_data(path, IMBALANCE)
    out = root / "run"
    result = runner.invoke(app, ["sweep", "-m", str(path), "--out", str(out), "--cache", str(root / "cache")])
    assert result.exit_code == 0, result.output
    return out, result.output


def test_cells_differ_in_their_training_and_the_weights_are_recorded(mitigated: tuple[Path, str]) -> None:
    out, _ = mitigated
    results = pd.read_csv(out / "results.csv")
    assert list(results["status"]) == ["ok", "ok"] and list(results["mitigation"]) == ["none", "reweight"]
    trained = [
        load_report(out / "cells" / cell / "report.json")["model"]["metadata"]["extra"]["training"]
        for cell in results["cell"]
    ]
    assert trained[0]["mitigation"] == {"name": "none"}
    assert trained[1]["mitigation"]["name"] == "reweight" and trained[1]["mitigation"]["group"] == "gender"
    weights = trained[1]["mitigation"]["sample_weight_by_group"]
    assert weights == pytest.approx({"female": 2.0, "male": 2 / 3})
    assert trained[0]["train_imbalance"] == "gender=female:0.3" and trained[0]["train_clips"] == 72
    assert results["rb"].notna().all()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["cache"]["misses"]["train"] == 2 and summary["cache"]["misses"]["features"] == 1


def test_the_summary_compares_each_mitigation_with_none(mitigated: tuple[Path, str]) -> None:
    out, printed = mitigated
    results = pd.read_csv(out / "results.csv")
    (effect,) = json.loads((out / "summary.json").read_text())["analysis"]["mitigation"]
    assert effect["level"] == "reweight" and effect["pairs"] == [list(results["cell"])]
    # The point estimate is the difference of the two cells' own RB and accuracy, on the same test clips.
    assert effect["rb_change"] == pytest.approx(results["rb"].iloc[1] - results["rb"].iloc[0])
    assert effect["metric_change"] == pytest.approx(results["accuracy"].iloc[1] - results["accuracy"].iloc[0])
    low, high = effect["rb_ci"]
    assert low < high and effect["resampling"] == "paired speaker bootstrap"
    assert effect["metric_ci"][0] < effect["metric_ci"][1]
    assert "## What each mitigation changes" in (out / "summary.md").read_text()
    assert "What each mitigation changes, against none" in printed


@pytest.mark.slow
def test_every_mitigation_trains_and_fine_tunes(tone_dataset: Path, tmp_path: Path, write_matrix) -> None:
    factors = (
        'architecture = "ds-cnn"\nmitigation = ["balanced", "reweight-heldout"]\n[pruning]\nfinal_sparsity = 0.5\n'
    )
    path = with_data(write_matrix(tmp_path, tone_dataset, factors), IMBALANCE)
    result = run_sweep(load_matrix(path), tmp_path / "run", cache_dir=tmp_path / "cache")
    assert list(result.results["status"]) == ["ok", "ok"], list(result.results["error"])
    assert result.cache["misses"]["train"] == 2 and result.cache["misses"]["prune"] == 2
    pruned = [json.loads(p.read_text()) for p in sorted((tmp_path / "cache").rglob("prune.json"))]
    assert sorted(p["mitigation"]["name"] for p in pruned) == ["balanced", "reweight-heldout"]
    heldout = load_report(tmp_path / "run" / "cells" / result.results["cell"].iloc[1] / "report.json")
    weights = heldout["model"]["metadata"]["extra"]["training"]["mitigation"]["group_weight_history"]
    assert len(weights) == 2 and set(weights[-1]["weight"]) == {"female", "male"}
    assert result.analysis.mitigation == ()  # no "none" cell to compare with
