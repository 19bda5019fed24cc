"""Wake-word detectors end to end: a single-sigmoid model (TFLite and ONNX) and an int8 streaming TFLite model
with state in resource variables, audited through the CLI and checked against numpy on the models' own outputs."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from ondevice_audit.cli import app
from ondevice_audit.data import read_manifest
from ondevice_audit.frontend import MicroFrontendSpec, build_frontend
from ondevice_audit.report.document import validate
from ondevice_audit.runtimes import RuntimeOptions, load_runtime
from ondevice_audit.runtimes.streaming import DetectorOutput, StreamSettings

from .conftest import SPEC

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))  # the detector the benchmark times
from detectors import feed_by_hand, streaming_detector  # noqa: E402

runner = CliRunner()
CLIP_SECONDS = SPEC.clip_seconds


@pytest.fixture(scope="module")
def detectors(tmp_path_factory, tone_dataset) -> dict[str, Path]:
    """A sigmoid detector of 'yes' trained on six speakers: .tflite and .onnx, metadata saying task detect,
    and a bare .onnx without metadata."""
    from ondevice_audit import _tensorflow
    from ondevice_audit.export.metadata import ModelMetadata, write_metadata

    tf, keras = _tensorflow.tensorflow(), _tensorflow.keras()
    import tf2onnx

    out = tmp_path_factory.mktemp("detectors")
    data = read_manifest(tone_dataset).frame
    inputs = build_frontend(SPEC).transform([Path(p) for p in data["file"]]).inputs
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.layers.Input(SPEC.input_shape), keras.layers.BatchNormalization(),
                              keras.layers.Conv2D(4, (3, 3), activation="relu"), keras.layers.Flatten(),
                              keras.layers.Dense(1, activation="sigmoid")])  # fmt: skip
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="binary_crossentropy")
    seen = data["speaker"].isin([f"s{i}" for i in range(6)]).to_numpy()
    model.fit(inputs[seen], (data["label"] == "yes").to_numpy()[seen].astype(np.float32), epochs=6, verbose=0)
    paths = {"tflite": out / "yes.tflite", "onnx": out / "yes.onnx", "bare": out / "bare.onnx"}
    paths["tflite"].write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    signature = (tf.TensorSpec((None, *SPEC.input_shape), tf.float32, name="input"),)
    for name in ("onnx", "bare"):
        tf2onnx.convert.from_keras(model, input_signature=signature, opset=17, output_path=str(paths[name]))
    metadata = ModelMetadata(labels=["yes"], frontend=SPEC, extra={"task": "detect", "positive_label": "yes"})
    for name in ("tflite", "onnx"):
        write_metadata(paths[name], metadata)
    return paths


def _probabilities(model: Path, manifest: Path) -> pd.DataFrame:
    """The model's own output per clip, run directly on LiteRT / ONNX Runtime over the same features."""
    frame = read_manifest(manifest).frame
    inputs = build_frontend(SPEC).transform([Path(p) for p in frame["file"]]).inputs
    return frame.assign(score=load_runtime(model).run_all(inputs).scores[:, 0])


def _rates(part: pd.DataFrame, threshold: float) -> dict[str, float]:
    accepted = part["score"].to_numpy() >= threshold
    positive = (part["label"] == "yes").to_numpy()
    negatives = int((~positive).sum())
    return {"tpr": (accepted & positive).sum() / positive.sum(), "frr": (~accepted & positive).sum() / positive.sum(),
            "far": (accepted & ~positive).sum() / negatives,
            "fa_per_hour": (accepted & ~positive).sum() / (negatives * CLIP_SECONDS / 3600)}  # fmt: skip


def _audit(model: Path, manifest: Path, *extra: str) -> dict:
    result = runner.invoke(app, ["audit", str(model), "--data", str(manifest), "-g", "gender", "--bootstrap", "200",
                                 "--permutations", "200", "--min-group-size", "5", "-f", "json", *extra])  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    validate(report)
    return report


@pytest.mark.parametrize("fmt", ["tflite", "onnx"])
def test_per_group_rates_match_numpy_at_a_given_threshold(detectors, tone_dataset, fmt) -> None:
    report = _audit(detectors[fmt], tone_dataset, "--task", "detect", "--positive-label", "yes", "--threshold",
                    "0.5", "--metric", "tpr")  # fmt: skip
    scores = _probabilities(detectors[fmt], tone_dataset)
    assert report["detection"]["threshold"]["value"] == 0.5 and report["metric"]["name"] == "tpr"
    for group in report["attributes"][0]["groups"]:
        expected = _rates(scores[scores["gender"] == group["name"]], 0.5)
        for name, value in expected.items():
            assert group["metrics"][name] == pytest.approx(value, abs=1e-9), (group["name"], name)
    assert report["settings"]["task"] == "detect" and report["settings"]["positive_label"] == "yes"


def test_the_metadata_names_the_task_and_at_far_sets_one_threshold(detectors, tone_dataset) -> None:
    report = _audit(detectors["tflite"], tone_dataset, "--at-far", "0.1")
    scores = _probabilities(detectors["tflite"], tone_dataset)
    negatives = np.sort(scores.loc[scores["label"] != "yes", "score"].to_numpy())
    threshold = min(t for t in negatives if (negatives >= t).mean() <= 0.1)
    assert report["detection"]["threshold"]["value"] == pytest.approx(threshold)
    assert "at most 0.1 of the population's negatives" in report["detection"]["threshold"]["chosen_by"]
    for group in report["attributes"][0]["groups"]:  # every group at the population's threshold
        part = scores[scores["gender"] == group["name"]]
        assert group["metrics"]["far"] == pytest.approx(_rates(part, threshold)["far"])
    curves = report["detection"]["attributes"][0]["groups"]
    assert {c["name"] for c in curves} == {"female", "male"} and all(len(c["det"]) >= 2 for c in curves)


def test_a_single_output_is_not_audited_as_a_classifier(detectors, tone_dataset, tmp_path) -> None:
    labels = tmp_path / "labels.txt"
    labels.write_text("yes\n")
    result = runner.invoke(app, ["audit", str(detectors["bare"]), "--data", str(tone_dataset), "-g", "gender",
                                 "--features", "mfcc", "--clip-seconds", "0.5", "--n-mels", "20"])  # fmt: skip
    assert result.exit_code == 2 and "single output" in result.stderr and "--task detect" in result.stderr
    report = _audit(detectors["bare"], tone_dataset, "--features", "mfcc", "--clip-seconds", "0.5", "--n-mels", "20",
                    "--task", "detect", "--positive-label", "yes")  # fmt: skip
    assert report["detection"]["threshold"]["chosen_by"] == "given: 0.5"


def test_runs_compare_the_accept_decision(detectors, tone_dataset) -> None:
    report = _audit(detectors["tflite"], tone_dataset, "--target", "local", "--target", "subprocess")
    comparison = report["comparison"]
    assert comparison["metric"] == "tpr" and len(comparison["runs"]) == 2
    for group in comparison["attributes"][0]["groups"]:
        assert group["runs"][1]["flips"] == 0  # the same file on the same LiteRT decides the same


def test_score_a_detectors_csv_with_durations(tmp_path) -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"label": rng.choice(["alexa", "other", "noise"], 400), "g": rng.choice(["a", "b"], 400),
                          "duration": rng.uniform(0.5, 2.0, 400)})  # fmt: skip
    frame["score"] = np.clip(rng.normal(np.where(frame["label"] == "alexa", 0.7, 0.3), 0.2), 0, 1)
    path = tmp_path / "scores.csv"
    frame.to_csv(path, index=False)
    result = runner.invoke(app, ["score", str(path), "-g", "g", "--task", "detect", "--positive-label", "alexa",
                                 "--threshold", "0.5", "--metric", "fa_per_hour", "--bootstrap", "0",
                                 "--permutations", "0", "--min-group-size", "5", "-f", "json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    for group in report["attributes"][0]["groups"]:
        part = frame[frame["g"] == group["name"]]
        negative = part["label"] != "alexa"
        false_accepts = ((part["score"] >= 0.5) & negative).sum()
        assert group["metrics"]["fa_per_hour"] == pytest.approx(false_accepts / (part.loc[negative, "duration"].sum()
                                                                                 / 3600))  # fmt: skip


def test_streaming_through_the_tool_equals_feeding_frames_by_hand(tmp_path, micro_data) -> None:
    model = streaming_detector(tmp_path / "stream.tflite")
    spec = MicroFrontendSpec(pad_ms=500)
    frame = read_manifest(micro_data).frame
    features = build_frontend(spec).transform([Path(p) for p in frame["file"]]).inputs
    settings = StreamSettings(DetectorOutput(), smooth=3)
    tool = load_runtime(model, None, RuntimeOptions(stream=settings)).run_all(features).scores[:, 0]
    by_hand = np.array([feed_by_hand(model, clip[..., 0], 3) for clip in features])
    np.testing.assert_allclose(tool, by_hand, rtol=0, atol=1e-6)
    report = _audit(model, micro_data, "--task", "detect", "--positive-label", "yes", "--features", "micro",
                    "--stream", "--smooth", "3", "--pad-ms", "500", "--threshold", "0.5", "--metric", "frr")  # fmt: skip
    expected = frame.assign(score=by_hand)
    for group in report["attributes"][0]["groups"]:
        rates = _rates(expected[expected["gender"] == group["name"]], 0.5)
        assert group["metrics"]["frr"] == pytest.approx(rates["frr"]) and group["metrics"]["far"] == pytest.approx(rates["far"])
    assert report["detection"]["stream"]["stateful"] is True and report["detection"]["stream"]["window_frames"] == 3
    auto = _audit(model, micro_data, "--task", "detect", "--positive-label", "yes", "--features", "micro",
                  "--pad-ms", "500", "--smooth", "3")  # fmt: skip
    assert "resource variables" in auto["detection"]["stream"]["chosen"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--task", "detect"], "needs --positive-label"),
        (["--task", "detect", "--positive-label", "maybe"], "'maybe' is not a label in the data"),
        (["--task", "detect", "--positive-label", "yes", "--threshold", "0.5", "--at-far", "0.1"], "exactly one of"),
        (["--task", "detect", "--positive-label", "yes", "--threshold", "nan"], "finite"),
        (["--task", "detect", "--positive-label", "yes", "--stream", "--smooth", "0"], "--smooth"),
        (["--positive-label", "yes", "--task", "classify"], "are for detectors"),
        (["--task", "detect", "--positive-label", "yes", "--metric", "mcc"], "not a detector metric"),
    ],
)
def test_bad_detector_flags_are_one_line(detectors, tone_dataset, extra, message) -> None:
    result = runner.invoke(app, ["audit", str(detectors["onnx"]), "--data", str(tone_dataset), "-g", "gender", *extra])
    assert result.exit_code == 2, result.output
    assert message in result.stderr and "Traceback" not in result.stderr


def test_stream_needs_a_window_that_fits_and_micro_a_sample_rate_it_supports(tmp_path, micro_data) -> None:
    model = streaming_detector(tmp_path / "stream.tflite")
    too_long = runner.invoke(app, ["audit", str(model), "--data", str(micro_data), "-g", "gender", "--task", "detect",
                                   "--positive-label", "yes", "--features", "mfcc", "--stream"])  # fmt: skip
    assert too_long.exit_code == 2 and "shape" in too_long.stderr
    low_rate = runner.invoke(app, ["audit", str(model), "--data", str(micro_data), "-g", "gender", "--task", "detect",
                                   "--positive-label", "yes", "--features", "micro", "--sample-rate", "8000"])  # fmt: skip
    assert low_rate.exit_code == 2 and "upper-band-limit" in low_rate.stderr


def test_no_negatives_refuses_at_far(detectors, tone_dataset, tmp_path) -> None:
    positives = tmp_path / "positives.csv"
    frame = pd.read_csv(tone_dataset)
    frame[frame["label"] == "yes"].assign(path=lambda f: [str(tone_dataset.parent / p) for p in f["path"]]).to_csv(
        positives, index=False
    )
    if not os.path.isabs(str(frame["path"].iloc[0])):  # paths must stay inside the manifest's folder
        positives = tone_dataset.parent / "positives.csv"
        frame[frame["label"] == "yes"].to_csv(positives, index=False)
    result = runner.invoke(app, ["audit", str(detectors["tflite"]), "--data", str(positives), "-g", "gender",
                                 "--at-far", "0.1"])  # fmt: skip
    assert result.exit_code == 2 and "no negative clip" in result.stderr


def test_the_gate_caps_a_detectors_error_rate_per_group(detectors, tone_dataset, tmp_path) -> None:
    report = _audit(detectors["onnx"], tone_dataset, "--metric", "frr", "--threshold", "0.5")
    worst = max(g["metrics"]["frr"] for g in report["attributes"][0]["groups"] if g["in_rb"])
    path = tmp_path / "report.json"
    path.write_text(json.dumps(report))
    for limit, code in ((worst + 1e-9, 0), (worst - 1e-9, 1)):
        result = runner.invoke(app, ["gate", str(path), "--max-group-metric", repr(limit), "--no-use-ci-bound"])
        assert result.exit_code == code, result.output
    refused = runner.invoke(app, ["gate", str(path), "--min-metric", "0.5"])
    assert refused.exit_code == 2 and "max_metric" in refused.output
