"""Real TFLite and ONNX conversions of a tiny trained DS-CNN: parity, quantised dtypes, metadata."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import pytest

from ondevice_audit.errors import UsageError
from ondevice_audit.export import get_exporter
from ondevice_audit.export.interface import ExportResult, ExportSpec
from ondevice_audit.export.metadata import ModelMetadata, read_metadata
from ondevice_audit.export.variants import export_variants, variant_path
from ondevice_audit.frontend import AudioFrontendSpec
from ondevice_audit.model.train import train_model
from ondevice_audit.optimize.quantize import QuantApproach, QuantizationConfig
from ondevice_audit.runtimes import load_runtime

SHAPE = (16, 10, 1)
LABELS = ["down", "up", "yes"]
METADATA = ModelMetadata(LABELS, AudioFrontendSpec(n_mfcc=10), {"recipe": "ds-cnn", "achieved_sparsity": 0.0})
TIMES: dict[str, float] = {}


def _data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Noise with a class-dependent offset on a few bins: learnable in a few steps, confident outputs."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, len(LABELS), n)
    x = rng.standard_normal((n, *SHAPE)).astype(np.float32)
    x[:, :, :3, 0] += 1.5 * y[:, None, None]
    return x, y


@pytest.fixture(scope="session")
def trained() -> object:
    x, y = _data(96, seed=0)
    model, _ = train_model("ds-cnn", x, y, None, None, epochs=4, batch_size=16, learning_rate=3e-3, seed=0)
    return model


@pytest.fixture(scope="session")
def exported(trained, tmp_path_factory) -> dict[tuple[str, str], ExportResult]:
    out = tmp_path_factory.mktemp("exports")
    representative, _ = _data(64, seed=1)
    results = {}
    for fmt, approaches in {"tflite": ("f32", "dynamic", "int8"), "onnx": ("f32", "dynamic", "int8")}.items():
        for approach in approaches:
            spec = ExportSpec(fmt, QuantizationConfig(QuantApproach(approach), calibration_samples=32))
            started = time.perf_counter()
            path = variant_path(out, "tiny", fmt, spec.approach)
            results[fmt, approach] = get_exporter(fmt).export(trained, spec, path, METADATA, representative)
            TIMES[f"{fmt}/{approach}"] = time.perf_counter() - started
    return results


def _agreement(model, path: Path, x: np.ndarray) -> tuple[float, float]:
    reference = np.asarray(model(x, training=False))
    scores = load_runtime(path).run_all(x).scores
    return float(np.abs(scores - reference).max()), float((scores.argmax(1) == reference.argmax(1)).mean())


@pytest.mark.parametrize("fmt", ["tflite", "onnx"])
def test_float32_export_matches_keras(trained, exported, fmt: str) -> None:
    result = exported[fmt, "f32"]
    assert result.parity_ok and result.warnings == []
    assert result.parity < 1e-4
    unseen, _ = _data(128, seed=5)
    max_diff, agreement = _agreement(trained, result.path, unseen)
    assert max_diff < 1e-4
    assert agreement == 1.0
    assert result.size_bytes == result.path.stat().st_size


@pytest.mark.parametrize("fmt", ["tflite", "onnx"])
@pytest.mark.parametrize("approach", ["dynamic", "int8"])
def test_quantized_exports_run_and_agree_on_top1(trained, exported, fmt: str, approach: str) -> None:
    result = exported[fmt, approach]
    unseen, _ = _data(128, seed=6)
    max_diff, agreement = _agreement(trained, result.path, unseen)
    assert agreement >= 0.9, (fmt, approach, agreement, max_diff)
    assert result.top1_agreement >= 0.9
    assert 0 < max_diff < 0.1
    assert result.size_bytes < exported[fmt, "f32"].size_bytes


def test_int8_tflite_has_int8_input_and_output(exported) -> None:
    facts = load_runtime(exported["tflite", "int8"].path).describe()
    assert (facts.input_dtype, facts.output_dtype) == ("int8", "int8")
    assert facts.input_shape == [None, *SHAPE]
    dynamic = load_runtime(exported["tflite", "dynamic"].path).describe()
    assert dynamic.input_dtype == "float32"


def test_every_file_carries_metadata(exported) -> None:
    for (fmt, approach), result in exported.items():
        metadata = read_metadata(result.path)
        assert metadata is not None
        assert metadata.labels == LABELS
        assert metadata.frontend == METADATA.frontend
        assert metadata.extra == {"recipe": "ds-cnn", "achieved_sparsity": 0.0, "format": fmt, "quantization": approach}


def test_drift_beyond_tolerance_is_a_warning_not_an_error(trained, tmp_path) -> None:
    spec = ExportSpec("onnx", QuantizationConfig(QuantApproach.DYNAMIC), atol=1e-9)
    result = get_exporter("onnx").export(trained, spec, tmp_path / "strict.onnx", METADATA)
    assert not result.parity_ok
    assert result.warnings and result.warnings[0].startswith("scores differ from Keras by up to")


def test_unsupported_or_unfed_requests_fail_before_converting(trained, tmp_path) -> None:
    with pytest.raises(UsageError, match="int8 quantization calibrates on representative inputs"):
        export_variants(trained, ["onnx"], [QuantApproach.F32, QuantApproach.INT8], tmp_path, METADATA)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(UsageError, match="unknown export format 'coreml'"):
        get_exporter("coreml")
    with pytest.raises(UsageError, match="unknown quantization 'int4'"):
        QuantApproach.parse("int4")


def test_onnx_f16_runs_where_a_float16_converter_is_installed(trained, tmp_path) -> None:
    exporter = get_exporter("onnx")
    reason = exporter.unsupported_reason(QuantApproach.F16)
    if reason is not None:
        with pytest.raises(UsageError, match="onnx \\+ f16 is not supported: needs onnxconverter-common"):
            exporter.check(ExportSpec("onnx", QuantizationConfig(QuantApproach.F16)), None)
        return
    result = exporter.export(
        trained, ExportSpec("onnx", QuantizationConfig(QuantApproach.F16)), tmp_path / "half.onnx", METADATA
    )
    assert result.parity_ok and result.parity < 1e-2


@pytest.mark.parametrize("approach", ["f32", "f16", "int8"])
def test_the_in_memory_conversion_gives_the_saved_model_conversions_scores(trained, tmp_path, approach):
    """The exporter freezes the inference function in memory instead of ``from_keras_model``'s SavedModel round
    trip (4-6 s of every conversion): the flatbuffer computes the same scores, int8 scales and zero points alike."""
    from ondevice_audit import _tensorflow
    from ondevice_audit.export.tflite import TFLiteExporter

    tf = _tensorflow.tensorflow()
    representative, _ = _data(64, seed=1)
    spec = ExportSpec("tflite", QuantizationConfig(QuantApproach(approach), calibration_samples=32))
    ours = tmp_path / "ours.tflite"
    TFLiteExporter()._convert(trained, spec, ours, spec.quantization.calibration_set(representative))
    converter = tf.lite.TFLiteConverter.from_keras_model(trained)
    original = spec.quantization.calibration_set(representative)
    if approach != "f32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if approach == "f16":
        converter.target_spec.supported_types = [tf.float16]
    if approach == "int8":
        converter.representative_dataset = lambda: ([row[None]] for row in original)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = converter.inference_output_type = tf.int8
    saved = tmp_path / "saved-model.tflite"
    saved.write_bytes(converter.convert())
    x, _ = _data(40, seed=3)
    ours_runtime, saved_runtime = load_runtime(ours), load_runtime(saved)
    # the same model but for its output tensor's name, which depends on how the graph was traced
    assert dataclasses.replace(ours_runtime.describe(), outputs=[]) == dataclasses.replace(saved_runtime.describe(),
                                                                                            outputs=[])  # fmt: skip
    np.testing.assert_array_equal(ours_runtime.run_all(x, 8).scores, saved_runtime.run_all(x, 8).scores)
