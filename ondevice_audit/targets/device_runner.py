#!/usr/bin/env python3
"""ondevice-audit device runner: run one model over a batch of inputs, on the device, with nothing else installed.

The host copies this single file, the model and an ``.npz`` of float32 inputs into a temporary folder on the device
and runs it with the device's own Python. It needs numpy and whichever interpreter the device has:
``ai_edge_litert``, ``tflite_runtime`` or ``tensorflow.lite`` for TFLite models, ``onnxruntime`` for ONNX. It never
imports ondevice_audit (a board gets no install beyond its runtime) and runs on Python 3.7+ (older Raspberry Pi
OS and JetPack images), so it avoids newer syntax.

Commands (one JSON object is written to stdout; exit status 0, or 3 with ``{"error": ...}``):

- ``facts [--model M] [--runtime R]``: Python, CPU architecture, runtimes and versions (and the ``--kernels`` each
  TFLite one offers), free disk, memory; with a model, which runtime loads it (or why none can).
- ``run --model M --inputs IN.npz --outputs OUT.npz [--runtime R] [--batch-size N]``: class scores and
  per-sample latency to ``OUT.npz``; the JSON carries the runtime and the process's peak resident memory.

Both take ``--kernels default|builtin|ref`` (a TFLite interpreter's op resolver: optimized kernels with the
default XNNPACK delegate, without it, or the reference kernels), ``--threads N`` and, for ONNX Runtime,
``--graph-optimization disabled|basic|extended|all``; the model's facts say which kernels, delegate and
threads ran it.

Like the host's runtimes, the runner hides quantisation: float32 inputs are quantised with the input tensor's
scale and zero point, and int8 outputs are dequantised before they are written.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time

import numpy as np

PROTOCOL = 1
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
    if wanted.isdigit() and int(wanted) < len(names):
        return int(wanted)
    raise RunnerError(f"the model has no output {wanted!r} (its outputs: {', '.join(names)})", "model")


class TFLiteModel:
    """A TFLite model on one interpreter, batched as the host's LiteRT runtime batches it."""

    def __init__(self, path: str, runtime: str, output: str | None = None, kernels: str = "default",
                 threads: int | None = None):  # fmt: skip
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
        if not self._dynamic and n < self._batch:  # fixed-batch model: pad the last chunk
            inputs = np.concatenate([inputs, np.repeat(inputs[-1:], self._batch - n, axis=0)])
        it.set_tensor(self._input["index"], quantize(inputs, self._input))
        it.invoke()
        return dequantize(it.get_tensor(self._output["index"]), self._output)[:n]


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
            facts["model"] = dict(model.facts(), runtime=status["name"], runtime_version=status["version"] or "unknown")
    return facts


def command_run(args: argparse.Namespace) -> dict[str, object]:
    here = os.path.dirname(os.path.abspath(__file__))
    for stale in args.discard:  # outputs of the previous batch, already fetched; only ever files in our folder
        if os.path.dirname(os.path.abspath(stale)) == here and os.path.isfile(stale):
            os.remove(stale)
    try:
        with np.load(args.inputs, allow_pickle=False) as archive:
            inputs = np.asarray(archive["inputs"], dtype=np.float32)
    except (OSError, KeyError, ValueError) as exc:
        raise RunnerError(f"cannot read the inputs {args.inputs}: {exc}", "inputs") from None
    os.remove(args.inputs)
    model, status = load_model(args.model, args.runtime, args.output, args)
    step = min(args.batch_size, model.max_batch or args.batch_size)
    latency = np.zeros(len(inputs), dtype=np.float64)
    outputs = []
    try:
        if len(inputs):
            model.run(inputs[:1])  # warm-up: allocation and delegate set-up are not latency
        for start in range(0, len(inputs), step):
            chunk = inputs[start : start + step]
            began = time.perf_counter()
            scores = np.asarray(model.run(chunk), dtype=np.float32)
            latency[start : start + len(chunk)] = (time.perf_counter() - began) / len(chunk)
            outputs.append(scores.reshape(len(chunk), -1))
    except (ValueError, RuntimeError) as exc:  # e.g. inputs of another shape than the model takes
        raise RunnerError(f"{status['name']} failed on inputs of shape {list(inputs.shape)}: {exc}", "inputs") from None
    scores = np.concatenate(outputs) if outputs else np.zeros((0, 0), np.float32)
    partial = args.outputs + ".part"
    with open(partial, "wb") as handle:
        np.savez(handle, scores=scores, latency=latency)
    os.replace(partial, args.outputs)
    return {
        "runtime": status["name"],
        "runtime_version": status["version"] or "unknown",
        "samples": int(len(inputs)),
        "peak_memory_bytes": peak_memory_bytes(),
    }


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
    run = commands.add_parser("run", help="run --model over --inputs, write --outputs")
    run.add_argument("--model", required=True)
    run.add_argument("--inputs", required=True)
    run.add_argument("--outputs", required=True)
    run.add_argument("--runtime")
    run.add_argument("--batch-size", type=int, default=64)
    run.add_argument("--output", help="the output to score, by name or index, when the model has several")
    run.add_argument("--discard", action="append", default=[], help="a finished output file to delete first")
    _model_settings(run)
    return parser


def main(argv: list[str] | None = None) -> int:
    # Native libraries may print to file descriptor 1; keep it for our one JSON line and send theirs to stderr.
    reply = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    args = _parser().parse_args(argv)
    try:
        if args.command in ("facts", "run") and args.threads is not None and args.threads < 1:
            raise RunnerError("--threads must be at least 1", "usage")
        if args.command == "facts":
            result = command_facts(args)
        elif args.command == "run":
            if args.batch_size < 1:
                raise RunnerError("--batch-size must be at least 1", "usage")
            result = command_run(args)
        else:
            raise RunnerError("name a command: facts or run", "usage")
    except RunnerError as exc:
        reply.write(json.dumps({"protocol": PROTOCOL, "error": str(exc), "kind": exc.kind}) + "\n")
        reply.flush()
        return _EXIT_ERROR
    reply.write(json.dumps(dict(result, protocol=PROTOCOL)) + "\n")
    reply.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
