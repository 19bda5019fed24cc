"""TFLite models on LiteRT (``ai_edge_litert``), the interpreter that replaced tflite-runtime.

One file gives different int8 numbers on different kernels, so which kernels run is a choice the report
records, made by the runtime's name:

- ``litert``: LiteRT's optimized builtin kernels with the XNNPACK delegate it applies by default, as an app on
  a phone or a Raspberry Pi runs the file.
- ``litert-builtin``: the optimized builtin kernels without any delegate (``BUILTIN_WITHOUT_DEFAULT_DELEGATES``).
- ``litert-ref``: the reference kernels (``BUILTIN_REF``), whose integer arithmetic TensorFlow Lite Micro's
  kernels port: the closest a desktop gets to a microcontroller's numbers without TFLM itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from ondevice_audit._quiet import quiet_native
from ondevice_audit.runtimes.interface import ModelLoadError, Runtime, select_output

if TYPE_CHECKING:
    from ondevice_audit.runtimes import RuntimeOptions

__all__ = ["LiteRTBuiltinRuntime", "LiteRTReferenceRuntime", "LiteRTRuntime", "dequantize", "quantize"]


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


class LiteRTRuntime(Runtime):
    name = "litert"
    model_format = "tflite"
    resolver: ClassVar[str] = "AUTO"
    """The ``OpResolverType`` member: which kernels, and whether the default delegate (XNNPACK) is applied."""
    kernels: ClassVar[str] = "optimized"

    @classmethod
    def open(cls, model_path: Path, options: RuntimeOptions) -> LiteRTRuntime:
        return cls(model_path, num_threads=options.threads, output=options.output)

    def __init__(self, model_path: Path, num_threads: int | None = None, output: str | None = None):
        super().__init__(model_path)
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        self.threads = num_threads or 1  # what the interpreter does with None: ``int(num_threads or 1)``
        try:
            with quiet_native():  # XNNPACK announces itself on fd 2 when the interpreter is built
                self._interpreter = Interpreter(model_path=str(model_path), num_threads=self.threads,
                                                experimental_op_resolver_type=OpResolverType[self.resolver])  # fmt: skip
                self._interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            kernels = "" if self.resolver == "AUTO" else f" with its {self.kernels} kernels ({self.name})"
            raise ModelLoadError(f"{model_path}: not a TFLite model LiteRT can load{kernels} ({exc})") from None
        self._input = self._interpreter.get_input_details()[0]
        self._output_names = [detail["name"] for detail in self._interpreter.get_output_details()]
        self._output_index = select_output(self._output_names, output, model_path)
        self._output = self._interpreter.get_output_details()[self._output_index]
        signature = self._input.get("shape_signature", self._input["shape"])
        self._dynamic_batch = int(signature[0]) == -1
        self._batch = int(self._input["shape"][0])
        """The batch the tensors are allocated for."""
        if len(self._interpreter.get_input_details()) != 1:
            raise ModelLoadError(f"{model_path}: models with several inputs are not supported")

    @property
    def input_shape(self) -> tuple[int | None, ...]:
        return tuple(int(d) for d in self._input["shape"][1:])

    @property
    def max_batch(self) -> int | None:
        return None if self._dynamic_batch else int(self._input["shape"][0])

    def run_batch(self, inputs: np.ndarray) -> np.ndarray:
        n = len(inputs)
        self._allocate(n)
        if not self._dynamic_batch and n < self._batch:  # fixed-batch model: pad the last chunk
            inputs = np.concatenate([inputs, np.repeat(inputs[-1:], self._batch - n, axis=0)])
        it = self._interpreter
        it.set_tensor(self._input["index"], quantize(inputs, self._input))
        it.invoke()
        return dequantize(it.get_tensor(self._output["index"]), self._output)[:n]

    def run_calls(self, inputs: np.ndarray) -> np.ndarray:
        """One invoke per input, quantized and dequantized once for all of them: a streaming model's calls
        cost the interpreter's time, not numpy's per-call overhead."""
        self._allocate(1)
        if self._batch != 1:
            return super().run_calls(inputs)
        it, index, output = self._interpreter, self._input["index"], self._output["index"]
        quantized = quantize(inputs, self._input)[:, None]
        raw = []
        for one in quantized:
            it.set_tensor(index, one)
            it.invoke()
            raw.append(it.get_tensor(output)[0])
        return dequantize(np.stack(raw), self._output)

    def _allocate(self, n: int) -> None:
        """Tensors for batches of ``n`` (a model with a fixed batch keeps its own)."""
        it = self._interpreter
        if self._dynamic_batch and self._batch != n:
            it.resize_tensor_input(self._input["index"], [n, *self.input_shape])
            it.allocate_tensors()
            self._input = it.get_input_details()[0]
            self._output = it.get_output_details()[self._output_index]
            self._batch = n

    def _delegate(self) -> str | None:
        """The delegate LiteRT applied, with the partitions of the graph it took; None when it took none.

        LiteRT applies its default delegate when tensors are first allocated (at load, here) and adds one
        ``DELEGATE`` node per partition it took over."""
        partitions = sum(op["op_name"] == "DELEGATE" for op in self._interpreter._get_ops_details())
        if not partitions:
            return None
        return f"XNNPACK ({partitions} partition{'s' if partitions > 1 else ''})"

    def _facts(self) -> dict[str, object]:
        import ai_edge_litert

        return {
            "kernels": self.kernels,
            "delegate": self._delegate(),
            "threads": self.threads,
            "runtime_version": getattr(ai_edge_litert, "__version__", "unknown"),
            "input_shape": [None if self._dynamic_batch else int(self._input["shape"][0]), *self.input_shape],
            "input_dtype": np.dtype(self._input["dtype"]).name,
            "output_shape": [None, *(int(d) for d in self._output["shape"][1:])],
            "output_dtype": np.dtype(self._output["dtype"]).name,
            "outputs": self._output_names,
            "output": self._output["name"] if len(self._output_names) > 1 else None,
        }


class LiteRTBuiltinRuntime(LiteRTRuntime):
    """The optimized builtin kernels alone: an app that turns the default delegate off runs these."""

    name = "litert-builtin"
    resolver = "BUILTIN_WITHOUT_DEFAULT_DELEGATES"


class LiteRTReferenceRuntime(LiteRTRuntime):
    """The reference kernels: plain integer arithmetic that TFLite Micro's kernels share (see ``README``)."""

    name = "litert-ref"
    resolver = "BUILTIN_REF"
    kernels = "reference"
