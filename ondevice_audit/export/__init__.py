"""Export: turn a trained Keras model into deployable TFLite and ONNX files, with metadata embedded.

One exporter per format (``interface.py`` has the ``Exporter`` ABC, ``tflite.py`` and ``onnx.py`` the
backends), registered here; ``variants.py`` is the export job ``ondevice-audit train``/``export`` and the sweep
run: optional pruning, then every format x quantisation, each checked for parity.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ondevice_audit.registry import Registry

if TYPE_CHECKING:
    from ondevice_audit.export.interface import Exporter

__all__ = ["EXPORTERS", "EXPORT_FORMATS", "get_exporter"]

EXPORTERS: Registry[type[Exporter]] = Registry("export format")
EXPORTERS.register("tflite", "ondevice_audit.export.tflite:TFLiteExporter", extra="train",
                   distributions=("tensorflow", "ai-edge-litert"), summary="TFLite flatbuffer via the TF converter")  # fmt: skip
EXPORTERS.register("onnx", "ondevice_audit.export.onnx:OnnxExporter", extra="train",
                   distributions=("tf2onnx", "onnx", "onnxruntime"), summary="ONNX via tf2onnx")  # fmt: skip

EXPORT_FORMATS = EXPORTERS.names()


def get_exporter(format: str) -> Exporter:
    """The exporter for ``format``; backends are imported only when asked for."""
    return EXPORTERS.load(format)()
