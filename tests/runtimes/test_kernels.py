"""Kernels as a recorded choice: LiteRT's optimized kernels with XNNPACK (``litert``), without a delegate
(``litert-builtin``), its reference kernels (``litert-ref``), and TFLite Micro (``tflm``), on int8 models built here.

What was measured while building these tests (ai-edge-litert 2.3.0, tflite-micro 2026-10, x86-64), on int8 models
and the tone clips:

- ``litert-ref`` and TFLM agree bit for bit on CONV_2D, DEPTHWISE_CONV_2D, MEAN, AVERAGE_POOL_2D, SOFTMAX,
  CONCATENATION and RESHAPE; FULLY_CONNECTED is the exception: TFLM rounds outputs within ~0.002 of a half step
  the other way (its multiplier is less exact), on about 1 % of inputs, by one step.
- XNNPACK (``litert``) differs from the reference kernels by one output step on a few % of clips for a small
  DS-CNN, yet flipped the predicted class of 1 in 864 clips: real flips need near-ties.
- Exact halves show it plainly. ``twin_average_model`` scores its two classes by the same int8 average of two
  values, once as MEAN and once as AVERAGE_POOL_2D: equal but for how a half (an odd sum) is rounded. TFLite's
  own kernels (optimized, reference, TFLM) round the MEAN's half up and the pool's down on every such clip, so
  class 0 wins them (53 of the 216 tone clips); XNNPACK rounds each its own way, one step either side (28 and
  30 clips). The kernels alone decide those clips: 19 of the 144 ``no``/``yes`` clips flip between ``litert``
  and ``litert-ref``, every one a male speaker's, and RB(gender) reads 0.288 on ``litert``, 0 on TFLM.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ondevice_audit.audit import ModelOptions, ScoreOptions, TargetOptions, audit_model
from ondevice_audit.data import read_manifest
from ondevice_audit.export.metadata import ModelMetadata, write_metadata
from ondevice_audit.frontend import build_frontend
from ondevice_audit.report import ReportFormatChoice
from ondevice_audit.report.document import validate
from ondevice_audit.runtimes import RuntimeOptions, load_runtime
from ondevice_audit.runtimes.tflm import model_ops

from ..conftest import LABELS, SPEC

TWO_LABELS = ["no", "yes"]
OPTIONS = ScoreOptions(groups=("gender", "accent"), metric="accuracy", min_group_size=5, bootstrap=0, permutations=0)


def _int8(model, calibration: np.ndarray) -> bytes:
    """Full-integer int8 with int8 input and output, calibrated on real clips."""
    from ondevice_audit import _tensorflow

    tf = _tensorflow.tensorflow()
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([row[None]] for row in calibration)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = converter.inference_output_type = tf.int8
    return converter.convert()


@pytest.fixture(scope="module")
def clips(tone_dataset: Path) -> tuple[pd.DataFrame, np.ndarray]:
    frame = read_manifest(tone_dataset).frame
    return frame, build_frontend(SPEC).transform([Path(p) for p in frame["file"]]).inputs


@pytest.fixture(scope="module")
def two_labels(tone_dataset: Path) -> Path:
    """The tone dataset's ``no`` and ``yes`` clips (a new manifest beside the original)."""
    frame = pd.read_csv(tone_dataset)
    path = tone_dataset.with_name("manifest-no-yes.csv")
    frame[frame["label"].isin(TWO_LABELS)].to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def ds_cnn_without_fc(clips, tmp_path_factory) -> Path:
    """A small DS-CNN whose classes come from a 1x1 convolution and a global average (no FULLY_CONNECTED)."""
    from ondevice_audit import _tensorflow

    keras = _tensorflow.keras()
    frame, inputs = clips
    keras.utils.set_random_seed(0)
    net = keras.Sequential([
        keras.layers.Input(SPEC.input_shape), keras.layers.BatchNormalization(),
        keras.layers.Conv2D(8, (3, 3), activation="relu"), keras.layers.DepthwiseConv2D((3, 3), activation="relu"),
        keras.layers.Conv2D(len(LABELS), (1, 1)), keras.layers.GlobalAveragePooling2D(), keras.layers.Softmax(),
    ])  # fmt: skip
    net.compile(optimizer=keras.optimizers.Adam(0.003), loss="sparse_categorical_crossentropy")
    net.fit(inputs, np.searchsorted(LABELS, frame["label"].to_numpy()), epochs=5, batch_size=32, verbose=0)
    path = tmp_path_factory.mktemp("kernels") / "ds-cnn-int8.tflite"
    path.write_bytes(_int8(net, inputs[:64]))
    write_metadata(path, ModelMetadata(labels=LABELS, frontend=SPEC))
    return path


@pytest.fixture(scope="module")
def twin_average_model(clips, tmp_path_factory) -> Path:
    """Two classes scored by the same average of two values, once as MEAN and once as AVERAGE_POOL_2D."""
    from ondevice_audit import _tensorflow

    keras = _tensorflow.keras()
    keras.utils.set_random_seed(0)
    height, width = SPEC.input_shape[:2]
    features = keras.layers.Input(SPEC.input_shape)
    pair = keras.layers.Conv2D(1, (height, width - 1))(features)  # a 1 x 2 map: two values per clip
    mean = keras.layers.GlobalAveragePooling2D()(pair)
    pooled = keras.layers.Flatten()(keras.layers.AveragePooling2D(pool_size=(1, 2))(pair))
    net = keras.Model(features, keras.layers.Concatenate()([mean, pooled]))
    path = tmp_path_factory.mktemp("kernels") / "twin-average-int8.tflite"
    path.write_bytes(_int8(net, clips[1][:64]))
    write_metadata(path, ModelMetadata(labels=TWO_LABELS, frontend=SPEC))
    return path


def _raw_scores(path: Path, inputs: np.ndarray, resolver: str) -> np.ndarray:
    """int8 outputs straight from an ai_edge_litert interpreter, one clip per invoke (no ondevice_audit code)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interpreter = Interpreter(model_path=str(path), experimental_op_resolver_type=OpResolverType[resolver])
    interpreter.allocate_tensors()
    given, taken = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    scale, zero_point = given["quantization"]
    quantized = np.clip(np.round(inputs / scale + zero_point), -128, 127).astype(np.int8)
    rows = []
    for row in quantized:
        interpreter.set_tensor(given["index"], row[None])
        interpreter.invoke()
        rows.append(interpreter.get_tensor(taken["index"])[0].copy())
    return np.array(rows)


def test_reference_kernels_equal_tflm_bit_for_bit(ds_cnn_without_fc, clips) -> None:
    inputs = clips[1]
    assert "FULLY_CONNECTED" not in model_ops(ds_cnn_without_fc)
    reference = load_runtime(ds_cnn_without_fc, "litert-ref").run_all(inputs, 16).scores
    micro = load_runtime(ds_cnn_without_fc, "tflm").run_all(inputs, 16).scores
    np.testing.assert_array_equal(reference, micro)
    raw = _raw_scores(ds_cnn_without_fc, inputs, "BUILTIN_REF")  # and the runtime is LiteRT's reference resolver
    assert np.array_equal(np.argmax(raw, axis=1), np.argmax(reference, axis=1))


def test_each_runtime_records_its_kernels_delegate_and_threads(ds_cnn_without_fc, tiny_models) -> None:
    facts = {name: load_runtime(ds_cnn_without_fc, name, RuntimeOptions(threads=2)).describe()
             for name in ("litert", "litert-builtin", "litert-ref", "tflm")}  # fmt: skip
    assert facts["litert"].kernels == "optimized" and facts["litert"].delegate.startswith("XNNPACK (")
    assert (facts["litert-builtin"].kernels, facts["litert-builtin"].delegate) == ("optimized", None)
    assert (facts["litert-ref"].kernels, facts["litert-ref"].delegate) == ("reference", None)
    assert [facts[name].threads for name in ("litert", "litert-builtin", "litert-ref")] == [2, 2, 2]
    assert (facts["tflm"].kernels, facts["tflm"].threads) == ("TFLM reference", 1)
    assert load_runtime(ds_cnn_without_fc, "litert").describe().threads == 1  # LiteRT's own default, stated
    onnx = load_runtime(tiny_models["onnx"], None, RuntimeOptions(threads=1, graph_optimization="basic")).describe()
    assert (onnx.kernels, onnx.threads, onnx.graph_optimization) == ("CPU execution provider", 1, "basic")


def _group_flips(frame: pd.DataFrame, first: np.ndarray, second: np.ndarray, column: str) -> dict[str, int]:
    differs = pd.Series(np.argmax(first, axis=1) != np.argmax(second, axis=1), index=frame.index)
    return {str(name): int(count) for name, count in differs.groupby(frame[column]).sum().items()}


@pytest.fixture(scope="module")
def three_runs(twin_average_model, two_labels) -> dict:
    runs = TargetOptions(runtimes=("litert", "litert-ref", "tflm"))
    return audit_model(twin_average_model, two_labels, OPTIONS, ModelOptions(), runs)


def test_xnnpack_and_reference_flips_per_group_match_the_interpreters(three_runs, twin_average_model, two_labels):
    frame = read_manifest(two_labels).frame
    inputs = build_frontend(SPEC).transform([Path(p) for p in frame["file"]]).inputs
    xnnpack, reference = _raw_scores(twin_average_model, inputs, "AUTO"), _raw_scores(twin_average_model, inputs,
                                                                                       "BUILTIN_REF")  # fmt: skip
    validate(three_runs)
    comparison = three_runs["comparison"]
    assert [run["runtime"] for run in comparison["runs"]] == ["litert", "litert-ref", "tflm"]
    for attribute in comparison["attributes"][:2]:
        expected = _group_flips(frame, xnnpack, reference, attribute["name"])
        assert {g["name"]: g["runs"][1]["flips"] for g in attribute["groups"]} == expected
    total = int((np.argmax(xnnpack, axis=1) != np.argmax(reference, axis=1)).sum())
    assert comparison["overall"]["runs"][1]["flips"] == total > 0  # measured: 19 of 144 clips
    assert comparison["overall"]["runs"][1]["flip_rate"] == pytest.approx(total / len(frame))


def test_desktop_decisions_that_differ_from_tflm_are_a_warning_with_per_group_rates(three_runs, twin_average_model,
                                                                                   two_labels):  # fmt: skip
    frame = read_manifest(two_labels).frame
    inputs = build_frontend(SPEC).transform([Path(p) for p in frame["file"]]).inputs
    micro = load_runtime(twin_average_model, "tflm").run_all(inputs, 16).scores
    xnnpack = _raw_scores(twin_average_model, inputs, "AUTO")
    against = {entry["run"]: entry for entry in three_runs["comparison"]["against_tflm"]}
    assert set(against) == {"local (litert)", "local (litert-ref)"}
    assert against["local (litert-ref)"]["flips"] == 0  # the reference kernels decide as TFLM does, clip for clip
    litert = against["local (litert)"]
    gender = next(a for a in litert["attributes"] if a["name"] == "gender")
    expected = _group_flips(frame, xnnpack, micro, "gender")
    assert {g["name"]: g["flips"] for g in gender["groups"]} == expected
    assert litert["flips"] == sum(expected.values()) > 0
    (warning,) = [w for w in three_runs["warnings"] if "TFLite Micro" in w]
    assert warning.startswith("local (litert), on optimized kernels with delegate XNNPACK (")
    rate = expected["female"] / int((frame["gender"] == "female").sum())
    assert f"female {rate:.1%} ({expected['female']} of " in warning
    for choice in ReportFormatChoice:
        text = choice.to_format().format(three_runs)
        flat = " ".join(text.split())
        if choice is ReportFormatChoice.csv:
            notes = [row["note"] for row in csv.DictReader(io.StringIO(text)) if row["row"] == "warning"]
            assert warning in notes
        else:
            assert "decides differently from TFLite Micro" in flat, choice
        assert "optimized kernels" in flat and "delegate XNNPACK" in flat, choice


def test_html_model_facts_name_the_kernels(three_runs) -> None:
    html = ReportFormatChoice.html.to_format().format(three_runs)
    assert '<th class="text">kernels</th><td class="text">optimized</td>' in html
    assert '<th class="text">delegate</th><td class="text">XNNPACK (' in html
    assert '<th class="text">threads</th><td class="text">1</td>' in html


def test_graph_optimization_without_an_onnx_run_is_refused(ds_cnn_without_fc, tone_dataset) -> None:
    from ondevice_audit.errors import UsageError

    with pytest.raises(UsageError, match="no run here is an ONNX model"):
        audit_model(ds_cnn_without_fc, tone_dataset, OPTIONS, ModelOptions(graph_optimization="basic"))



def test_tensorflow_threads_are_refused_once_tensorflow_runs(tiny_models) -> None:
    """TensorFlow's thread count is fixed once it has run an op (``tiny_models`` trained a model here): a report
    never states a count TensorFlow did not use."""
    from ondevice_audit import _tensorflow
    from ondevice_audit.errors import UsageError

    current = _tensorflow.tensorflow().config.threading.get_intra_op_parallelism_threads()
    assert load_runtime(tiny_models["keras"], None, RuntimeOptions(threads=current or None)).describe().threads == (
        current or None)  # fmt: skip
    with pytest.raises(UsageError, match="its thread count cannot change once it has started"):
        load_runtime(tiny_models["keras"], None, RuntimeOptions(threads=(current or 1) + 7))
