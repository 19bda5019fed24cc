"""Sparsity read back from an exported file: zeros of stored kernels, quantised ones by their zero point."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from ondevice_audit.sweep.weights import measure_sparsity


def _half_zero(shape: tuple[int, ...], dtype: type = np.float32, zero: int = 0) -> np.ndarray:
    values = np.arange(1, int(np.prod(shape)) + 1).astype(dtype)
    values.flat[::2] = zero
    return values.reshape(shape)


def test_onnx_kernels_through_dequantize_cast_and_integer_ops(tmp_path: Path) -> None:
    conv = _half_zero((8, 4, 3, 3))  # 288 weights, 144 zeros
    depthwise = np.ones((8, 1, 3, 3), np.float32)  # 72 weights, dense: tfmot cannot prune it
    # int8 weight with a zero point per output column (axis 1): a weight is zero where it equals its column's.
    zero_points = np.array([0, 5] * 4, np.int8)
    quantised = np.tile(np.array([3, 3, 3, 3], np.int8)[:, None], (1, 8))  # [4, 8]
    quantised[:2, :] = zero_points  # rows 0-1 zero in every column: 16 of 32
    integer = _half_zero((4, 4, 1, 1), np.uint8, zero=128)  # 16 weights, 8 at the zero point 128
    nodes = [
        helper.make_node("Conv", ["x", "w_conv"], ["a"], group=1),
        helper.make_node("Conv", ["a", "w_dw"], ["b"], group=8),
        helper.make_node("DequantizeLinear", ["w_q", "w_scale", "w_zp"], ["w_deq"], axis=1),
        helper.make_node("Cast", ["w_deq"], ["w_cast"], to=onnx.TensorProto.FLOAT),
        helper.make_node("MatMul", ["b", "w_cast"], ["c"]),
        helper.make_node("ConvInteger", ["c", "w_int", "x_zp", "w_int_zp"], ["y"]),
    ]
    initializers = [
        numpy_helper.from_array(conv, "w_conv"),
        numpy_helper.from_array(depthwise, "w_dw"),
        numpy_helper.from_array(quantised, "w_q"),
        numpy_helper.from_array(np.full(8, 0.1, np.float32), "w_scale"),
        numpy_helper.from_array(zero_points, "w_zp"),
        numpy_helper.from_array(integer, "w_int"),
        numpy_helper.from_array(np.array(0, np.uint8), "x_zp"),
        numpy_helper.from_array(np.array(128, np.uint8), "w_int_zp"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 4, 5, 5])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.INT32, None)],
        initializers,
    )
    path = tmp_path / "model.onnx"
    onnx.save(helper.make_model(graph), str(path))
    measured = measure_sparsity(path)
    assert (measured.kernels, measured.dense_kernels) == (4, 1)
    assert measured.prunable == pytest.approx((144 + 16 + 8) / (288 + 32 + 16))
    assert measured.overall == pytest.approx((144 + 16 + 8) / (288 + 72 + 32 + 16))


def test_a_file_without_kernels(tmp_path: Path) -> None:
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 4])],
    )
    onnx.save(helper.make_model(graph), str(tmp_path / "relu.onnx"))
    measured = measure_sparsity(tmp_path / "relu.onnx")
    assert (measured.prunable, measured.overall, measured.kernels) == (0.0, 0.0, 0)
