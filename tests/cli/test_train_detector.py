"""``train --task detect``: a recipe trained as a single-sigmoid detector, on MFCC and on the micro front-end,
then audited with no detector flags (its metadata names the task and the phrase)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from ondevice_audit.cli import app
from ondevice_audit.data import read_manifest
from ondevice_audit.export.metadata import read_metadata
from ondevice_audit.frontend import MicroFrontendSpec, build_frontend
from ondevice_audit.runtimes import load_runtime

runner = CliRunner()


def _train(manifest: Path, out: Path, *extra: str) -> dict:
    result = runner.invoke(app, ["train", "--data", str(manifest), "--recipe", "ds-cnn", "--sample-rate", "16000",
                                 "--clip-seconds", "0.5", "--epochs", "2", "--batch-size", "32", "-g", "gender",
                                 "--out", str(out), *extra])  # fmt: skip
    assert result.exit_code == 0, result.output
    return json.loads((out / "train_summary.json").read_text())


@pytest.fixture(scope="module")
def micro_detector(tmp_path_factory, tone_dataset) -> Path:
    out = tmp_path_factory.mktemp("micro-detector")
    _train(tone_dataset, out, "--features", "micro", "--task", "detect", "--positive-label", "yes")
    return out


def test_a_detector_has_one_sigmoid_output_and_says_so_in_its_metadata(
    micro_detector: Path, tone_dataset: Path
) -> None:
    summary = json.loads((micro_detector / "train_summary.json").read_text())
    assert summary["task"] == "detect" and summary["positive_label"] == "yes"
    for name in ("model.keras", "model.tflite", "model.onnx"):
        metadata = read_metadata(micro_detector / name)
        assert metadata is not None and metadata.labels == ["yes"]
        assert metadata.extra["task"] == "detect" and metadata.extra["positive_label"] == "yes"
        assert metadata.frontend == MicroFrontendSpec(clip_seconds=0.5)
    runtime = load_runtime(micro_detector / "model.tflite")
    assert runtime.describe().output_shape[-1] == 1
    frame = read_manifest(tone_dataset).frame.head(20)
    inputs = build_frontend(MicroFrontendSpec(clip_seconds=0.5)).transform([Path(p) for p in frame["file"]]).inputs
    scores = runtime.run_all(inputs).scores
    assert ((scores >= 0) & (scores <= 1)).all()  # a sigmoid's probability
    assert all(export["top1_agreement"] == 1.0 for export in summary["exports"])  # f32: the same decisions


def test_audit_reads_the_task_from_the_metadata_and_matches_numpy(micro_detector: Path, tone_dataset: Path) -> None:
    result = runner.invoke(app, ["audit", str(micro_detector / "model.onnx"), "--data", str(tone_dataset), "-g",
                                 "gender", "--split-file", str(micro_detector / "split.csv"), "--split", "test",
                                 "--bootstrap", "0", "--permutations", "0", "--min-group-size", "1",
                                 "--threshold", "0.5", "-f", "json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["metric"]["name"] == "tpr" and report["detection"]["positive_label"] == "yes"
    split = pd.read_csv(micro_detector / "split.csv")
    frame = read_manifest(tone_dataset).frame
    test = frame[frame["path"].isin(split.loc[split["split"] == "test", "path"])]
    inputs = build_frontend(MicroFrontendSpec(clip_seconds=0.5)).transform([Path(p) for p in test["file"]]).inputs
    accepted = load_runtime(micro_detector / "model.onnx").run_all(inputs).scores[:, 0] >= 0.5
    positive = (test["label"] == "yes").to_numpy()
    for group in report["attributes"][0]["groups"]:
        member = (test["gender"] == group["name"]).to_numpy()
        expected = (accepted & positive & member).sum() / (positive & member).sum()
        assert group["metrics"]["tpr"] == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--task", "detect"], "--task detect needs --positive-label"),
        (["--task", "detect", "--positive-label", "maybe"], "--positive-label 'maybe' is not a label in the data"),
        (["--positive-label", "yes"], "add --task detect"),
        (["--task", "spot"], "--task 'spot': choose classify or detect"),
    ],
)
def test_bad_detector_training_is_one_line(tone_dataset: Path, tmp_path: Path, extra: list[str], message: str) -> None:
    result = runner.invoke(app, ["train", "--data", str(tone_dataset), "--recipe", "ds-cnn", "--out",
                                 str(tmp_path / "out"), *extra], env={"COLUMNS": "200"})  # fmt: skip
    assert result.exit_code == 2 and message in " ".join(result.output.split())
    assert not (tmp_path / "out" / "model.keras").exists()


def test_compare_scores_agrees_on_a_detectors_decision() -> None:
    from ondevice_audit.optimize.parity import compare_scores

    reference = np.array([[0.2], [0.6], [0.49], [0.9]])
    drifted = np.array([[0.3], [0.4], [0.51], [0.9]])
    parity = compare_scores(reference, drifted)
    assert parity.top1_agreement == 0.5 and parity.max_abs_diff == pytest.approx(0.2)
