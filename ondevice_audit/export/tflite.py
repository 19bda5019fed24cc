"""TFLite export with ``tf.lite.TFLiteConverter``; the file runs on LiteRT (``ai_edge_litert``)."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ondevice_audit import _tensorflow
from ondevice_audit._quiet import quiet_native
from ondevice_audit.export.interface import Exporter, ExportError, ExportSpec
from ondevice_audit.optimize.quantize import QuantApproach

__all__ = ["TFLiteExporter"]


class TFLiteExporter(Exporter):
    format = "tflite"
    suffix = ".tflite"
    support = {
        QuantApproach.F32: "float32 flatbuffer",
        QuantApproach.F16: "float16 weights dequantised at load, float32 compute and I/O",
        QuantApproach.DYNAMIC: "int8 weights, float32 I/O, activations quantised at run time (dynamic range)",
        QuantApproach.INT8: "int8 weights, activations, input and output (TFLITE_BUILTINS_INT8), as on MCUs",
    }

    def _convert(self, keras_model: Any, spec: ExportSpec, out_path: Path, calibration: np.ndarray | None) -> list[str]:
        tf = _tensorflow.tensorflow()
        converter = tf.lite.TFLiteConverter.from_keras_model(keras_model)
        approach = spec.approach
        if approach is not QuantApproach.F32:
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if approach is QuantApproach.F16:
            converter.target_spec.supported_types = [tf.float16]
        if approach is QuantApproach.INT8:
            samples = np.asarray(calibration, dtype=np.float32)

            def representative() -> Iterator[list[np.ndarray]]:
                for row in samples:
                    yield [row[None, ...]]

            converter.representative_dataset = representative
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
        try:
            with warnings.catch_warnings(), quiet_native():  # the quantizer prints "fully_quantize: ..." on fd 2
                # Emitted for every int8 model with int8 I/O; the runtime reads the scale from the file.
                warnings.filterwarnings("ignore", message="Statistics for quantized inputs were expected")
                flatbuffer = converter.convert()
        except Exception as exc:  # the converter raises ConverterError, ValueError, RuntimeError...
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ExportError(f"TFLite conversion ({approach.value}) failed: {first}") from exc
        out_path.write_bytes(flatbuffer)
        return []
