"""Runtimes: model file -> scores. Add a runtime as a module with a ``Runtime`` subclass and a ``register`` line.

Each entry says which model format it runs and which distributions its results depend on (so the sweep cache
and the reports know its version without importing it). ``load_runtime`` is the only way a runtime is opened.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ondevice_audit._files import model_format
from ondevice_audit.errors import UsageError
from ondevice_audit.registry import Registry
from ondevice_audit.runtimes.interface import InferenceResult, LoadedModel, ModelLoadError, Runtime

if TYPE_CHECKING:
    from ondevice_audit.runtimes.streaming import StreamSettings

__all__ = [
    "DEFAULT_RUNTIME",
    "GRAPH_OPTIMIZATIONS",
    "RUNTIMES",
    "InferenceResult",
    "LoadedModel",
    "ModelLoadError",
    "Runtime",
    "RuntimeOptions",
    "load_runtime",
    "runtime_format",
]

RUNTIMES: Registry[type[Runtime]] = Registry("runtime")
RUNTIMES.register("litert", "ondevice_audit.runtimes.litert:LiteRTRuntime", format="tflite",
                  distributions=("ai-edge-litert",),
                  summary="LiteRT (TFLite): optimized kernels and the XNNPACK delegate, as phones and Pis run it")  # fmt: skip
RUNTIMES.register("litert-builtin", "ondevice_audit.runtimes.litert:LiteRTBuiltinRuntime", format="tflite",
                  distributions=("ai-edge-litert",), summary="LiteRT: optimized builtin kernels, no delegate")  # fmt: skip
RUNTIMES.register("litert-ref", "ondevice_audit.runtimes.litert:LiteRTReferenceRuntime", format="tflite",
                  distributions=("ai-edge-litert",),
                  summary="LiteRT: reference kernels, the arithmetic TFLite Micro's kernels share")  # fmt: skip
RUNTIMES.register("onnxruntime", "ondevice_audit.runtimes.onnx:OnnxRuntime", format="onnx",
                  distributions=("onnxruntime",), summary="ONNX Runtime, CPU execution provider")  # fmt: skip
RUNTIMES.register("tensorflow", "ondevice_audit.runtimes.tensorflow:KerasRuntime", format="keras",
                  distributions=("tensorflow", "tf-keras"), extra="train", summary="Keras models on TensorFlow")  # fmt: skip
RUNTIMES.register("tflm", "ondevice_audit.runtimes.tflm:TFLMRuntime", format="tflite",
                  distributions=("tflite-micro",), extra="mcu", summary="TensorFlow Lite Micro's reference kernels")  # fmt: skip

DEFAULT_RUNTIME = {"tflite": "litert", "onnx": "onnxruntime", "keras": "tensorflow"}
"""Format -> the runtime a model of it runs on unless another is asked for (``tflm`` only when asked)."""


def runtime_format(name: str) -> str:
    """The model format runtime ``name`` runs (a ``UsageError`` for an unknown name)."""
    return str(RUNTIMES.entry(name).info["format"])


GRAPH_OPTIMIZATIONS = ("disabled", "basic", "extended", "all")
"""ONNX Runtime's graph optimization levels, least to most; ``all`` is ONNX Runtime's own default."""


@dataclass(frozen=True)
class RuntimeOptions:
    """How a runtime is opened, beyond which one."""

    trust_model: bool = False
    """Allow Keras models that run stored Python code (Lambda layers)."""
    output: str | None = None
    """The output to score, by name or index, for a model with several (``--output``)."""
    stream: StreamSettings | None = None
    """Run the model as a streaming detector over each clip's frames (``runtimes/streaming.py``)."""
    threads: int | None = None
    """Threads a runtime computes with (``--threads``); None: each runtime's default, which its
    ``LoadedModel.threads`` states (LiteRT 1, ONNX Runtime one per usable CPU, TFLM 1)."""
    graph_optimization: str | None = None
    """ONNX Runtime's graph optimization level; None: ``all``, ONNX Runtime's default."""

    def __post_init__(self) -> None:
        if self.threads is not None and self.threads < 1:
            raise UsageError(f"--threads must be at least 1, got {self.threads}")
        if self.graph_optimization is not None and self.graph_optimization not in GRAPH_OPTIMIZATIONS:
            raise UsageError(f"--graph-optimization {self.graph_optimization!r}: choose one of "
                             f"{', '.join(GRAPH_OPTIMIZATIONS)}")  # fmt: skip


def load_runtime(model_path: Path, runtime: str | None = None, options: RuntimeOptions | None = None) -> Runtime:
    """Load ``model_path`` on ``runtime`` (default: the runtime for its format)."""
    if not model_path.exists():
        raise UsageError(f"model not found: {model_path}; check the path")
    fmt = model_format(model_path)
    name = runtime or DEFAULT_RUNTIME[fmt]
    if runtime_format(name) != fmt:
        raise UsageError(f"runtime {name} runs {runtime_format(name)} models, not {fmt} ({model_path.name})")
    options = options or RuntimeOptions()
    implementation = RUNTIMES.load(name)
    if options.stream is not None:
        from ondevice_audit.runtimes.streaming import StreamingRuntime

        return StreamingRuntime(model_path, lambda: implementation.open(model_path, options), options.stream)
    return implementation.open(model_path, options)
