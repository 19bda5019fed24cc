"""`compare`: two sweeps matched cell by cell on the factor levels they share."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from ondevice_audit.cli import app
from ondevice_audit.errors import UsageError
from ondevice_audit.sweep import compare_sweeps

runner = CliRunner()
FACTORS = ["sample_rate", "pruning.final_sparsity", "quantization"]


def write_sweep(folder: Path, rows: list[tuple], *, metric: str = "accuracy", epochs: int = 5) -> Path:
    folder.mkdir(parents=True)
    state = {
        "factors": FACTORS,
        "metric": metric,
        "bias_attribute": "gender",
        "settings": {"data": {"manifest": "m.csv"}, "training": {"epochs": epochs}, "factors": {}},
    }
    (folder / "sweep.json").write_text(json.dumps(state))
    columns = ["cell", "status", *FACTORS, metric, "rb"]
    pd.DataFrame([(cell, "ok", *rest) for cell, *rest in rows], columns=columns).to_csv(
        folder / "results.csv", index=False
    )
    return folder


def test_a_factor_held_at_different_levels_is_what_is_compared(tmp_path: Path) -> None:
    a = write_sweep(tmp_path / "a", [("a0", 16000, 0.0, "f32", 0.90, 0.10), ("a1", 16000, 0.5, "f32", 0.85, 0.20)])
    b = write_sweep(
        tmp_path / "b",
        [
            ("b0", 8000, 0.0, "f32", 0.88, 0.15),
            ("b1", 8000, 0.5, "f32", 0.86, 0.12),
            ("b2", 8000, 0.8, "f32", 0.7, 0.3),
        ],
        epochs=10,
    )
    comparison = compare_sweeps(a, b)
    assert comparison.compared == {"sample_rate": (16000, 8000)}
    assert comparison.matched_on == ("pruning.final_sparsity", "quantization")
    table = comparison.table
    assert list(table["cell_a"]) == ["a0", "a1"] and list(table["cell_b"]) == ["b0", "b1"]
    assert list(table["pruning.final_sparsity"]) == [0.0, 0.5]
    assert table["accuracy_delta"].tolist() == pytest.approx([-0.02, 0.01])
    assert table["rb_delta"].tolist() == pytest.approx([0.05, -0.08])
    assert (comparison.only_a, comparison.only_b) == (0, 1)
    assert comparison.settings == ["training.epochs: 5 -> 10"]


def test_cli_prints_deltas_and_writes_csv(tmp_path: Path) -> None:
    a = write_sweep(tmp_path / "a", [("a0", 16000, 0.0, "f32", 0.90, 0.10), ("a1", 16000, 0.0, "int8", 0.89, 0.11)])
    b = write_sweep(tmp_path / "b", [("b0", 16000, 0.0, "int8", 0.91, 0.05), ("b1", 16000, 0.0, "f32", 0.92, 0.08)])
    result = runner.invoke(app, ["compare", str(a), str(b), "--output", str(tmp_path / "pairs.csv")])
    assert result.exit_code == 0, result.output
    assert "2 matched cell(s) on sample_rate, pruning.final_sparsity, quantization" in result.output
    pairs = pd.read_csv(tmp_path / "pairs.csv")
    assert dict(zip(pairs["cell_a"], pairs["cell_b"], strict=True)) == {"a0": "b1", "a1": "b0"}
    assert pairs.set_index("cell_a")["rb_delta"].to_dict() == pytest.approx({"a0": -0.02, "a1": -0.06})


def test_refuses_what_cannot_be_compared(tmp_path: Path) -> None:
    a = write_sweep(tmp_path / "a", [("a0", 16000, 0.0, "f32", 0.9, 0.1)])
    mcc = write_sweep(tmp_path / "mcc", [("m0", 16000, 0.0, "f32", 0.8, 0.1)], metric="mcc")
    with pytest.raises(UsageError, match="not comparable"):
        compare_sweeps(a, mcc)
    disjoint = write_sweep(tmp_path / "d", [("d0", 8000, 0.5, "f32", 0.9, 0.1), ("d1", 8000, 0.8, "f32", 0.9, 0.1)])
    with pytest.raises(UsageError, match="no cells in common"):
        compare_sweeps(a, disjoint)
    result = runner.invoke(app, ["compare", str(a), str(tmp_path / "nowhere")])
    assert result.exit_code == 2 and "is not a finished sweep" in result.output
