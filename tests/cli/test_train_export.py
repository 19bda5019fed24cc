"""``train`` then ``export`` on real audio files, through the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from ondevice_audit.cli import app
from ondevice_audit.export.metadata import read_metadata
from ondevice_audit.runtimes import load_runtime

runner = CliRunner()
FRONTEND = ["--sample-rate", "16000", "--clip-seconds", "0.5", "--n-mels", "20", "--n-mfcc", "10"]


def test_train_then_export_pruned_int8(tone_dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    trained = runner.invoke(
        app,
        [
            "train",
            "--data",
            str(tone_dataset),
            "--recipe",
            "ds-cnn",
            *FRONTEND,
            "--epochs",
            "2",
            "--batch-size",
            "32",
            "--group",
            "gender",
            "--out",
            str(out),
        ],
    )
    assert trained.exit_code == 0, trained.output
    assert {p.name for p in out.iterdir()} == {
        "model.keras",
        "model.tflite",
        "model.onnx",
        "split.csv",
        "train_summary.json",
    }
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["labels"] == ["_unknown_", "no", "yes"]
    assert len(summary["history"]["loss"]) == 2
    assert all(e["parity"] < 1e-4 for e in summary["exports"])
    split = pd.read_csv(out / "split.csv")
    assert split.groupby("speaker")["split"].nunique().max() == 1
    for name in ("model.keras", "model.tflite", "model.onnx"):
        metadata = read_metadata(out / name)
        assert metadata is not None and metadata.labels == summary["labels"]
        assert metadata.extra["recipe"] == "ds-cnn" and metadata.frontend.input_shape == (24, 10, 1)

    exported = runner.invoke(
        app,
        [
            "export",
            str(out / "model.keras"),
            "--to",
            "tflite",
            "--quantize",
            "int8",
            "--prune",
            "0.5",
            "--prune-epochs",
            "1",
            "--prune-batch-size",
            "32",
            "--data",
            str(tone_dataset),
            "--calibration-samples",
            "50",
            "--out",
            str(out / "exports"),
        ],
        env={"COLUMNS": "160"},
    )
    assert exported.exit_code == 0, exported.output
    assert "model-p50-int8.tflite" in exported.output
    int8 = out / "exports" / "model-p50-int8.tflite"
    assert load_runtime(int8).describe().input_dtype == "int8"
    extra = read_metadata(int8).extra
    assert extra["quantization"] == "int8" and extra["requested_sparsity"] == 0.5
    assert abs(extra["achieved_sparsity"] - 0.5) <= 0.05
    assert [layer["type"] for layer in extra["unprunable_layers"]] == ["DepthwiseConv2D"] * 4
    assert read_metadata(out / "exports" / "model-p50.keras").extra["achieved_sparsity"] == extra["achieved_sparsity"]


def test_user_errors_exit_2(tone_dataset: Path, tmp_path: Path) -> None:
    unknown = runner.invoke(app, ["train", "--data", str(tone_dataset), "--recipe", "vgg", "--out", str(tmp_path)])
    assert unknown.exit_code == 2
    assert "unknown recipe 'vgg'; choose one of ds-cnn" in unknown.output
    no_data = runner.invoke(app, ["export", str(tmp_path / "m.keras"), "--quantize", "int8", "--out", str(tmp_path)])
    assert no_data.exit_code == 2
    assert "--data is needed" in no_data.output
