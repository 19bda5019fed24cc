"""ONNX export: tf2onnx for the float32 graph, then ONNX Runtime's own tools for the smaller variants.

Quantising the ONNX graph (rather than converting a quantised TFLite file) keeps each variant loadable by
ONNX Runtime's CPU kernels, which is what the audit runs.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ondevice_audit import _tensorflow
from ondevice_audit.errors import UsageError
from ondevice_audit.export.interface import Exporter, ExportError, ExportSpec
from ondevice_audit.optimize.quantize import QuantApproach

__all__ = ["OnnxExporter"]

_INPUT_NAME = "input"


def _float16_converter() -> Callable[..., Any] | None:
    """``convert_float_to_float16`` from onnxconverter-common, or ONNX Runtime's vendored copy of it."""
    try:
        from onnxconverter_common.float16 import convert_float_to_float16
    except ImportError:
        try:
            from onnxruntime.transformers.float16 import convert_float_to_float16
        except ImportError:
            return None
    return convert_float_to_float16


class OnnxExporter(Exporter):
    format = "onnx"
    suffix = ".onnx"
    support = {
        QuantApproach.F32: "tf2onnx from_keras, dynamic batch axis",
        QuantApproach.F16: "float16 weights and compute, float32 I/O (onnxconverter-common float16)",
        QuantApproach.DYNAMIC: "onnxruntime quantize_dynamic: int8 weights, activations quantised at run time",
        QuantApproach.INT8: "onnxruntime quantize_static, QDQ int8 weights and activations, float32 I/O",
    }
    exclusions = {
        # ONNX itself has no float16 rewriter; the one in onnxconverter-common (also vendored by some
        # onnxruntime builds) inserts the Cast nodes that keep float32 inputs and outputs.
        QuantApproach.F16: "needs onnxconverter-common (pip install onnxconverter-common) to rewrite the "
        "graph to float16, and it is not installed",
    }

    def unsupported_reason(self, approach: QuantApproach) -> str | None:
        if approach is QuantApproach.F16 and _float16_converter() is None:
            return self.exclusions[approach]
        return super().unsupported_reason(approach)

    def _convert(self, keras_model: Any, spec: ExportSpec, out_path: Path, calibration: np.ndarray | None) -> list[str]:
        approach = spec.approach
        if approach is QuantApproach.F32:
            self._from_keras(keras_model, spec, out_path)
            return []
        with tempfile.TemporaryDirectory(prefix="ondevice-audit-onnx-") as scratch:
            float_path = Path(scratch) / "f32.onnx"
            self._from_keras(keras_model, spec, float_path)
            try:
                if approach is QuantApproach.F16:
                    self._to_float16(float_path, out_path)
                else:
                    self._quantize(float_path, Path(scratch) / "prepared.onnx", out_path, approach, calibration)
            except (ExportError, UsageError):
                raise
            except Exception as exc:  # ORT's quantiser raises plain Exceptions and onnx checker errors
                raise ExportError(f"ONNX {approach.value} quantization failed: {exc}") from exc
        return []

    @staticmethod
    def _from_keras(keras_model: Any, spec: ExportSpec, out_path: Path) -> None:
        import tf2onnx

        tf = _tensorflow.tensorflow()
        shape = (None, *(int(d) for d in keras_model.input_shape[1:]))
        signature = [tf.TensorSpec(shape, tf.float32, name=_INPUT_NAME)]
        try:
            tf2onnx.convert.from_keras(
                keras_model, input_signature=signature, opset=spec.opset, output_path=str(out_path)
            )
        except Exception as exc:  # tf2onnx surfaces converter failures as assorted exception types
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ExportError(f"ONNX conversion (tf2onnx, opset {spec.opset}) failed: {first}") from exc

    def _to_float16(self, float_path: Path, out_path: Path) -> None:
        import onnx

        convert = _float16_converter()
        if convert is None:
            raise UsageError(f"onnx + f16 is not supported: {self.exclusions[QuantApproach.F16]}")
        onnx.save(convert(onnx.load(str(float_path)), keep_io_types=True), str(out_path))

    @staticmethod
    def _quantize(
        float_path: Path,
        prepared_path: Path,
        out_path: Path,
        approach: QuantApproach,
        calibration: np.ndarray | None,
    ) -> None:
        from onnxruntime.quantization import (
            CalibrationDataReader,
            QuantFormat,
            QuantType,
            quant_pre_process,
            quantize_dynamic,
            quantize_static,
        )

        # Shape inference and constant folding first, as ORT asks; symbolic shapes would need sympy.
        quant_pre_process(str(float_path), str(prepared_path), skip_symbolic_shape=True)
        if approach is QuantApproach.DYNAMIC:
            quantize_dynamic(str(prepared_path), str(out_path), weight_type=QuantType.QInt8)
            return

        class _Reader(CalibrationDataReader):
            def __init__(self, samples: np.ndarray):
                self._rows = iter(samples)

            def get_next(self) -> dict[str, np.ndarray] | None:
                row = next(self._rows, None)
                return None if row is None else {_INPUT_NAME: row[None, ...].astype(np.float32)}

        quantize_static(
            str(prepared_path),
            str(out_path),
            _Reader(np.asarray(calibration)),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QInt8,
            weight_type=QuantType.QInt8,
            per_channel=True,
        )
