"""A runtime loads one model file and maps a batch of inputs to class scores.

Implementations: ``litert`` (TFLite files), ``onnxruntime`` (ONNX files), ``tensorflow`` (Keras). A new
runtime is one module with a ``Runtime`` subclass, registered in ``ondevice_audit.runtimes``. Runtimes hide
quantisation: they take float32 inputs and return float32 scores, (de)quantising int8 tensors themselves.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from ondevice_audit._files import sha256_of, size_of
from ondevice_audit.errors import UsageError

__all__ = ["InferenceResult", "ModelFacts", "ModelLoadError", "Runtime"]


class ModelLoadError(UsageError):
    """The file is not a model this runtime can load."""


@dataclass(frozen=True)
class ModelFacts:
    path: str
    format: str
    size_bytes: int
    sha256: str
    runtime: str
    runtime_version: str
    input_shape: list[int | None]
    """Per-sample input shape, batch axis first; None marks a dynamic axis."""
    input_dtype: str
    output_shape: list[int | None]
    output_dtype: str


@dataclass
class InferenceResult:
    scores: np.ndarray
    """``(n, classes)`` float32 scores, one row per input."""
    seconds_per_sample: float
    """Wall time of inference alone (no front-end), divided by the number of samples."""


class Runtime(ABC):
    name: ClassVar[str]
    model_format: ClassVar[str]

    def __init__(self, model_path: Path):
        self.model_path = model_path

    @property
    @abstractmethod
    def input_shape(self) -> tuple[int | None, ...]:
        """Per-sample input shape (without the batch axis)."""

    @property
    @abstractmethod
    def max_batch(self) -> int | None:
        """Largest batch one call takes; None when the batch axis is dynamic."""

    @abstractmethod
    def run_batch(self, inputs: np.ndarray) -> np.ndarray:
        """``(n, *input_shape)`` float32 inputs, n <= ``max_batch``, to ``(n, classes)`` float32 scores."""

    @abstractmethod
    def _facts(self) -> dict[str, object]:
        """Runtime version, input/output shapes and dtypes."""

    def describe(self) -> ModelFacts:
        return ModelFacts(
            path=str(self.model_path),
            format=self.model_format,
            size_bytes=size_of(self.model_path),
            sha256=sha256_of(self.model_path),
            runtime=self.name,
            **self._facts(),  # type: ignore[arg-type]
        )

    def run_all(
        self, inputs: np.ndarray, batch_size: int = 64, on_batch: Callable[[int], None] | None = None
    ) -> InferenceResult:
        """Run every input in batches the runtime accepts; ``on_batch(n)`` reports progress."""
        step = min(batch_size, self.max_batch or batch_size)
        outputs = []
        elapsed = 0.0
        for start in range(0, len(inputs), step):
            chunk = inputs[start : start + step]
            began = time.perf_counter()
            outputs.append(np.asarray(self.run_batch(chunk), dtype=np.float32).reshape(len(chunk), -1))
            elapsed += time.perf_counter() - began
            if on_batch:
                on_batch(len(chunk))
        scores = np.concatenate(outputs) if outputs else np.zeros((0, 0), np.float32)
        return InferenceResult(scores, elapsed / max(len(inputs), 1))
