"""Features larger than memory: written to disk as computed, read back as a memory map, trained on a batch at a
time. Forced here with a memory limit of one byte on the small tone dataset."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from ondevice_audit.cli import app
from ondevice_audit.data import read_manifest
from ondevice_audit.frontend import AudioFrontendSpec
from ondevice_audit.frontend.features import compute_features
from ondevice_audit.model.train import _moments

SPEC = AudioFrontendSpec(kind="mfcc", sample_rate=16000, clip_seconds=0.5, n_mels=20, n_mfcc=10)


def test_features_on_disk_equal_the_features_in_memory(tone_dataset: Path, tmp_path: Path) -> None:
    frame = read_manifest(tone_dataset).frame
    frame = pd.concat([frame, frame], ignore_index=True)  # past one chunk of 256 files
    frame.loc[[5, 400], "file"] = str(tmp_path / "missing.wav")  # one in the first chunk, one in the last
    in_memory = compute_features(frame, SPEC)
    on_disk = compute_features(frame, SPEC, out=tmp_path / "features.npy")
    assert isinstance(on_disk.inputs, np.memmap) and not on_disk.inputs.flags.writeable
    np.testing.assert_array_equal(on_disk.inputs, in_memory.inputs)
    assert len(on_disk.inputs) == len(frame) - 2 and on_disk.failures == in_memory.failures
    pd.testing.assert_frame_equal(on_disk.frame, in_memory.frame)


def test_moments_read_in_chunks_are_numpys(tmp_path: Path) -> None:
    values = np.random.default_rng(0).normal(40, 20, size=(1000, 12, 10, 1)).astype(np.float32)
    np.save(tmp_path / "x.npy", values)
    mean, var = _moments(np.load(tmp_path / "x.npy", mmap_mode="r"), axis=2, rows=96)
    np.testing.assert_allclose(mean, values.mean(axis=(0, 1, 3)), rtol=1e-5)
    np.testing.assert_allclose(var, values.var(axis=(0, 1, 3)), rtol=1e-4)


@pytest.mark.parametrize("mitigation", ["none", "reweight-heldout"])
def test_train_streams_features_over_the_memory_limit(tone_dataset: Path, tmp_path: Path, mitigation: str) -> None:
    out = tmp_path / "run"
    result = CliRunner().invoke(app, [
        "train", "--data", str(tone_dataset), "--recipe", "ds-cnn", "--sample-rate", "16000", "--clip-seconds", "0.5",
        "--n-mels", "20", "--n-mfcc", "10", "--epochs", "3", "--batch-size", "16", "--group", "gender",
        "--mitigation", mitigation, "--feature-memory", "1", "--out", str(out), "-q",
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["features_streamed_from_disk"] is True
    assert {p.name for p in out.iterdir()} == {"model.keras", "model.tflite", "model.onnx", "split.csv",
                                               "train_summary.json"}, "the on-disk features are removed"  # fmt: skip
    assert len(summary["history"]["loss"]) == 3 and summary["history"]["loss"][-1] < summary["history"]["loss"][0]
    assert summary["final"]["val_accuracy"] > 1 / 3, "learned something on three classes"


def test_a_bad_memory_limit_is_one_line(tone_dataset: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["train", "--data", str(tone_dataset), "--recipe", "ds-cnn",
                                      "--feature-memory", "lots", "--out", str(tmp_path / "run")])  # fmt: skip
    assert result.exit_code == 2 and "cannot read size 'lots'" in result.output
