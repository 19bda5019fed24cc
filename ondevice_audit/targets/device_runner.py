#!/usr/bin/env python3
"""ondevice-audit device runner: run one model over batches of inputs, on the device, with nothing else installed.

The host copies this single file and the model into a temporary folder on the device and runs it with the
device's own Python. It needs numpy and whichever interpreter the device has: ``ai_edge_litert``,
``tflite_runtime`` or ``tensorflow.lite`` for TFLite models, ``onnxruntime`` for ONNX. It never imports
ondevice_audit (a board gets no install beyond its runtime) and runs on Python 3.7+ (older Raspberry Pi OS and
JetPack images), so it avoids newer syntax.

Commands:

- ``facts [--model M] [--runtime R]``: Python, CPU architecture, runtimes and versions (and the ``--kernels`` each
  TFLite one offers), free disk, memory; with a model, which runtime loads it (or why none can). One JSON object
  on stdout.
- ``serve --model M [--runtime R]``: load the model once, then answer batches over stdin/stdout until stdin
  closes: one process (and one SSH channel) for a whole audit, so a batch costs its transfer and its inference.
  Every message is a frame: a JSON header line whose ``size`` says how many bytes of ``.npz`` payload follow.
  The first frame out is the ``facts`` reply (with the model); each ``{"command": "run", "batch_size": N}`` frame
  in gets a frame with the outputs back (an ``{"error": ...}`` header for a batch the model cannot run). A
  ``{"command": "stream"}`` frame holds a streaming model's clips instead (see below).
- ``run --model M --inputs IN.npz --outputs OUT.npz [--runtime R] [--batch-size N] [--stream]``: one batch from
  and to files, in a process of its own (the per-batch scheme, kept for comparison: ``ssh://host?runner=per-batch``).

The facts say which ``protocol`` this file speaks and which ``requests`` it answers (``run``, ``stream``,
``close``), so a host can tell what it may ask.

A streaming model (state kept between calls in resource variables) gets ``inputs`` of shape ``(clips, calls,
*model input)``: the host has cut each clip's feature frames into the model's windows. Each clip's calls run in
order, one invoke each, on a freshly loaded interpreter (LiteRT's ``reset_all_variables`` does not reset
resource variables, so a reused one would carry the last clip's state into the next), and ``scores`` come back
per call, ``(clips, calls, outputs)``, with each clip's seconds (the fresh interpreter included) as its latency.
Smoothing and the clip's maximum stay on the host: they have one definition there.

A batch is ``inputs`` (float32 model inputs) and, for ``--frontend-on-target``, ``audio`` (float32 waveforms at
the front-end's sample rate) with the front-end's settings in the header: the runner then computes the features
itself (MFCC and log-mel with numpy alone, as the host's front-end does; the TFLite Micro front-end with
``pymicro_features`` where that is installed), runs the model on them, runs it on the host's ``inputs`` too, and
returns how far its features are from the host's. Outputs are ``scores`` and per-sample ``latency``; with audio
also ``host_scores``, ``feature_diff`` (each sample's largest absolute difference) and ``feature_latency``.

Latency is measured on warmed-up calls only: a chunk of a size the model did not run last is run once untimed
first (tensor allocation, delegate set-up and weight packing happen on such a call, not in deployment).

``facts``, ``serve`` and ``run`` open the model with ``--kernels default|builtin|ref`` (a TFLite interpreter's),
``--threads`` and ``--graph-optimization`` (ONNX Runtime's), and ``--output`` for a model with several.

Both take ``--kernels default|builtin|ref`` (a TFLite interpreter's op resolver: optimized kernels with the
default XNNPACK delegate, without it, or the reference kernels), ``--threads N`` and, for ONNX Runtime,
``--graph-optimization disabled|basic|extended|all``; the model's facts say which kernels, delegate and
threads ran it.

Like the host's runtimes, the runner hides quantisation: float32 inputs are quantised with the input tensor's
scale and zero point, and int8 outputs are dequantised before they are written.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import shutil
import sys
import time
from typing import BinaryIO

# BLAS on one thread, as the host's front-end runs it: the sums' order, and so the last bits of the features,
# must not depend on how many cores the device has. The models' own runtimes keep their threads.
for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import numpy as np  # noqa: E402

PROTOCOL = 3
"""2: persistent ``serve``; 3: the ``stream`` request and the ``requests`` the runner answers in its facts."""
REQUESTS = ("run", "stream", "close")
RUNTIMES = {"litert": "tflite", "tflite_runtime": "tflite", "tf_lite": "tflite", "onnxruntime": "onnx"}
"""Runtime name -> the model format it runs; for a format, earlier names are preferred."""
_MODULES = {"litert": "ai_edge_litert", "tflite_runtime": "tflite_runtime", "tf_lite": "tensorflow",
            "onnxruntime": "onnxruntime"}  # fmt: skip
KERNELS = ("default", "builtin", "ref")
"""A TFLite interpreter's kernel choices (``--kernels``), as op resolvers; names the host puts after a runtime
(``litert-ref``)."""
_RESOLVERS = {"default": "AUTO", "builtin": "BUILTIN_WITHOUT_DEFAULT_DELEGATES", "ref": "BUILTIN_REF"}
_ORT_LEVELS = {"disabled": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC", "extended": "ORT_ENABLE_EXTENDED",
               "all": "ORT_ENABLE_ALL"}  # fmt: skip
_ONNX_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64}
_EXIT_ERROR = 3


class RunnerError(Exception):
    """A failure the host reports to the user; ``kind`` says whose it is (``model``, ``runtime``, ``inputs``)."""

    def __init__(self, message: str, kind: str = "runner"):
        super().__init__(message)
        self.kind = kind


def model_format(path: str) -> str:
    suffix = os.path.splitext(path)[1].lower()
    if suffix == ".tflite":
        return "tflite"
    if suffix == ".onnx":
        return "onnx"
    raise RunnerError(f"the device runner runs .tflite and .onnx models, not {suffix or 'this file'}", "model")


def _distribution_version(module: str) -> str | None:
    try:
        from importlib import metadata
    except ImportError:  # Python 3.7
        return None
    names = {"ai_edge_litert": ["ai-edge-litert"], "tflite_runtime": ["tflite-runtime"],
             "tensorflow": ["tensorflow", "tensorflow-cpu", "tensorflow-aarch64", "tensorflow-macos", "tf-nightly"],
             "onnxruntime": ["onnxruntime", "onnxruntime-gpu", "onnxruntime-openvino", "onnxruntime-directml"]}  # fmt: skip
    for name in names.get(module, [module]):
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None


def runtime_status(name: str) -> dict[str, object]:
    """Whether ``name`` can be used here, and its version. TensorFlow is only located, not imported: that takes
    seconds to minutes on a small board, and only a model check needs it."""
    module = _MODULES[name]
    status: dict[str, object] = {"name": name, "format": RUNTIMES[name], "module": module}
    if name == "tf_lite":
        import importlib.util

        found = importlib.util.find_spec(module) is not None
        version = _distribution_version(module) if found else None
        status.update(usable=found, version=version, note=None if found else "not installed")
        status["kernels"] = _kernel_choices(name, version) if found else []
        return status
    try:
        imported = __import__(module)
    except Exception as exc:  # ImportError, or an ABI error from a wheel built for another numpy
        missing = isinstance(exc, ModuleNotFoundError) and exc.name == module
        status.update(usable=False, version=None, note="not installed" if missing else f"not usable: {exc}")
        return status
    version = getattr(imported, "__version__", None) or _distribution_version(module)
    status.update(usable=True, version=None if version is None else str(version), note=None)
    status["kernels"] = _kernel_choices(name, status["version"])
    return status


def _kernel_choices(name: str, version: object) -> list[str]:
    """The ``--kernels`` a runtime offers: TFLite interpreters choose their op resolver since TensorFlow 2.5."""
    if RUNTIMES[name] != "tflite":
        return []
    numbers = str(version or "0").split(".")[:2]
    recent = name == "litert" or tuple(int(n) if n.isdigit() else 0 for n in numbers) >= (2, 5)
    return list(KERNELS) if recent else ["default"]


def _memory_total() -> int | None:
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def system_facts(folder: str) -> dict[str, object]:
    """Python, OS, CPU and storage facts of the machine this runs on; disk space is measured at ``folder``."""
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        free = None
    return {
        "protocol": PROTOCOL,
        "requests": list(REQUESTS),
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "python_executable": sys.executable,
        "system": platform.system(),
        "release": platform.release(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "memory_total_bytes": _memory_total(),
        "free_disk_bytes": free,
        "numpy": np.__version__,
    }


def peak_memory_bytes() -> int | None:
    """This process's peak resident memory.

    Linux: ``VmHWM`` from ``/proc/self/status``, which starts afresh with the runner's own program. ``ru_maxrss``
    does not: it keeps the peak of the process that forked it, so a runner started from a large host process
    would report the host's memory. Elsewhere ``ru_maxrss`` (bytes on macOS).
    """
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        import resource
    except ImportError:  # not on Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def quantize(values: np.ndarray, detail: dict) -> np.ndarray:
    """float32 -> the tensor's integer type, with its scale and zero point (identity for float tensors)."""
    dtype = detail["dtype"]
    if not np.issubdtype(dtype, np.integer):
        return values.astype(dtype, copy=False)
    scale, zero_point = detail["quantization"]
    info = np.iinfo(dtype)
    return np.clip(np.round(values / scale + zero_point), info.min, info.max).astype(dtype)


def dequantize(values: np.ndarray, detail: dict) -> np.ndarray:
    if not np.issubdtype(detail["dtype"], np.integer):
        return values.astype(np.float32, copy=False)
    scale, zero_point = detail["quantization"]
    return (values.astype(np.float32) - zero_point) * scale


def _interpreter_class(name: str) -> tuple[type, object]:
    """The interpreter class of ``name`` and its ``OpResolverType`` enum (None where it has none)."""
    if name == "litert":
        from ai_edge_litert import interpreter

        return interpreter.Interpreter, interpreter.OpResolverType
    if name == "tflite_runtime":
        from tflite_runtime import interpreter

        return interpreter.Interpreter, getattr(interpreter, "OpResolverType", None)
    # A device has no ondevice_audit (so no ondevice_audit._tensorflow): TensorFlow is imported directly.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    return tf.lite.Interpreter, getattr(tf.lite.experimental, "OpResolverType", None)


def _output_index(names: list[str], wanted: str | None) -> int:
    """As the host's ``select_output``: a model with several outputs is never read at output 0 unasked."""
    if wanted is None:
        if len(names) != 1:
            raise RunnerError(f"the model has {len(names)} outputs ({', '.join(names)}): choose one", "model")
        return 0
    if wanted in names:
        return names.index(wanted)
    index = wanted.strip()
    if index.isascii() and index.isdigit() and int(index) < len(names):
        return int(index)
    raise RunnerError(f"the model has no output {wanted!r}; its outputs: {', '.join(names)} (or an index from 0 to "
                      f"{len(names) - 1})", "output")  # fmt: skip


class TFLiteModel:
    """A TFLite model on one interpreter, batched as the host's LiteRT runtime batches it."""

    def __init__(self, path: str, runtime: str, output: str | None = None, kernels: str = "default",
                 threads: int | None = None):  # fmt: skip
        self._settings = (path, runtime, output, kernels, threads)
        interpreter, resolvers = _interpreter_class(runtime)
        self._kernels, self._threads = kernels, threads or 1  # explicit: old interpreters' default is not 1
        options = {"num_threads": self._threads}
        if kernels != "default":
            if resolvers is None:
                raise RunnerError(f"{runtime} here cannot choose its kernels (that needs TensorFlow Lite 2.5+)", "runtime")
            options["experimental_op_resolver_type"] = getattr(resolvers, _RESOLVERS[kernels])
        try:
            self._it = interpreter(model_path=path, **options)
        except (ValueError, RuntimeError) as exc:
            raise RunnerError(f"{runtime} cannot load the model: {exc}", "model") from None
        if len(self._it.get_input_details()) != 1:
            raise RunnerError("models with several inputs are not supported", "model")
        self._input = self._it.get_input_details()[0]
        self._names = [str(detail["name"]) for detail in self._it.get_output_details()]
        self._index = _output_index(self._names, output)
        self._output = self._it.get_output_details()[self._index]
        signature = self._input.get("shape_signature", self._input["shape"])
        self._dynamic = int(signature[0]) == -1
        self._batch: int | None = None
        self.warm_size: int | None = None
        """The chunk size of the last call: a call of another size is run once untimed first."""

    @property
    def max_batch(self) -> int | None:
        return None if self._dynamic else int(self._input["shape"][0])

    def _delegate(self) -> str | None:
        """As the host's LiteRT runtime says it: the partitions the default delegate took at allocation."""
        self._allocate(self.max_batch or 1)
        details = getattr(self._it, "_get_ops_details", None)
        if details is None:
            return None if self._kernels != "default" else "default delegate (not reported by this interpreter)"
        partitions = sum(op["op_name"] == "DELEGATE" for op in details())
        return "XNNPACK ({} partition{})".format(partitions, "s" if partitions > 1 else "") if partitions else None

    def facts(self) -> dict[str, object]:
        return {
            "kernels": "reference" if self._kernels == "ref" else "optimized",
            "delegate": self._delegate(),
            "threads": self._threads,
            "input_shape": [None if self._dynamic else int(self._input["shape"][0])]
            + [int(d) for d in self._input["shape"][1:]],
            "input_dtype": np.dtype(self._input["dtype"]).name,
            "output_shape": [None] + [int(d) for d in self._output["shape"][1:]],
            "output_dtype": np.dtype(self._output["dtype"]).name,
            "outputs": self._names,
            "output": self._names[self._index] if len(self._names) > 1 else None,
        }

    def _allocate(self, n: int) -> None:
        it = self._it
        if self._dynamic and self._batch != n:
            it.resize_tensor_input(self._input["index"], [n] + [int(d) for d in self._input["shape"][1:]])
            it.allocate_tensors()
            self._input = it.get_input_details()[0]
            self._output = it.get_output_details()[self._index]
            self._batch = n
        elif self._batch is None:
            it.allocate_tensors()
            self._batch = int(self._input["shape"][0])

    def run(self, inputs: np.ndarray) -> np.ndarray:
        it = self._it
        n = len(inputs)
        self._allocate(n)
        assert self._batch is not None  # _allocate sets it
        if not self._dynamic and n < self._batch:  # fixed-batch model: pad the last chunk
            inputs = np.concatenate([inputs, np.repeat(inputs[-1:], self._batch - n, axis=0)])
        it.set_tensor(self._input["index"], quantize(inputs, self._input))
        it.invoke()
        return dequantize(it.get_tensor(self._output["index"]), self._output)[:n]

    def fresh(self) -> TFLiteModel:
        """The same model on a new interpreter: the only way to start from the model's initial state."""
        return TFLiteModel(*self._settings)

    def run_calls(self, calls: np.ndarray) -> np.ndarray:
        """One invoke per call, in order, the state carried from call to call; quantized and dequantized once
        for all of them, as the host's LiteRT runtime does."""
        self._allocate(1)
        if self._batch != 1:
            return np.concatenate([self.run(call[None]) for call in calls])
        it, index, output = self._it, self._input["index"], self._output["index"]
        raw = []
        for call in quantize(calls, self._input)[:, None]:
            it.set_tensor(index, call)
            it.invoke()
            raw.append(it.get_tensor(output)[0])
        return dequantize(np.stack(raw), self._output)


def _dim(value: object) -> int | None:
    return value if isinstance(value, int) and value > 0 else None


class OnnxModel:
    """An ONNX model on ONNX Runtime's CPU execution provider."""

    def __init__(self, path: str, output: str | None = None, threads: int | None = None, optimization: str = "all"):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        self._threads, self._optimization = threads or cpus, optimization
        options.intra_op_num_threads = self._threads
        options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, _ORT_LEVELS[optimization])
        try:
            self._session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # ORT raises its own Fail/InvalidProtobuf types, not a common base
            raise RunnerError(f"onnxruntime cannot load the model: {exc}", "model") from None
        if len(self._session.get_inputs()) != 1:
            raise RunnerError("models with several inputs are not supported", "model")
        self._input = self._session.get_inputs()[0]
        self._names = [o.name for o in self._session.get_outputs()]
        self._output = self._session.get_outputs()[_output_index(self._names, output)]
        self._dtype = _ONNX_TYPES.get(self._input.type, np.float32)
        self.warm_size: int | None = None

    @property
    def max_batch(self) -> int | None:
        return _dim(self._input.shape[0])

    def facts(self) -> dict[str, object]:
        return {
            "kernels": "CPU execution provider",
            "threads": self._threads,
            "graph_optimization": self._optimization,
            "input_shape": [_dim(d) for d in self._input.shape],
            "input_dtype": self._input.type,
            "output_shape": [_dim(d) for d in self._output.shape],
            "output_dtype": self._output.type,
            "outputs": self._names,
            "output": self._output.name if len(self._names) > 1 else None,
        }

    def run(self, inputs: np.ndarray) -> np.ndarray:
        n = len(inputs)
        fixed = self.max_batch
        if fixed and n < fixed:
            inputs = np.concatenate([inputs, np.repeat(inputs[-1:], fixed - n, axis=0)])
        (scores,) = self._session.run([self._output.name], {self._input.name: inputs.astype(self._dtype)})
        return np.asarray(scores, dtype=np.float32)[:n]

    def fresh(self) -> OnnxModel:
        """ONNX Runtime keeps no state between calls: the same session starts every clip afresh."""
        return self

    def run_calls(self, calls: np.ndarray) -> np.ndarray:
        return np.concatenate([self.run(call[None]) for call in calls])


def load_model(
    path: str, runtime: str | None, output: str | None = None, args: argparse.Namespace | None = None
) -> tuple[TFLiteModel | OnnxModel, dict[str, object]]:
    """The model on ``runtime`` (default: the first usable runtime for its format) and that runtime's status,
    opened with ``args``' ``--kernels``, ``--threads`` and ``--graph-optimization``.

    Every runtime tried and why it failed goes into the error, so the host can say why nothing runs the model.
    """
    fmt = model_format(path)
    kernels, threads = getattr(args, "kernels", "default"), getattr(args, "threads", None)
    if kernels != "default" and fmt != "tflite":
        raise RunnerError(f"--kernels {kernels} chooses a TFLite interpreter's kernels, not ONNX Runtime's", "usage")
    if runtime is not None and runtime not in RUNTIMES:
        raise RunnerError(f"unknown runtime {runtime!r}; the runner knows {', '.join(RUNTIMES)}", "usage")
    if runtime is not None and RUNTIMES[runtime] != fmt:
        raise RunnerError(f"runtime {runtime} runs {RUNTIMES[runtime]} models, not {fmt}", "usage")
    candidates = [runtime] if runtime else [name for name, f in RUNTIMES.items() if f == fmt]
    reasons = []
    for name in candidates:
        status = runtime_status(name)
        if not status["usable"]:
            reasons.append(f"{name}: {status['note']}")
            continue
        try:
            if fmt == "tflite":
                model = TFLiteModel(path, name, output, kernels, threads)  # type: TFLiteModel | OnnxModel
            else:
                model = OnnxModel(path, output, threads, getattr(args, "graph_optimization", "all"))
        except RunnerError as exc:
            if exc.kind == "output":  # the model's own outputs, the same on every runtime: no other would do
                raise
            reasons.append(str(exc))
            continue
        except ImportError as exc:  # tensorflow located but not importable
            reasons.append(f"{name}: not usable: {exc}")
            continue
        if name == "tf_lite" and status["version"] is None:
            import tensorflow as tf

            status["version"] = tf.__version__
        return model, status
    raise RunnerError(f"no runtime here can run this {fmt} model ({'; '.join(reasons)})", "runtime")


def timed_run(model: TFLiteModel | OnnxModel, chunk: np.ndarray) -> tuple[np.ndarray, float]:
    """Scores of ``chunk`` and the seconds of one warmed-up call: a size the model did not run last is run once
    untimed first, since resizing allocates tensors and the first invoke packs weights (XNNPACK)."""
    if model.warm_size != len(chunk):
        model.run(chunk)
        model.warm_size = len(chunk)
    began = time.perf_counter()
    scores = np.asarray(model.run(chunk), dtype=np.float32)
    return scores.reshape(len(chunk), -1), time.perf_counter() - began


def run_chunks(model: TFLiteModel | OnnxModel, inputs: np.ndarray, step: int) -> tuple[np.ndarray, np.ndarray]:
    """Scores and per-sample latency (each call's seconds over its samples) of ``inputs``, ``step`` at a time."""
    latency = np.zeros(len(inputs), dtype=np.float64)
    outputs = []
    try:
        for start in range(0, len(inputs), step):
            chunk = inputs[start : start + step]
            scores, seconds = timed_run(model, chunk)
            latency[start : start + len(chunk)] = seconds / len(chunk)
            outputs.append(scores)
    except Exception as exc:  # e.g. inputs of another shape; ONNX Runtime raises types of its own, not ValueError
        raise RunnerError(f"the model failed on inputs of shape {list(inputs.shape)}: {exc}", "inputs") from None
    scores = np.concatenate(outputs) if outputs else np.zeros((0, 0), np.float32)
    return scores, latency


# -- front-ends on the device (--frontend-on-target) -----------------------------------------------------------


def periodic_window(name: str, length: int) -> np.ndarray:
    """scipy's ``get_window(name, length, fftbins=True)`` (librosa's framing window), term for term."""
    coefficients = {"hann": (0.5, 0.5), "hamming": (0.54, 0.46)}.get(name)
    if coefficients is None:
        raise RunnerError(f"unknown window {name!r}", "frontend")
    angle = np.linspace(-np.pi, np.pi, length + 1)
    window = np.zeros(length + 1)
    for k, coefficient in enumerate(coefficients):
        window += coefficient * np.cos(k * angle)
    return window[:-1]


_MEL_LINEAR = 200.0 / 3  # Hz per mel below 1 kHz
_MEL_LOG_START = 1000.0 / _MEL_LINEAR  # written as librosa computes it: 15 and a few ulps
_MEL_LOG_STEP = np.log(6.4) / 27.0


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney's mel scale (librosa's default): linear below 1 kHz, logarithmic above."""
    hz = np.asarray(hz, dtype=np.float64)
    mel = hz / _MEL_LINEAR
    log = hz >= 1000.0
    mel[log] = _MEL_LOG_START + np.log(hz[log] / 1000.0) / _MEL_LOG_STEP
    return mel


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    hz = _MEL_LINEAR * mel
    log = mel >= _MEL_LOG_START
    hz[log] = 1000.0 * np.exp(_MEL_LOG_STEP * (mel[log] - _MEL_LOG_START))
    return hz


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float | None) -> np.ndarray:
    """librosa's ``filters.mel`` (Slaney scale, Slaney area normalisation, float32), ``(n_mels, 1 + n_fft // 2)``."""
    fmax = float(sample_rate) / 2 if fmax is None else fmax
    fft_hz = np.fft.rfftfreq(n=n_fft, d=1.0 / sample_rate)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(np.array([fmin]))[0], _hz_to_mel(np.array([fmax]))[0], n_mels + 2))
    widths = np.diff(edges)
    ramps = np.subtract.outer(edges, fft_hz)
    weights = np.zeros((n_mels, 1 + n_fft // 2), dtype=np.float32)
    for i in range(n_mels):
        weights[i] = np.maximum(0, np.minimum(-ramps[i] / widths[i], ramps[i + 2] / widths[i + 1]))
    weights *= (2.0 / (edges[2 : n_mels + 2] - edges[:n_mels]))[:, np.newaxis]
    return weights


def dct_basis(n_mfcc: int, n_mels: int) -> np.ndarray:
    """The orthonormal DCT-II (scipy's ``dct(norm="ortho")``, librosa's ``mfcc``) as an ``(n_mfcc, n_mels)`` matrix."""
    k = np.arange(n_mfcc)[:, np.newaxis]
    n = np.arange(n_mels)[np.newaxis, :]
    basis = np.cos(np.pi * k * (2 * n + 1) / (2.0 * n_mels)) * np.sqrt(2.0 / n_mels)
    basis[0] /= np.sqrt(2.0)
    return basis.astype(np.float32)


class SpectralFeatures:
    """MFCC or log-mel of waveforms, computed as the host's front-end (``frontend/audio.py``) computes them: frames
    every hop, the periodic window, a float64 real FFT cast to complex64, power, the mel filterbank, dB without a
    top_db clip, and for MFCC the DCT. Only the formulas are shared: this file imports nothing of the host's."""

    def __init__(self, settings: dict) -> None:
        self.kind = settings["kind"]
        rate = int(settings["sample_rate"])
        self.win = int(round(float(settings["frame_length_ms"]) * rate / 1000))
        self.hop = max(1, int(round(self.win * float(settings["frame_step"]))))
        self.n_mels = int(settings["n_mels"])
        self.window = periodic_window(settings["window"], self.win)
        fmax = settings.get("fmax")
        basis = mel_filterbank(
            rate, self.win, self.n_mels, float(settings["fmin"]), None if fmax is None else float(fmax)
        )
        self.mel = np.ascontiguousarray(basis.T)
        self.dct = dct_basis(int(settings["n_mfcc"]), self.n_mels).T.copy() if self.kind == "mfcc" else None

    def __call__(self, clips: np.ndarray) -> np.ndarray:
        clips = np.ascontiguousarray(clips, dtype=np.float32)
        count = 1 + (clips.shape[1] - self.win) // self.hop
        if count < 1:
            raise RunnerError(f"clips of {clips.shape[1]} samples are shorter than one frame", "frontend")
        row, step = clips.strides
        frames = np.lib.stride_tricks.as_strided(clips, (len(clips), count, self.win), (row, step * self.hop, step))
        spectrum = np.fft.rfft(frames * self.window, axis=-1).astype(np.complex64)
        power = np.square(spectrum.real) + np.square(spectrum.imag)
        mel = (power.reshape(-1, power.shape[-1]) @ self.mel).reshape(len(clips), count, self.n_mels)
        features = 10.0 * np.log10(np.maximum(mel, np.float32(1e-10)))
        if self.dct is not None:
            features = (features.reshape(-1, self.n_mels) @ self.dct).reshape(len(clips), count, -1)
        return np.ascontiguousarray(features[..., np.newaxis], dtype=np.float32)


class MicroFeatures:
    """The TensorFlow Lite Micro audio front-end (30 ms windows every 10 ms, 40 channels, noise reduction, PCAN
    gain control, log scale) from ``pymicro_features``, fed 16-bit audio 10 ms at a time and reset per clip."""

    def __init__(self, settings: dict) -> None:
        try:
            from pymicro_features import MicroFrontend
        except ImportError:
            raise RunnerError("the micro front-end needs pymicro-features on the device (pip install "
                              "pymicro-features)", "frontend") from None  # fmt: skip
        package = {"sample_rate": 16000, "window_ms": 30.0, "step_ms": 10.0, "channels": 40,
                   "upper_band_limit": 7500.0, "lower_band_limit": 125.0, "enable_pcan": True}  # fmt: skip
        other = sorted(key for key, value in package.items() if key in settings and settings[key] != value)
        if other:
            raise RunnerError(f"the micro front-end on a device computes microWakeWord's settings (pymicro-features); "
                              f"these differ: {', '.join(other)}", "frontend")  # fmt: skip
        self._frontend = MicroFrontend()

    def __call__(self, clips: np.ndarray) -> np.ndarray:
        rows = []
        for clip in clips:
            pcm = np.clip(np.round(np.asarray(clip, np.float64) * 32768), -32768, 32767).astype("<i2")
            self._frontend.reset()
            frames = []
            for start in range(0, len(pcm) - 159, 160):
                output = self._frontend.process_samples(pcm[start : start + 160].tobytes())
                if output.features:
                    frames.append(output.features)
            rows.append(np.asarray(frames, dtype=np.float32))
        return np.stack(rows)[..., np.newaxis]


_FRONTENDS: dict[str, SpectralFeatures | MicroFeatures] = {}


def build_frontend(settings: dict) -> SpectralFeatures | MicroFeatures:
    """The front-end ``settings`` (the host's ``AudioFrontendSpec`` as a dict) describe, built once and warmed up
    (the FFT plans its first transform of a size)."""
    key = json.dumps(settings, sort_keys=True)
    if key not in _FRONTENDS:
        kind = settings.get("kind")
        if kind in ("mfcc", "logmel"):
            frontend: SpectralFeatures | MicroFeatures = SpectralFeatures(settings)
        elif kind == "micro":
            frontend = MicroFeatures(settings)
        else:
            raise RunnerError(f"the device runner computes mfcc, logmel and micro features, not {kind!r}", "frontend")
        samples = int(round(float(settings.get("clip_seconds", 1.0)) * int(settings.get("sample_rate", 16000))))
        frontend(np.zeros((1, samples), dtype=np.float32))
        _FRONTENDS[key] = frontend
    return _FRONTENDS[key]


def run_audio(model: TFLiteModel | OnnxModel, arrays: dict, step: int, settings: dict | None) -> dict[str, np.ndarray]:
    """Features from ``audio`` on this device, the model on them and on the host's ``inputs`` (when sent), how far
    the two feature sets are apart, and the features' own per-sample seconds."""
    if not isinstance(settings, dict):
        raise RunnerError("audio came without front-end settings", "usage")
    frontend = build_frontend(settings)
    audio, host = arrays["audio"], arrays.get("inputs")
    feature_latency = np.zeros(len(audio), dtype=np.float64)
    parts = []
    for start in range(0, len(audio), step):
        began = time.perf_counter()
        parts.append(frontend(audio[start : start + step]))
        feature_latency[start : start + len(parts[-1])] = (time.perf_counter() - began) / len(parts[-1])
    features = np.concatenate(parts) if parts else np.zeros((0,), np.float32)
    if host is not None:
        if features.size != host.size:
            raise RunnerError(f"the device front-end makes features of shape {list(features.shape[1:])} but the "
                              f"host's are {list(host.shape[1:])}", "frontend")  # fmt: skip
        features = features.reshape(host.shape)
    scores, latency = run_chunks(model, features, step)
    outputs = {"scores": scores, "latency": latency, "feature_latency": feature_latency}
    if host is not None:
        outputs["host_scores"] = run_chunks(model, host, step)[0]
        outputs["feature_diff"] = np.abs(features - host).reshape(len(host), -1).max(axis=1, initial=0.0)
    return outputs


def run_stream(model: TFLiteModel | OnnxModel, arrays: dict) -> dict[str, np.ndarray]:
    """A streaming model's clips (see the module docstring): each clip's calls in order on a fresh interpreter;
    the outputs of every call, and each clip's seconds."""
    clips = arrays.get("inputs")
    if clips is None or clips.ndim < 3 or "audio" in arrays:
        raise RunnerError("a stream request holds inputs of shape (clips, calls, ...) and no audio", "inputs")
    latency = np.zeros(len(clips), dtype=np.float64)
    outputs = []
    try:
        for i, calls in enumerate(clips):
            began = time.perf_counter()
            outputs.append(np.asarray(model.fresh().run_calls(calls), dtype=np.float32).reshape(len(calls), -1))
            latency[i] = time.perf_counter() - began
    except RunnerError:
        raise
    except Exception as exc:  # as run_chunks: inputs of another shape; each runtime raises types of its own
        raise RunnerError(f"the model failed on calls of shape {list(clips.shape[2:])}: {exc}", "inputs") from None
    scores = np.stack(outputs) if outputs else np.zeros((0, clips.shape[1], 0), np.float32)
    return {"scores": scores, "latency": latency}


def run_batch(
    model: TFLiteModel | OnnxModel, arrays: dict, batch_size: int, frontend: dict | None, stream: bool = False
) -> dict:
    """One batch's outputs: ``scores`` and ``latency``, plus the front-end's outputs when ``audio`` was sent;
    with ``stream``, a streaming model's clips (``run_stream``)."""
    if batch_size < 1:
        raise RunnerError("the batch size must be at least 1", "usage")
    if stream:
        return run_stream(model, arrays)
    step = min(batch_size, model.max_batch or batch_size)
    if "audio" in arrays:
        return run_audio(model, arrays, step, frontend)
    if "inputs" not in arrays:
        raise RunnerError("a batch holds inputs or audio", "inputs")
    scores, latency = run_chunks(model, arrays["inputs"], step)
    return {"scores": scores, "latency": latency}


def read_arrays(source: str | io.BytesIO) -> dict[str, np.ndarray]:
    """The float32 arrays of an ``.npz`` (a path, or a file object over bytes received)."""
    try:
        with np.load(source, allow_pickle=False) as archive:
            return {name: np.asarray(archive[name], dtype=np.float32) for name in archive.files}
    except (OSError, KeyError, ValueError) as exc:
        raise RunnerError(f"cannot read the batch: {exc}", "inputs") from None


# -- commands ------------------------------------------------------------------------------------------------


def model_facts(model: TFLiteModel | OnnxModel, status: dict[str, object]) -> dict[str, object]:
    return dict(model.facts(), runtime=status["name"], runtime_version=status["version"] or "unknown")


def command_facts(args: argparse.Namespace) -> dict[str, object]:
    folder = args.workdir or os.path.dirname(os.path.abspath(__file__))
    facts = system_facts(folder)
    facts["runtimes"] = [runtime_status(name) for name in RUNTIMES]
    if args.model:
        try:
            model, status = load_model(args.model, args.runtime, args.output, args)
        except RunnerError as exc:
            facts["model_error"] = str(exc)
        else:
            facts["model"] = model_facts(model, status)
    return facts


def command_run(args: argparse.Namespace) -> dict[str, object]:
    here = os.path.dirname(os.path.abspath(__file__))
    for stale in args.discard:  # outputs of the previous batch, already fetched; only ever files in our folder
        if os.path.dirname(os.path.abspath(stale)) == here and os.path.isfile(stale):
            os.remove(stale)
    arrays = read_arrays(args.inputs)
    os.remove(args.inputs)
    model, status = load_model(args.model, args.runtime, args.output, args)
    frontend = json.loads(args.frontend) if args.frontend else None
    outputs = run_batch(model, arrays, args.batch_size, frontend, args.stream)
    partial = args.outputs + ".part"
    with open(partial, "wb") as handle:
        np.savez(handle, **outputs)
    os.replace(partial, args.outputs)
    return {
        "runtime": status["name"],
        "runtime_version": status["version"] or "unknown",
        "samples": int(len(outputs["scores"])),
        "peak_memory_bytes": peak_memory_bytes(),
    }


def read_frame(stream: BinaryIO) -> tuple[dict, bytes] | None:
    """The next frame: its JSON header and ``size`` bytes of payload; None when the other side closed."""
    line = stream.readline()
    if not line:
        return None
    try:
        header = json.loads(line.decode())
        size = int(header.get("size", 0))
    except (ValueError, AttributeError):
        raise RunnerError("a frame header is not a JSON object with a size", "protocol") from None
    payload = stream.read(size) if size else b""
    return None if len(payload) < size else (header, payload)


def write_frame(stream: io.BufferedIOBase, header: dict, arrays: dict | None = None) -> None:
    payload = b""
    if arrays is not None:
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        payload = buffer.getvalue()
    stream.write((json.dumps(dict(header, protocol=PROTOCOL, size=len(payload))) + "\n").encode())
    stream.write(payload)
    stream.flush()


def command_serve(args: argparse.Namespace, out: io.BufferedIOBase) -> int:
    """Facts with the model first, then one reply per batch until the host closes stdin (or says close)."""
    facts = command_facts(argparse.Namespace(workdir=args.workdir, model=None, runtime=None, output=None))
    try:
        model, status = load_model(args.model, args.runtime, args.output, args)
    except RunnerError as exc:
        write_frame(out, dict(facts, model_error=str(exc)))
        return 0
    write_frame(out, dict(facts, model=model_facts(model, status)))
    stdin = sys.stdin.buffer
    while True:
        frame = read_frame(stdin)
        if frame is None or frame[0].get("command") == "close":
            return 0
        header, payload = frame
        try:
            if header.get("command") not in ("run", "stream"):
                raise RunnerError(f"unknown command {header.get('command')!r}", "protocol")
            outputs = run_batch(model, read_arrays(io.BytesIO(payload)), int(header.get("batch_size", 64)),
                                header.get("frontend"), header.get("command") == "stream")  # fmt: skip
        except RunnerError as exc:
            write_frame(out, {"error": str(exc), "kind": exc.kind})
            continue
        write_frame(out, {"runtime": status["name"], "samples": int(len(outputs["scores"])),
                          "peak_memory_bytes": peak_memory_bytes()}, outputs)  # fmt: skip


def _model_settings(command: argparse.ArgumentParser) -> None:
    command.add_argument("--kernels", choices=KERNELS, default="default", help="a TFLite interpreter's kernels")
    command.add_argument("--threads", type=int, help="threads the runtime computes with (default: 1 for TFLite, "
                         "one per usable CPU for ONNX Runtime)")  # fmt: skip
    command.add_argument("--graph-optimization", choices=sorted(_ORT_LEVELS), default="all",
                         help="ONNX Runtime's graph optimization level")  # fmt: skip


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="device_runner.py", description="ondevice-audit device runner")
    commands = parser.add_subparsers(dest="command")
    facts = commands.add_parser("facts", help="describe this device (and whether it can run --model)")
    facts.add_argument("--model")
    facts.add_argument("--runtime")
    facts.add_argument("--workdir", help="where free disk space is measured (default: this file's folder)")
    facts.add_argument("--output", help="the output to score, by name or index, when the model has several")
    _model_settings(facts)
    serve = commands.add_parser("serve", help="load --model once, then run the batches framed on stdin")
    serve.add_argument("--model", required=True)
    serve.add_argument("--runtime")
    serve.add_argument("--workdir", help="where free disk space is measured (default: this file's folder)")
    serve.add_argument("--output", help="the output to score, by name or index, when the model has several")
    _model_settings(serve)
    run = commands.add_parser("run", help="run --model over --inputs, write --outputs")
    run.add_argument("--model", required=True)
    run.add_argument("--inputs", required=True)
    run.add_argument("--outputs", required=True)
    run.add_argument("--runtime")
    run.add_argument("--batch-size", type=int, default=64)
    run.add_argument("--output", help="the output to score, by name or index, when the model has several")
    run.add_argument("--frontend", help="front-end settings (JSON) for a batch of audio")
    run.add_argument("--discard", action="append", default=[], help="a finished output file to delete first")
    run.add_argument("--stream", action="store_true", help="the inputs are a streaming model's clips of calls")
    _model_settings(run)
    return parser


def main(argv: list[str] | None = None) -> int:
    # Native libraries may print to file descriptor 1; keep it for our replies and send theirs to stderr.
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    args = _parser().parse_args(argv)
    try:
        if args.command in ("facts", "run") and args.threads is not None and args.threads < 1:
            raise RunnerError("--threads must be at least 1", "usage")
        if args.command == "facts":
            result = command_facts(args)
        elif args.command == "serve":
            return command_serve(args, out)
        elif args.command == "run":
            result = command_run(args)
        else:
            raise RunnerError("name a command: facts, serve or run", "usage")
    except RunnerError as exc:
        write_frame(out, {"error": str(exc), "kind": exc.kind})
        return _EXIT_ERROR
    write_frame(out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
