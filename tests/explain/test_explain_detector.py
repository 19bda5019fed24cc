"""``explain`` on a single-sigmoid detector whose first layer is int8-sensitive for one group: judged by the
detector's metric at one threshold for every group, as ``audit`` judges it; numbers checked against LiteRT and
Keras run directly, and thresholds chosen by hand with numpy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from ondevice_audit.cli import app
from ondevice_audit.explain.document import validate
from ondevice_audit.explain.render import ExplainFormat, render
from ondevice_audit.scoring import ScoreOptions

OPTIONS = ScoreOptions(groups=("gender",), metric=None, bootstrap=500, permutations=0, min_group_size=30)
runner = CliRunner()


@pytest.fixture(scope="module")
def explained(detector_case: Any, explain: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return explain(detector_case, tmp_path_factory.mktemp("explain-detector-out"), OPTIONS)


def _litert_probabilities(path: Path, inputs: np.ndarray) -> np.ndarray:
    """The model's probability per clip from LiteRT itself: int8 input quantized and output dequantized by hand."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    source, sink = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    (in_scale, in_zero), (out_scale, out_zero) = source["quantization"], sink["quantization"]
    scores = []
    for row in inputs:
        quantized = np.clip(np.round(row[None] / in_scale + in_zero), -128, 127).astype(np.int8)
        interpreter.set_tensor(source["index"], quantized)
        interpreter.invoke()
        scores.append((float(interpreter.get_tensor(sink["index"])[0, 0]) - out_zero) * out_scale)
    return np.asarray(scores)


def _keras_probabilities(path: Path, inputs: np.ndarray) -> np.ndarray:
    from ondevice_audit import _tensorflow

    model = _tensorflow.keras().models.load_model(str(path), compile=False)
    return np.asarray(model(inputs))[:, 0].astype(np.float64)


def _tpr(case: Any, probabilities: np.ndarray, group: str, threshold: float) -> float:
    rows = (case.frame["gender"] == group).to_numpy() & (case.frame["label"] == "yes").to_numpy()
    return float(np.mean(probabilities[rows] >= threshold))


def test_the_sensitive_layer_is_ranked_first_and_keeping_it_in_float_fixes_the_detectors_rb(
    explained: dict[str, Any],
) -> None:
    assert explained["settings"]["task"] == "detect" and explained["metric"]["name"] == "tpr"  # from the metadata
    assert explained["metric"]["description"].startswith("detection rate")
    detection = explained["detection"]
    assert detection["positive_label"] == "yes" and detection["threshold"] == 0.5
    assert detection["chosen_by"] == "given: 0.5" and detection["positives"] + detection["negatives"] == 600
    assert all(run["threshold"] == 0.5 for run in explained["runs"])
    assert "at least 0.5 (given)" in explained["findings"]["operating_point"]
    variant = explained["runs"][1]
    assert explained["worse_off_group"] == "female"
    assert variant["within_base_interval"] is False and variant["rb_difference_ci"][0] > 0
    ranked = sorted((layer for layer in explained["layers"] if layer["rank"]), key=lambda layer: layer["rank"])
    assert ranked[0]["name"] == "mix" and ranked[0]["gap_ci"][0] > 10
    first = next(run for run in explained["runs"] if run["role"] == "candidate")
    assert first["undone"] == ["mix"] and first["within_base_interval"] is True
    assert first["rb"] <= explained["base_rb"]["ci"][1]
    assert explained["recommendation"]["undone"] == ["mix"] and explained["recommendation"]["file"] == first["path"]
    table = render(explained, ExplainFormat.table)
    assert "Threshold: Every model accepts a clip when its 'yes' probability is at least 0.5" in " ".join(table.split())


def test_per_group_detection_rates_match_the_models_run_directly(explained: dict[str, Any], detector_case: Any) -> None:
    """Each run's per-group tpr at the stated threshold, from Keras and LiteRT run here, counted with numpy."""
    runs = {run["role"]: run for run in explained["runs"] if run["role"] != "candidate"}
    fixed = next(run for run in explained["runs"] if run["role"] == "candidate")
    probabilities = {
        "base": _keras_probabilities(detector_case.base, detector_case.inputs),
        "variant": _litert_probabilities(detector_case.variant, detector_case.inputs),
        "fix": _litert_probabilities(Path(fixed["path"]), detector_case.inputs),
    }
    for name, run in (("base", runs["base"]), ("variant", runs["variant"]), ("fix", fixed)):
        for group in ("female", "male"):
            expected = _tpr(detector_case, probabilities[name], group, run["threshold"])
            assert run["groups"][group] == pytest.approx(expected, abs=1e-12), (name, group)
    assert runs["variant"]["groups"]["female"] < runs["base"]["groups"]["female"] - 0.15


def test_the_recommended_detector_keeps_its_task_in_its_metadata(explained: dict[str, Any]) -> None:
    from ondevice_audit.export.metadata import read_metadata

    metadata = read_metadata(Path(explained["recommendation"]["file"]))
    assert metadata is not None and metadata.extra["task"] == "detect" and metadata.extra["positive_label"] == "yes"
    assert metadata.extra["kept_in_float"] == ["mix"]


def test_cli_explains_a_detector_without_metadata_at_the_populations_far(detector_case: Any, tmp_path: Path) -> None:
    """A detector from elsewhere (no task in its metadata) told --task detect; the threshold chosen on the
    population's negatives for each model and stated; candidates carry the task."""
    from ondevice_audit.export.metadata import ModelMetadata, write_metadata

    variant = tmp_path / "models" / "third-party-int8.tflite"
    variant.parent.mkdir()
    variant.write_bytes(detector_case.variant.read_bytes())
    write_metadata(variant, ModelMetadata(labels=[]))
    out = tmp_path / "fix"
    result = runner.invoke(app, [
        "explain", str(variant), "--base", str(detector_case.base), "--data", str(detector_case.manifest), "-g",
        "gender", "--task", "detect", "--positive-label", "yes", "--at-far", "0.05", "--metric", "tpr",
        "--features", "raw", "--sample-rate", "1000", "--clip-seconds", "0.016", "--bootstrap", "200",
        "--permutations", "0", "--top-layers", "1", "--latency-samples", "2", "--out", str(out), "--format", "json",
    ])  # fmt: skip
    assert result.exit_code == 0, result.stderr
    document = json.loads((out / "explain.json").read_text())
    validate(document)
    assert json.loads(result.stdout) == document
    negative = (detector_case.frame["label"] != "yes").to_numpy()
    for run, scores in ((document["runs"][0], _keras_probabilities(detector_case.base, detector_case.inputs)),
                        (document["runs"][1], _litert_probabilities(variant, detector_case.inputs))):  # fmt: skip
        values = np.sort(scores[negative])
        threshold = min(t for t in values if (values >= t).mean() <= 0.05)
        assert run["threshold"] == pytest.approx(threshold, abs=1e-7)
        for group in ("female", "male"):
            expected = _tpr(detector_case, scores, group, run["threshold"])
            assert run["groups"][group] == pytest.approx(expected, abs=1e-12), group
    assert document["detection"]["threshold"] == document["runs"][0]["threshold"]
    assert "0.05 of the population's negatives" in document["detection"]["chosen_by"]
    assert document["worse_off_group"] == "female" and document["runs"][1]["within_base_interval"] is False
    assert "Each model's threshold is the lowest threshold" in document["findings"]["operating_point"]
    from ondevice_audit.export.metadata import read_metadata

    candidate = read_metadata(out / "quantization-fix-1.tflite")
    assert candidate is not None and candidate.extra["task"] == "detect" and candidate.labels == ["yes"]


def test_streaming_and_mismatched_detectors_are_refused_in_one_line(
    detector_case: Any, explain_fails: Any, tmp_path: Path
) -> None:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    from detectors import streaming_detector

    from ondevice_audit.explain.quantization import float_flatbuffer

    _fails = explain_fails
    common = ["--data", str(detector_case.manifest), "-g", "gender", "--out", str(tmp_path / "out")]
    variant, base = str(detector_case.variant), str(detector_case.base)
    assert "explain needs a stateless model" in _fails(variant, "--base", base, *common, "--stream")
    stateful = streaming_detector(tmp_path / "stream.tflite")
    message = _fails(str(stateful), "--base", base, *common, "--task", "detect", "--positive-label", "yes")
    assert "explain needs a stateless model" in message and "resource variables" in message
    bare_base = tmp_path / "float.tflite"  # a float base without metadata: nothing for it to disagree with
    bare_base.write_bytes(float_flatbuffer(detector_case.base))
    assert "'maybe' is not a label in the data" in _fails(variant, "--base", str(bare_base), *common,
                                                          "--positive-label", "maybe")  # fmt: skip
    assert "not a detector metric" in _fails(variant, "--base", base, *common, "--metric", "mcc")
    assert "exactly one of" in _fails(variant, "--base", base, *common, "--threshold", "0.5", "--at-far", "0.1")
    assert "the base detects 'yes', the variant is read as detecting 'no'" in _fails(
        variant, "--base", base, *common, "--task", "detect", "--positive-label", "no"
    )


def test_a_detector_sweep_cell_is_explained_at_its_sweeps_operating_point(tmp_path: Path) -> None:
    """Without a point on the command line, a cell is explained where its sweep scored it ([data] at_far)."""
    import dataclasses

    from ondevice_audit.explain.data import SweepCell
    from ondevice_audit.explain.job import _at_sweeps_point
    from ondevice_audit.metrics.detection import OperatingPoint
    from ondevice_audit.model_io import DetectorOptions, ReadModel
    from ondevice_audit.sweep import parse_matrix
    from ondevice_audit.tasks import DetectorTask

    manifest = tmp_path / "manifest.csv"
    manifest.write_text("path,label,gender,speaker\n")
    document = {"data": {"manifest": str(manifest), "groups": ["gender"], "task": "detect",
                         "positive_label": "yes", "at_far": 0.05}}  # fmt: skip
    cell = SweepCell(tmp_path, parse_matrix(document, tmp_path / "matrix.toml"), {}, 0)
    read = ReadModel(DetectorTask("yes", OperatingPoint(0.5)), None, None)  # front-end and options unused here
    assert _at_sweeps_point(read, cell, DetectorOptions()).task.point == OperatingPoint(at_far=0.05)
    named = DetectorOptions(threshold=0.7)
    assert _at_sweeps_point(dataclasses.replace(read, task=dataclasses.replace(read.task, point=OperatingPoint(0.7))),
                            cell, named).task.point == OperatingPoint(0.7)  # fmt: skip


def test_a_detector_sweeps_kept_layers_are_chosen_at_its_operating_point(detector_case: Any) -> None:
    """``int8-keepN`` cells of a detector sweep (``explain.selective``) decide float and int8 as the detector
    does, at one population threshold: ``mix`` is kept, for the female clips int8 fails."""
    from ondevice_audit import _tensorflow
    from ondevice_audit.explain.selective import keep_worst_layers
    from ondevice_audit.metrics.detection import OperatingPoint
    from ondevice_audit.tasks import DetectorTask

    model = _tensorflow.keras().models.load_model(str(detector_case.base), compile=False)
    options = ScoreOptions(groups=("gender",), metric=None, bootstrap=200, permutations=0)
    task = DetectorTask("yes", OperatingPoint(at_far=0.05))
    selection = keep_worst_layers(model, detector_case.inputs[:200], detector_case.inputs, detector_case.frame, task,
                                  options, keep=1)  # fmt: skip
    assert selection.kept == ["mix"]
    assert selection.facts["worse_off_group"] == "female"
