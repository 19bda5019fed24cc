"""Runtimes: model file -> class scores. Add a runtime as a module and an entry in ``RUNTIMES``."""

from __future__ import annotations

from pathlib import Path

from ondevice_audit.errors import UsageError
from ondevice_audit.export.metadata import model_format
from ondevice_audit.runtimes.interface import InferenceResult, ModelFacts, ModelLoadError, Runtime

__all__ = ["DEFAULT_RUNTIME", "RUNTIMES", "InferenceResult", "ModelFacts", "ModelLoadError", "Runtime", "load_runtime"]

RUNTIMES = {"litert": "tflite", "onnxruntime": "onnx", "tensorflow": "keras", "tflm": "tflite"}
"""Runtime name -> the model format it runs."""
DEFAULT_RUNTIME = {fmt: name for name, fmt in reversed(RUNTIMES.items())}
"""Format -> its default runtime: the first listed for it (``tflm`` runs TFLite files only when asked)."""


def load_runtime(model_path: Path, runtime: str | None = None, trust_model: bool = False) -> Runtime:
    """Load ``model_path`` on ``runtime`` (default: the runtime for its format)."""
    if not model_path.exists():
        raise UsageError(f"model not found: {model_path}")
    fmt = model_format(model_path)
    name = runtime or DEFAULT_RUNTIME[fmt]
    if name not in RUNTIMES:
        raise UsageError(f"unknown runtime {name!r}; choose one of {', '.join(RUNTIMES)}")
    if RUNTIMES[name] != fmt:
        raise UsageError(f"runtime {name} runs {RUNTIMES[name]} models, not {fmt} ({model_path.name})")
    if name == "litert":
        from ondevice_audit.runtimes.litert import LiteRTRuntime

        return LiteRTRuntime(model_path)
    if name == "tflm":
        from ondevice_audit.runtimes.tflm import TFLMRuntime

        return TFLMRuntime(model_path)
    if name == "onnxruntime":
        from ondevice_audit.runtimes.onnx import OnnxRuntime

        return OnnxRuntime(model_path)
    from ondevice_audit.runtimes.tensorflow import KerasRuntime

    return KerasRuntime(model_path, trust_model=trust_model)
