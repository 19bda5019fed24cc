"""TFLite models on TensorFlow Lite Micro (PyPI ``tflite-micro``), the interpreter microcontrollers run.

Why a second TFLite runtime: TFLM runs reference kernels one sample at a time in a fixed tensor arena and
refuses ops and types a microcontroller build lacks, so auditing on it checks the model a board would run.
It also tells what the model needs there: the arena bytes TFLM allocates (its RecordingMicroAllocator),
the flatbuffer's bytes (flash) and its op list (``footprint``).

TFLM is slow per sample on a desktop, so a long ``run_all`` spreads samples over worker processes, each with
its own interpreter; scores come back in input order and do not depend on the number of workers.
"""

from __future__ import annotations

import multiprocessing
import re
import time
import weakref
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ondevice_audit._quiet import captured_stderr
from ondevice_audit.errors import PipelineError, UsageError
from ondevice_audit.runtimes.interface import InferenceResult, ModelLoadError, Runtime, select_output, usable_cpus
from ondevice_audit.runtimes.tflite_graph import TFLiteGraph, read_graph

if TYPE_CHECKING:
    from ondevice_audit.runtimes import RuntimeOptions
from ondevice_audit.runtimes.litert import dequantize, quantize

__all__ = [
    "ARENA_LIMIT_BYTES",
    "POOL_AFTER_SECONDS",
    "TFLM_BUILTIN_OPS",
    "TFLM_CUSTOM_OPS",
    "Footprint",
    "TFLMRuntime",
    "default_workers",
    "footprint",
    "model_ops",
]

ARENA_LIMIT_BYTES = 64 * 1024 * 1024
"""The arena TFLM may plan in: far above any microcontroller's RAM, so it never limits the measurement
(pages TFLM does not use are never touched, so it costs no host memory). A model needing more is refused."""

MIN_TASK_SAMPLES = 16
"""Fewest samples sent to a worker at once: below this, inter-process copies cost more than they save."""
POOL_AFTER_SECONDS = 2.0
"""TFLM time a runtime spends in its own process before it starts workers. Starting one ('spawn') imports the
caller's main module afresh, about 0.3 to 1.5 s: a short job is over before workers would pay for that."""

TFLM_BUILTIN_OPS = frozenset(
    """
    ABS ADD ADD_N ARG_MAX ARG_MIN ASSIGN_VARIABLE AVERAGE_POOL_2D BATCH_MATMUL BATCH_TO_SPACE_ND BROADCAST_ARGS
    BROADCAST_TO CALL_ONCE CAST CEIL CONCATENATION CONV_2D COS CUMSUM DEPTH_TO_SPACE DEPTHWISE_CONV_2D DEQUANTIZE
    DIV DYNAMIC_UPDATE_SLICE ELU EMBEDDING_LOOKUP EQUAL EXP EXPAND_DIMS FILL FLOOR FLOOR_DIV FLOOR_MOD
    FULLY_CONNECTED GATHER GATHER_ND GREATER GREATER_EQUAL HARD_SWISH IF L2_NORMALIZATION L2_POOL_2D LEAKY_RELU
    LESS LESS_EQUAL LOG LOG_SOFTMAX LOGICAL_AND LOGICAL_NOT LOGICAL_OR LOGISTIC MAX_POOL_2D MAXIMUM MEAN MINIMUM
    MIRROR_PAD MUL NEG NOT_EQUAL PACK PAD PADV2 PRELU QUANTIZE READ_VARIABLE REDUCE_ALL REDUCE_MAX REDUCE_MIN
    RELU RELU6 RESHAPE RESIZE_BILINEAR RESIZE_NEAREST_NEIGHBOR REVERSE_V2 ROUND RSQRT SELECT_V2 SHAPE SIN SLICE
    SOFTMAX SPACE_TO_BATCH_ND SPACE_TO_DEPTH SPLIT SPLIT_V SQRT SQUARE SQUARED_DIFFERENCE SQUEEZE STRIDED_SLICE
    SUB SUM SVDF TANH TRANSPOSE TRANSPOSE_CONV UNIDIRECTIONAL_SEQUENCE_LSTM UNPACK VAR_HANDLE WHILE ZEROS_LIKE
    """.split()
)
"""Builtin ops the ``tflite-micro`` Python interpreter registers: ``PythonOpsResolver``
(python/tflite_micro/python_ops_resolver.cc), plus REDUCE_ALL, REDUCE_MIN and REVERSE_V2 (run on the pinned
build) and DYNAMIC_UPDATE_SLICE (a kernel in the pinned build). The interpreter decides what runs; this list
only names, in a refusal, every other op of the model that is missing too (TFLM stops at the first)."""

TFLM_CUSTOM_OPS = frozenset(
    """
    CIRCULAR_BUFFER TFLite_Detection_PostProcess ethos-u SignalDelay SignalEnergy SignalFftAutoScale
    SignalFilterBank SignalFilterBankLog SignalFilterBankSpectralSubtraction SignalFilterBankSquareRoot
    SignalFramer SignalIrfft SignalOverlapAdd SignalPCAN SignalRfft SignalStacker SignalWindow
    """.split()
)
"""Custom ops the same resolver registers; TFLM's own log names a missing custom op only as ``CUSTOM``."""

_MISSING_OP = re.compile(r"(?:Didn't find op for builtin opcode '|Failed to get registration from op code )(\w+)")
_OUT_OF_ARENA = re.compile(r"(?:Failed to (?:allocate|resize)|Unable to allocate) ")
_ALLOCATION = re.compile(r"Arena allocation (total|head|tail) (\d+) bytes")
_SOURCE_PREFIX = re.compile(r"^\S+\.(?:cc|h)(?::\d+)?\s+")


@dataclass(frozen=True)
class Footprint:
    """What the model needs on a microcontroller, as TFLM allocates it on this host."""

    arena_bytes: int
    """Tensor arena TFLM used (head + tail): the ``kTensorArenaSize`` firmware must reserve, at least."""
    arena_head_bytes: int
    """Non-persistent part: activations and scratch buffers, as TFLM's memory planner overlaps them."""
    arena_tail_bytes: int
    """Persistent part: tensor and node structs, kernel data, quantisation parameters. Holds pointers, so it
    is somewhat larger on this 64-bit host than on a 32-bit microcontroller."""
    flash_bytes: int
    """The .tflite file: what firmware stores in flash (it includes ondevice-audit's small metadata entry)."""
    ops: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ops": list(self.ops)}


def model_ops(model_path: Path) -> list[str]:
    """The model's distinct ops, in order of first use: builtin names (``CONV_2D``) and custom op codes."""
    return list(read_graph(model_path).ops)


def _refusal(model_path: Path, graph: TFLiteGraph, log: list[str]) -> str:
    """One line saying why TFLM cannot run the model: missing ops by name, else TFLM's own last words."""
    named = [name for line in log for name in _MISSING_OP.findall(line)]
    if named:
        listed = [op for op in graph.ops if op not in TFLM_BUILTIN_OPS and op not in TFLM_CUSTOM_OPS]
        missing = list(dict.fromkeys([op for op in named if op != "CUSTOM"] + listed)) or named
        return (
            f"{model_path.name}: TensorFlow Lite Micro has no kernel for {', '.join(missing)}; "
            "replace these ops or use another runtime (TFLM's ops: docs/mcu-boards.md)"
        )
    if any(_OUT_OF_ARENA.match(line) for line in log):
        return (
            f"{model_path.name}: needs more than {ARENA_LIMIT_BYTES:,} bytes of TFLM tensor arena, "
            "more than any microcontroller has"
        )
    detail = "; ".join(_SOURCE_PREFIX.sub("", line).rstrip(".") for line in log[-2:]) or "no reason given"
    return (
        f"{model_path.name}: TensorFlow Lite Micro cannot run it ({detail}); TFLM runs float32 and "
        "full-integer (int8) models, not f16 or dynamic-range ones"
    )


def _tflm_detail(detail: dict[str, Any]) -> dict[str, Any]:
    """TFLM's tensor details in the shape LiteRT's (de)quantise helpers read."""
    quantization = detail["quantization_parameters"]
    scales, zero_points = quantization["scales"], quantization["zero_points"]
    params = (float(scales[0]), int(zero_points[0])) if len(scales) else (0.0, 0)
    return {"dtype": np.dtype(detail["dtype"]), "shape": [int(d) for d in detail["shape"]], "quantization": params}


class _Session:
    """One TFLM interpreter and its single input and output."""

    def __init__(self, model_path: Path, graph: TFLiteGraph, output: int = 0):
        from tflite_micro import runtime

        data = model_path.read_bytes()
        with captured_stderr() as log:
            try:
                self.interpreter = runtime.Interpreter.from_bytes(data, arena_size=ARENA_LIMIT_BYTES)
                loaded = True
            except (RuntimeError, ValueError):
                loaded = False
        if not loaded:
            raise ModelLoadError(_refusal(model_path, graph, log))
        self.input = _tflm_detail(self.interpreter.get_input_details(0))
        self.output_index = output
        self.output = _tflm_detail(self.interpreter.get_output_details(output))

    def run(self, inputs: np.ndarray) -> tuple[np.ndarray, float]:
        """Scores of every row, one invoke each, and the seconds spent in TFLM."""
        it = self.interpreter
        scores = np.empty((len(inputs), int(np.prod(self.output["shape"][1:]))), dtype=np.float32)
        quantized = quantize(np.asarray(inputs, dtype=np.float32), self.input)
        seconds = 0.0
        for i, row in enumerate(quantized):
            began = time.perf_counter()
            it.set_input(row[None], 0)
            it.invoke()
            output = it.get_output(self.output_index)
            seconds += time.perf_counter() - began
            scores[i] = dequantize(output, self.output).reshape(-1)
        return scores, seconds

    def allocations(self) -> dict[str, int]:
        with captured_stderr() as log:
            self.interpreter.print_allocations()
        found = {kind: int(size) for line in log for kind, size in _ALLOCATION.findall(line)}
        if set(found) != {"total", "head", "tail"}:
            raise PipelineError(f"could not read TFLM's arena allocation record (got: {' / '.join(log[:3])})")
        return found


def default_workers() -> int:
    """The CPUs this process may use: TFLM is single-threaded, so one worker per CPU."""
    return usable_cpus()


_WORKER: _Session | None = None


def _start_worker(model_path: str, output: int) -> None:
    global _WORKER
    path = Path(model_path)
    _WORKER = _Session(path, read_graph(path), output)


def _run_in_worker(inputs: np.ndarray) -> tuple[np.ndarray, float]:
    assert _WORKER is not None, "worker initializer did not run"
    return _WORKER.run(inputs)


class TFLMRuntime(Runtime):
    name = "tflm"
    model_format = "tflite"

    @classmethod
    def open(cls, model_path: Path, options: RuntimeOptions) -> TFLMRuntime:
        return cls(model_path, output=options.output, workers=1 if options.stream else None)

    def __init__(self, model_path: Path, workers: int | None = None, output: str | None = None):
        """``workers``: processes ``run_all`` spreads samples over (default: one per usable CPU)."""
        super().__init__(model_path)
        self.workers = default_workers() if workers is None else workers
        if self.workers < 1:
            raise UsageError(f"TFLM needs at least 1 worker process, got {self.workers}")
        self._graph = read_graph(model_path)
        if self._graph.inputs != 1:
            raise ModelLoadError(f"{model_path}: models with several inputs are not supported")
        self._output_index = select_output(list(self._graph.output_names), output, model_path)
        self._session = _Session(model_path, self._graph, self._output_index)
        self._footprint: Footprint | None = None
        self._pool: ProcessPoolExecutor | None = None
        self._seconds_here = 0.0

    @property
    def input_shape(self) -> tuple[int | None, ...]:
        return tuple(self._session.input["shape"][1:])

    @property
    def max_batch(self) -> int | None:
        return 1

    @property
    def footprint(self) -> Footprint:
        if self._footprint is None:
            recorded = self._session.allocations()
            self._footprint = Footprint(
                arena_bytes=recorded["total"],
                arena_head_bytes=recorded["head"],
                arena_tail_bytes=recorded["tail"],
                flash_bytes=self.model_path.stat().st_size,
                ops=self._graph.ops,
            )
        return self._footprint

    def run_batch(self, inputs: np.ndarray) -> np.ndarray:
        return self._session.run(inputs)[0]

    def run_all(
        self, inputs: np.ndarray, batch_size: int = 64, on_batch: Callable[[int], None] | None = None
    ) -> InferenceResult:
        """Every input, in order, in slices of ``batch_size``: here until this runtime has spent
        ``POOL_AFTER_SECONDS`` in TFLM, then spread over the worker processes.

        The latency of every sample is TFLM's mean time per sample in one interpreter (summed over workers), not
        wall time over samples, so it does not shrink with more workers and compares with single-threaded runtimes.
        """
        step = max(batch_size, MIN_TASK_SAMPLES)
        parts, seconds, start = [], 0.0, 0
        while start < len(inputs) and not self._worth_workers(len(inputs) - start, step):
            scores, spent = self._session.run(inputs[start : start + step])
            self._seconds_here += spent
            parts.append(scores)
            seconds += spent
            start += len(scores)
            if on_batch:
                on_batch(len(scores))
        if start < len(inputs):
            pool = self._executor()
            try:
                futures = [pool.submit(_run_in_worker, inputs[i : i + step]) for i in range(start, len(inputs), step)]
                for future in futures:
                    scores, spent = future.result()
                    parts.append(scores)
                    seconds += spent
                    if on_batch:
                        on_batch(len(scores))
            except BrokenProcessPool as exc:
                self._pool = None
                raise PipelineError(
                    f"a TFLM worker process died while running {self.model_path.name}: workers are started with "
                    "'spawn', so a script calling this needs `if __name__ == \"__main__\":` (or pass workers=1)"
                ) from exc
        scores = np.concatenate(parts) if parts else np.zeros((0, self._session.output["shape"][-1]), np.float32)
        return InferenceResult(scores, np.full(len(scores), seconds / max(len(inputs), 1)))

    def _worth_workers(self, remaining: int, step: int) -> bool:
        """Workers once started, or once the work has proven long enough to pay for starting them."""
        if self.workers == 1 or remaining <= step:
            return False
        return self._pool is not None or self._seconds_here >= POOL_AFTER_SECONDS

    def _executor(self) -> ProcessPoolExecutor:
        """Workers start once per runtime ('spawn': no fork of a process that may hold TensorFlow's threads)."""
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_start_worker,
                initargs=(str(self.model_path), self._output_index),
            )
            weakref.finalize(self, self._pool.shutdown, cancel_futures=True)
        return self._pool

    def close(self) -> None:
        """Stop the worker processes now rather than when the runtime is garbage-collected."""
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None

    def _facts(self) -> dict[str, object]:
        import tflite_micro

        return {
            "kernels": "TFLM reference",
            "threads": 1,  # one interpreter thread, as on a microcontroller (workers are separate interpreters)
            "runtime_version": tflite_micro.__version__,
            "input_shape": [1, *self.input_shape],
            "input_dtype": self._session.input["dtype"].name,
            "output_shape": self._session.output["shape"],
            "output_dtype": self._session.output["dtype"].name,
            "outputs": list(self._graph.output_names),
            "output": self._graph.output_names[self._output_index] if self._graph.outputs > 1 else None,
        }


def footprint(model_path: Path) -> Footprint:
    """Arena, flash and ops of ``model_path`` on TFLM; a ``UsageError`` (one line) when TFLM cannot run it."""
    if not model_path.is_file():
        raise UsageError(f"model not found: {model_path}; check the path")
    runtime = TFLMRuntime(model_path, workers=1)
    return runtime.footprint
