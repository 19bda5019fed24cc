"""``[explain] top_layers`` in a sweep matrix: ``int8-keepN`` cells, planned, trained once, exported, audited."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

from ondevice_audit.cli import app
from ondevice_audit.errors import UsageError
from ondevice_audit.export.metadata import read_metadata
from ondevice_audit.sweep.matrix import parse_matrix

runner = CliRunner()
_DATA = '[data]\nmanifest = "m.csv"\ngroups = ["gender"]\n'


def _parse(text: str) -> Any:
    return parse_matrix(tomllib.loads(text), Path("/tmp/m.toml"))


def test_top_layers_adds_int8_keep_levels_after_int8_and_only_for_tflite() -> None:
    plain = _parse('quantization = ["f32", "int8"]\nexport = ["tflite", "onnx"]\n' + _DATA)
    matrix = _parse(
        'quantization = ["f32", "int8"]\nexport = ["tflite", "onnx"]\n' + _DATA + "[explain]\ntop_layers = 2\n"
    )
    assert dict(matrix.levels)["quantization"] == ("f32", "int8", "int8-keep1", "int8-keep2")
    cells = [(c.quantization, c.export) for c in matrix.cells]
    assert ("int8-keep1", "tflite") in cells and ("int8-keep2", "onnx") not in cells and matrix.skipped == 2
    kept = {c.id for c in plain.cells}
    assert kept <= {c.id for c in matrix.cells}  # the other cells keep their ids
    assert "explain" not in plain.to_dict() and matrix.to_dict()["explain"] == {"top_layers": 2}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('quantization = "f32"\n' + _DATA + "[explain]\ntop_layers = 1\n", "quantization must include int8"),
        (_DATA + "[explain]\ntop_layers = -1\n", "explain.top_layers must be 0 (off) or more"),
        (_DATA + "[explain]\ntop = 1\n", "unknown key(s) explain.top; known keys: explain.top_layers"),
        ('explain = "yes"\n' + _DATA, "explain must be a table"),
    ],
)
def test_bad_explain_tables(text: str, expected: str) -> None:
    with pytest.raises(UsageError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        _parse(text)


def test_int8_keep_cells_run_end_to_end(tmp_path: Path, tone_dataset: Path, write_matrix) -> None:
    matrix = write_matrix(tmp_path, tone_dataset, 'quantization = ["f32", "int8"]\n[explain]\ntop_layers = 2\n')
    result = runner.invoke(app, ["sweep", "--matrix", str(matrix), "--out", str(tmp_path / "run"), "--cache",
                                 str(tmp_path / "cache")])  # fmt: skip
    assert result.exit_code == 0, result.output
    results = pd.read_csv(tmp_path / "run" / "results.csv")
    assert list(results["quantization"]) == ["f32", "int8", "int8-keep1", "int8-keep2"]
    assert list(results["status"]) == ["ok"] * 4 and results["rb"].notna().all()
    kept = []
    for _, row in results.iloc[2:].iterrows():
        n = int(row["quantization"][-1])
        path = tmp_path / "run" / "cells" / row["cell"] / f"model-int8-keep{n}.tflite"
        metadata = read_metadata(path)
        assert metadata is not None and metadata.extra["quantization"] == f"int8-keep{n}"
        facts = metadata.extra["explain"]
        assert facts["split"] == "val" and facts["attribute"] == "gender" and facts["requested"] == n
        assert len(metadata.extra["kept_in_float"]) <= n
        kept.append(metadata.extra["kept_in_float"])
        assert row["size_bytes"] >= results.iloc[1]["size_bytes"] or not metadata.extra["kept_in_float"]
    assert kept[1][: len(kept[0])] == kept[0]  # the same ranking, one layer more

    # explain on the int8 cell against the f32 cell: the sweep's test speakers, int8 rebuilt from its training split
    cells = tmp_path / "run" / "cells"
    out = tmp_path / "explained"
    result = runner.invoke(app, ["explain", str(cells / results.iloc[1]["cell"]), "--base", str(cells / results.iloc[0]["cell"]),
                                 "--data", str(tone_dataset), "-g", "gender", "--bootstrap", "200", "--out", str(out),
                                 "--latency-samples", "2"])  # fmt: skip
    assert result.exit_code == 0, result.output
    document = json.loads((out / "explain.json").read_text())
    rebuilt = next(run for run in document["runs"] if run["role"] == "rebuilt")
    assert rebuilt["agreement_with_variant"] == 1.0 and rebuilt["max_score_difference_to_variant"] == 0.0
    assert document["samples"]["total"] == results.iloc[1]["n_test"]
    assert document["settings"]["rows"] == "the sweep's test split"
    assert document["settings"]["calibration"]["split"] == "train"
    assert '"accuracy"' in json.dumps(document["metric"]), "the sweep's metric, with no --metric given"
