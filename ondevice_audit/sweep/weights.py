"""Sparsity measured in an exported file's own weights, not in the Keras model it came from.

What ships is the file: a converter may fold BatchNorm into a kernel, quantise it, or store it in float16,
and tfmot never prunes depthwise kernels. So the kernels of convolutions and fully connected layers are read
back from the TFLite flatbuffer or the ONNX graph (following Dequantize/Cast nodes to the stored constant)
and their zeros counted; a quantised value is zero when it equals its zero point. Depthwise (grouped)
kernels are counted apart: tfmot cannot prune them, so they are where requested and achieved sparsity part.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["FileSparsity", "measure_sparsity"]


@dataclass(frozen=True)
class FileSparsity:
    prunable: float
    """Share of zeros over convolution (ungrouped) and fully connected kernels: what pruning targets."""
    overall: float
    """Share of zeros over every convolution and fully connected kernel, depthwise ones included."""
    dense_kernels: int
    """Depthwise/grouped convolution kernels, which tfmot leaves dense."""
    kernels: int


@dataclass
class _Tally:
    zeros: int = 0
    size: int = 0

    def add(self, zeros: int, size: int) -> None:
        self.zeros += zeros
        self.size += size

    @property
    def share(self) -> float:
        return self.zeros / self.size if self.size else 0.0


def _zeros(values: np.ndarray, zero_point: np.ndarray | None, axis: int) -> int:
    if zero_point is None or zero_point.size == 0:
        return int(np.count_nonzero(values == 0))
    if zero_point.size == 1 or np.all(zero_point == zero_point.flat[0]):
        return int(np.count_nonzero(values == zero_point.flat[0]))
    shape = [1] * values.ndim
    shape[axis] = -1
    return int(np.count_nonzero(values == zero_point.reshape(shape)))


def measure_sparsity(path: Path) -> FileSparsity:
    kernels = _tflite_kernels(path) if path.suffix == ".tflite" else _onnx_kernels(path)
    prunable, overall = _Tally(), _Tally()
    dense = 0
    for grouped, zeros, size in kernels:
        overall.add(zeros, size)
        if grouped:
            dense += 1
        else:
            prunable.add(zeros, size)
    return FileSparsity(prunable.share, overall.share, dense, len(kernels))


def _tflite_kernels(path: Path) -> list[tuple[bool, int, int]]:
    """(grouped, zeros, size) per CONV_2D / FULLY_CONNECTED / DEPTHWISE_CONV_2D weight tensor."""
    from ai_edge_litert import schema_py_generated as schema

    ops = schema.BuiltinOperator
    model = schema.Model.GetRootAs(path.read_bytes(), 0)
    codes = [
        max(model.OperatorCodes(i).BuiltinCode(), model.OperatorCodes(i).DeprecatedBuiltinCode())
        for i in range(model.OperatorCodesLength())
    ]
    kernels = []
    for g in range(model.SubgraphsLength()):
        graph = model.Subgraphs(g)
        operators = [graph.Operators(i) for i in range(graph.OperatorsLength())]
        producers = {int(out): op for op in operators for out in op.OutputsAsNumpy()}
        for op in operators:
            code = codes[op.OpcodeIndex()]
            if code not in (ops.CONV_2D, ops.FULLY_CONNECTED, ops.DEPTHWISE_CONV_2D):
                continue
            index = int(op.InputsAsNumpy()[1])
            # A float16 model keeps its kernels as float16 constants behind a DEQUANTIZE operator.
            producer = producers.get(index)
            if producer is not None and codes[producer.OpcodeIndex()] == ops.DEQUANTIZE:
                index = int(producer.InputsAsNumpy()[0])
            found = _tflite_constant(schema, model, graph.Tensors(index))
            if found is not None:
                values, zero_point, axis = found
                kernels.append((code == ops.DEPTHWISE_CONV_2D, _zeros(values, zero_point, axis), values.size))
    return kernels


def _tflite_constant(schema: Any, model: Any, tensor: Any) -> tuple[np.ndarray, np.ndarray | None, int] | None:
    dtypes = {
        schema.TensorType.FLOAT32: np.float32,
        schema.TensorType.FLOAT16: np.float16,
        schema.TensorType.INT8: np.int8,
        schema.TensorType.UINT8: np.uint8,
        schema.TensorType.INT16: np.int16,
    }
    data = model.Buffers(tensor.Buffer()).DataAsNumpy()
    if not isinstance(data, np.ndarray) or not data.size or tensor.Type() not in dtypes:
        return None
    values = np.frombuffer(data.tobytes(), dtype=dtypes[tensor.Type()])
    values = values.reshape(tuple(int(d) for d in tensor.ShapeAsNumpy()) or (values.size,))
    quantization = tensor.Quantization()
    if quantization is None:
        return values, None, 0
    zero_point = quantization.ZeroPointAsNumpy()
    return values, zero_point if isinstance(zero_point, np.ndarray) else None, quantization.QuantizedDimension()


_ONNX_WEIGHT_OPS = {"Conv": None, "ConvInteger": 3, "MatMul": None, "MatMulInteger": 3, "Gemm": None}
"""Operator -> input holding the weight's zero point (integer ops); the weight is always input 1."""
_ONNX_PASS_THROUGH = ("Cast", "Identity", "Transpose", "Reshape")


def _onnx_kernels(path: Path) -> list[tuple[bool, int, int]]:
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    initializers = {tensor.name: tensor for tensor in graph.initializer}
    producers = {output: node for node in graph.node for output in node.output}

    def array(name: str) -> np.ndarray | None:
        if name in initializers:
            return numpy_helper.to_array(initializers[name])
        node = producers.get(name)
        if node is not None and node.op_type == "Constant":
            return numpy_helper.to_array(onnx.helper.get_attribute_value(node.attribute[0]))
        return None

    def constant(name: str) -> tuple[np.ndarray, np.ndarray | None, int] | None:
        values = array(name)
        if values is not None:
            return values, None, 0
        node = producers.get(name)
        if node is None:
            return None
        if node.op_type == "DequantizeLinear":
            values = array(node.input[0])
            if values is None:
                return None
            zero_point = array(node.input[2]) if len(node.input) > 2 and node.input[2] else None
            axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
            return values, zero_point, axis % max(values.ndim, 1)
        if node.op_type in _ONNX_PASS_THROUGH:
            return constant(node.input[0])
        return None

    kernels = []
    for node in graph.node:
        if node.op_type not in _ONNX_WEIGHT_OPS or len(node.input) < 2:
            continue
        found = constant(node.input[1])
        if found is None:
            continue
        values, zero_point, axis = found
        zero_input = _ONNX_WEIGHT_OPS[node.op_type]
        if zero_input is not None and len(node.input) > zero_input and node.input[zero_input]:
            zero_point, axis = array(node.input[zero_input]), 0
        group = next((a.i for a in node.attribute if a.name == "group"), 1)
        kernels.append((group > 1, _zeros(values, zero_point, axis), values.size))
    return kernels
