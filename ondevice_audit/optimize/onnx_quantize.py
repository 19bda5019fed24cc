"""ONNX Runtime quantisation of an ONNX file, for a user's model that has no Keras source to convert again.

- ``dynamic``: ``quantize_dynamic``, int8 weights, activations quantised at run time; needs no data.
- ``int8``: ``quantize_static`` in QDQ format, int8 weights and activations, activation ranges from MinMax
  calibration over the inputs given (a deterministic pass: same inputs, same file).

The quantised file keeps the source's embedded metadata (front-end, labels), and its scores are compared
with the source's on the calibration inputs, as every export's are (``optimize/parity.py``).
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ondevice_audit.errors import UsageError
from ondevice_audit.optimize.parity import MIN_TOP1_AGREEMENT, compare_scores
from ondevice_audit.optimize.quantize import DEFAULT_ATOL, QuantApproach
from ondevice_audit.runtimes.onnx import OnnxRuntime

__all__ = ["OnnxQuantization", "quantize_onnx"]

@dataclass(frozen=True)
class OnnxQuantization:
    path: Path
    approach: str
    parity: float
    """Largest |score difference| to the source file over the calibration inputs."""
    top1_agreement: float
    parity_ok: bool
    seconds: float


def quantize_onnx(
    source: Path, target: Path, approach: QuantApproach, inputs: np.ndarray | None, output: str | None = None
) -> OnnxQuantization:
    """Write ``source`` quantised with ``approach`` (``dynamic`` or ``int8``) to ``target``; ``inputs``
    (per-sample model inputs) calibrate ``int8`` and check both on ``output`` (the scored one of several)."""
    from ondevice_audit.export.metadata import read_metadata, write_metadata

    if approach not in (QuantApproach.DYNAMIC, QuantApproach.INT8):
        raise UsageError(f"ONNX Runtime quantizes to dynamic or int8, not {approach.value}")
    if inputs is None or len(inputs) == 0:
        raise UsageError("ONNX quantization needs inputs to calibrate int8 and to check the quantized file")
    inputs = np.asarray(inputs, np.float32)
    original = OnnxRuntime(source, output=output)
    started = time.perf_counter()
    with _quiet_root_logger():  # ORT logs a pre-processing suggestion on the root logger at every call
        _quantize(source, target, approach, original.input_name, inputs)
    seconds = time.perf_counter() - started
    metadata = read_metadata(source)
    if metadata is not None:
        write_metadata(target, metadata)
    # one sample per call: dynamic quantization's activation ranges come from the whole batch it is given
    parity = compare_scores(original.run_all(inputs, 1).scores, OnnxRuntime(target, output=output).run_all(inputs, 1).scores)
    ok = parity.max_abs_diff <= DEFAULT_ATOL[approach] and parity.top1_agreement >= MIN_TOP1_AGREEMENT
    return OnnxQuantization(target, approach.value, parity.max_abs_diff, parity.top1_agreement, ok, seconds)


def _quantize(source: Path, target: Path, approach: QuantApproach, name: str, inputs: np.ndarray) -> None:
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )

    if approach is QuantApproach.DYNAMIC:
        quantize_dynamic(source, target, weight_type=QuantType.QInt8)
        return

    class Samples(CalibrationDataReader):
        """One sample at a time, in order."""

        def __init__(self) -> None:
            self.rows = iter(inputs[i : i + 1] for i in range(len(inputs)))

        def get_next(self) -> dict[str, np.ndarray] | None:
            row = next(self.rows, None)
            return None if row is None else {name: row}

    with tempfile.TemporaryDirectory(prefix="ondevice-audit-onnx-") as scratch:
        staged = Path(scratch) / "model.onnx"  # ORT writes its augmented copy next to the input
        staged.write_bytes(source.read_bytes())
        quantize_static(staged, target, Samples(), quant_format=QuantFormat.QDQ,
                        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)  # fmt: skip


@contextmanager
def _quiet_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)
