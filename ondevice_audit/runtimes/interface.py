"""A runtime loads one model file and maps a batch of inputs to scores.

Implementations: ``litert`` (TFLite files), ``tflm`` (TFLite Micro), ``onnxruntime`` (ONNX files),
``tensorflow`` (Keras). A new runtime is one module with a ``Runtime`` subclass and one ``register`` line in
``ondevice_audit/runtimes/__init__.py``. Runtimes hide quantisation: they take float32 inputs and return float32
scores, (de)quantising int8 tensors themselves.

``LoadedModel`` (what a runtime made of a file) and ``InferenceResult`` (scores with their latency) are the
types every way of running a model returns, in this process or on a device (``ondevice_audit.targets``).
"""

from __future__ import annotations

import os
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from ondevice_audit.errors import UsageError

if TYPE_CHECKING:
    from ondevice_audit.runtimes import RuntimeOptions

__all__ = ["InferenceResult", "LoadedModel", "ModelLoadError", "Runtime", "fixed_shape", "select_output", "usable_cpus"]


class ModelLoadError(UsageError):
    """The file is not a model this runtime can load."""


@dataclass(frozen=True)
class LoadedModel:
    """A model as loaded by a runtime: which runtime, and the tensors it takes and gives."""

    runtime: str
    runtime_version: str
    input_shape: list[int | None]
    """Batch axis first; None marks a dynamic axis."""
    input_dtype: str
    output_shape: list[int | None]
    """Of the output the scores come from."""
    output_dtype: str
    outputs: list[str] = field(default_factory=list)
    """Every output's name, in order (a model may have several)."""
    output: str | None = None
    """The output the scores come from (``--output``); None when the model has one."""
    kernels: str | None = None
    """Which implementation computes the ops: ``optimized`` or ``reference`` (LiteRT's builtin kernels),
    ``TFLM reference``, ``CPU execution provider`` (ONNX Runtime), ``TensorFlow``; None: not reported (a device
    runner too old to say). Optimized and reference int8 kernels round differently, so a board's numbers follow
    the kernels, not the file."""
    delegate: str | None = None
    """The delegate that took ops over, with how many partitions of the graph it took (``XNNPACK (2
    partitions)``); None: every op ran on ``kernels``."""
    threads: int | None = None
    """Threads the runtime computes with; None: the runtime decides (TensorFlow without ``--threads``)."""
    graph_optimization: str | None = None
    """ONNX Runtime's graph optimization level (``disabled``, ``basic``, ``extended``, ``all``): fusions change
    int8 arithmetic too."""


def fixed_shape(shape: Sequence[int | None]) -> tuple[int, ...] | None:
    """``shape`` as sizes, None when an axis is dynamic (a shape an array can be reshaped to)."""
    sizes = tuple(int(d) for d in shape if d is not None)
    return sizes if len(sizes) == len(shape) else None


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity, which a container or ``taskset`` narrows)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def select_output(names: list[str], wanted: str | None, model: Path) -> int:
    """The index of the output ``wanted`` names (a name, or an index); the only one when None.

    A model with several outputs is never read at output 0 by default: which one is scored is the user's call.
    """
    if wanted is None:
        if len(names) != 1:
            raise ModelLoadError(
                f"{model.name} has {len(names)} outputs ({', '.join(names)}): choose the one to score with "
                "--output NAME|INDEX"
            )
        return 0
    if wanted in names:
        return names.index(wanted)
    index = wanted.strip()
    if index.isascii() and index.isdigit() and int(index) < len(names):  # not "²" or "-1", which int() reads otherwise
        return int(index)
    raise ModelLoadError(f"{model.name} has no output {wanted!r}; its outputs: {', '.join(names)} (or an index from 0 "
                         f"to {len(names) - 1})")  # fmt: skip


@dataclass
class InferenceResult:
    """Scores of a batch of inputs, with what they cost."""

    scores: np.ndarray
    """``(n, outputs)`` float32 scores, one row per input."""
    latency: np.ndarray
    """``(n,)`` seconds per sample: the wall time of the inference call that ran it, divided by that call's
    batch size (``--batch-size 1`` gives single-sample latency as a deployed device sees it)."""
    peak_memory_bytes: int | None = None
    """Peak resident memory of the process that ran the model, where it is measured apart from the host (the
    device runner's ``VmHWM``, or ``ru_maxrss`` off Linux); None in-process."""

    @property
    def seconds_per_sample(self) -> float:
        return float(self.latency.mean()) if len(self.latency) else 0.0


class Runtime(ABC):
    name: ClassVar[str]
    model_format: ClassVar[str]

    def __init__(self, model_path: Path):
        self.model_path = model_path

    @classmethod
    def open(cls, model_path: Path, options: RuntimeOptions) -> Runtime:
        """Load ``model_path`` as ``options`` say; runtimes with settings of their own override this."""
        return cls(model_path)

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
        """``(n, *input_shape)`` float32 inputs, n <= ``max_batch``, to ``(n, outputs)`` float32 scores."""

    def run_calls(self, inputs: np.ndarray) -> np.ndarray:
        """One call per input, in order, with whatever state the model keeps carried from call to call (a
        streaming model): ``(calls, *input_shape)`` to ``(calls, outputs)``."""
        return np.concatenate([self.run_batch(one[None]) for one in inputs])

    @abstractmethod
    def _facts(self) -> dict[str, object]:
        """Runtime version, input/output shapes and dtypes."""

    def describe(self) -> LoadedModel:
        return LoadedModel(runtime=self.name, **self._facts())  # type: ignore[arg-type]  # each runtime's _facts names LoadedModel's fields (tested per runtime)

    def run_all(
        self, inputs: np.ndarray, batch_size: int = 64, on_batch: Callable[[int], None] | None = None
    ) -> InferenceResult:
        """Run every input in batches the runtime accepts, timing each call; ``on_batch(n)`` reports progress."""
        step = min(batch_size, self.max_batch or batch_size)
        outputs = []
        latency = np.zeros(len(inputs), dtype=np.float64)
        for start in range(0, len(inputs), step):
            chunk = inputs[start : start + step]
            began = time.perf_counter()
            outputs.append(np.asarray(self.run_batch(chunk), dtype=np.float32).reshape(len(chunk), -1))
            latency[start : start + len(chunk)] = (time.perf_counter() - began) / len(chunk)
            if on_batch:
                on_batch(len(chunk))
        scores = np.concatenate(outputs) if outputs else np.zeros((0, 0), np.float32)
        return InferenceResult(scores, latency)

    def close(self) -> None:
        """Release what the runtime holds beyond its interpreter (worker processes); a no-op for most."""
        return None
