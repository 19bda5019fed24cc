"""ONNX Runtime quantisation of an ONNX file (no Keras source): real quantize_dynamic/quantize_static runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ondevice_audit.data import read_manifest
from ondevice_audit.errors import UsageError
from ondevice_audit.export.metadata import read_metadata
from ondevice_audit.frontend import build_frontend
from ondevice_audit.optimize.onnx_quantize import quantize_onnx
from ondevice_audit.optimize.quantize import QuantApproach
from ondevice_audit.runtimes import load_runtime
from ondevice_audit.sweep.user_model import file_quantization


@pytest.fixture(scope="module")
def inputs(tone_dataset: Path, tiny_models: dict[str, Path]) -> np.ndarray:
    """The model's inputs, through the front-end its metadata names (as the sweep calibrates)."""
    metadata = read_metadata(tiny_models["onnx"])
    assert metadata is not None and metadata.frontend is not None
    frame = read_manifest(tone_dataset).frame
    return build_frontend(metadata.frontend).transform([Path(p) for p in frame["file"]]).inputs


@pytest.mark.parametrize("approach", [QuantApproach.DYNAMIC, QuantApproach.INT8])
def test_a_quantized_file_agrees_keeps_its_metadata_and_is_reproducible(
    approach: QuantApproach, tiny_models: dict[str, Path], inputs: np.ndarray, tmp_path: Path
) -> None:
    source = tiny_models["onnx"]
    first = quantize_onnx(source, tmp_path / "a.onnx", approach, inputs[:40])
    again = quantize_onnx(source, tmp_path / "b.onnx", approach, inputs[:40])
    assert (tmp_path / "a.onnx").read_bytes() == (tmp_path / "b.onnx").read_bytes()  # calibration is deterministic
    assert file_quantization(source) == "f32" and file_quantization(tmp_path / "a.onnx") == approach.value
    assert read_metadata(tmp_path / "a.onnx") == read_metadata(source)
    assert first.parity_ok and first.top1_agreement >= 0.9 and first.parity == again.parity
    # The parity is the real one: recompute it with ONNX Runtime, one sample per call as a device runs it (dynamic
    # quantisation takes its activation ranges from the whole batch, so batching would change the scores).
    reference = load_runtime(source).run_all(inputs[:40], 1).scores
    quantized = load_runtime(tmp_path / "a.onnx").run_all(inputs[:40], 1).scores
    assert first.parity == pytest.approx(float(np.abs(reference - quantized).max()), abs=1e-6)


def test_what_onnx_runtime_cannot_do_is_a_usage_error(
    tiny_models: dict[str, Path], inputs: np.ndarray, tmp_path: Path
) -> None:
    with pytest.raises(UsageError, match="dynamic or int8, not f16"):
        quantize_onnx(tiny_models["onnx"], tmp_path / "x.onnx", QuantApproach.F16, inputs)
    with pytest.raises(UsageError, match="needs inputs"):
        quantize_onnx(tiny_models["onnx"], tmp_path / "x.onnx", QuantApproach.INT8, None)
