"""ONNX models on ONNX Runtime's CPU execution provider.

Two settings change what it computes or how fast, and both are recorded: the graph optimization level (``all``
by default, as ONNX Runtime's own; fusing a quantized model's QuantizeLinear/DequantizeLinear pairs into
integer kernels changes its arithmetic) and the intra-op thread count (one per usable CPU unless
``--threads`` says otherwise: set explicitly, so the report states the number that ran).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ondevice_audit.runtimes.interface import ModelLoadError, Runtime, select_output, usable_cpus

if TYPE_CHECKING:
    from ondevice_audit.runtimes import RuntimeOptions

__all__ = ["OnnxRuntime"]

_LEVELS = {"disabled": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC", "extended": "ORT_ENABLE_EXTENDED",
           "all": "ORT_ENABLE_ALL"}  # fmt: skip
_ORT_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64}


def _dim(value: object) -> int | None:
    return value if isinstance(value, int) and value > 0 else None


class OnnxRuntime(Runtime):
    name = "onnxruntime"
    model_format = "onnx"

    @classmethod
    def open(cls, model_path: Path, options: RuntimeOptions) -> OnnxRuntime:
        return cls(model_path, options.threads, options.output, options.graph_optimization or "all")

    def __init__(
        self, model_path: Path, num_threads: int | None = None, output: str | None = None, optimization: str = "all"
    ):
        super().__init__(model_path)
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3
        self.threads = num_threads or usable_cpus()
        options.intra_op_num_threads = self.threads
        self.optimization = optimization
        options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, _LEVELS[optimization])
        try:
            self._session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # ORT raises its own Fail/InvalidProtobuf types, not a common base
            raise ModelLoadError(f"{model_path}: not an ONNX model ONNX Runtime can load ({exc})") from None
        inputs = self._session.get_inputs()
        if len(inputs) != 1:
            raise ModelLoadError(f"{model_path}: models with several inputs are not supported")
        self._input = inputs[0]
        outputs = self._session.get_outputs()
        self._output_names = [o.name for o in outputs]
        self._output = outputs[select_output(self._output_names, output, model_path)]
        self._dtype = _ORT_TYPES.get(self._input.type, np.float32)

    @property
    def input_name(self) -> str:
        return str(self._input.name)

    @property
    def input_shape(self) -> tuple[int | None, ...]:
        return tuple(_dim(d) for d in self._input.shape[1:])

    @property
    def max_batch(self) -> int | None:
        return _dim(self._input.shape[0])

    def run_batch(self, inputs: np.ndarray) -> np.ndarray:
        n = len(inputs)
        fixed = self.max_batch
        if fixed and n < fixed:
            inputs = np.concatenate([inputs, np.repeat(inputs[-1:], fixed - n, axis=0)])
        (scores,) = self._session.run([self._output.name], {self._input.name: inputs.astype(self._dtype)})
        return np.asarray(scores, dtype=np.float32)[:n]

    def _facts(self) -> dict[str, object]:
        import onnxruntime as ort

        return {
            "kernels": "CPU execution provider",
            "threads": self.threads,
            "graph_optimization": self.optimization,
            "runtime_version": ort.__version__,
            "input_shape": [_dim(d) for d in self._input.shape],
            "input_dtype": self._input.type,
            "output_shape": [_dim(d) for d in self._output.shape],
            "output_dtype": self._output.type,
            "outputs": self._output_names,
            "output": self._output.name if len(self._output_names) > 1 else None,
        }
