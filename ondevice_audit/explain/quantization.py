"""TensorFlow Lite's own per-layer quantization tools, run speaker by speaker.

Three things come from TensorFlow Lite here, none re-implemented:

- *calibration*: the float model run over representative inputs by TF Lite's ``Calibrator``, which records each
  tensor's range (what ``TFLiteConverter`` does for an int8 export, and what ``QuantizationDebugger`` starts from);
- the *debug model*: the calibrated model quantized with ``NumericVerify`` ops (``mlir_quantize`` with
  ``enable_numeric_verify``), run by ``tf.lite.experimental.QuantizationDebugger``. Every quantized op runs next to
  its float twin fed the same (dequantized) input, so an op's error is its own, not the error of the ops before
  it carried along. The debugger averages per-clip statistics over the clips it is given; giving it one
  speaker's clips at a time gives per-speaker sums, which make per-group numbers and a speaker bootstrap;
- *selective quantization*: the calibrated model quantized with some ops kept in float (``denylisted_nodes``,
  named by their output tensor), with the variant's integer or float inputs and outputs.
"""

from __future__ import annotations

import csv
import io
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ondevice_audit import _tensorflow
from ondevice_audit._files import model_format
from ondevice_audit._quiet import quiet_native
from ondevice_audit.errors import PipelineError, UsageError
from ondevice_audit.explain.interface import Explainer, Layer, LayerErrors
from ondevice_audit.export.metadata import ModelMetadata, write_metadata
from ondevice_audit.progress import NullProgress, Progress

__all__ = [
    "QuantizationDebug",
    "QuantizationExplainer",
    "float_flatbuffer",
    "integer_activations",
    "keras_flatbuffer",
    "layer_name",
]

_POWER = "float_power"
"""The debugger metric added here: mean square of the float op's output (the signal the error is compared to)."""


def layer_name(node: str, op: str) -> str:
    """``model/conv1_relu/Relu;model/conv1_bn/...;model/conv1/Conv2D`` -> ``conv1``: the Keras layers an op was
    fused from, by the shortest name the others start with (else all of them); the op type for a tensor named
    after no layer (the model's output, ``StatefulPartitionedCall:0``)."""
    if "/" not in node:
        return op.lower()
    names = []
    for part in node.split(";"):
        pieces = part.split("/")
        name = pieces[1] if len(pieces) > 2 else pieces[0]
        if name not in names:
            names.append(name)
    shortest = min(names, key=len)
    return shortest if all(n.startswith(shortest) for n in names) else "+".join(names)


def float_flatbuffer(path: Path, trust_model: bool = False) -> bytes:
    """The float TF Lite model the quantization starts from: a Keras base converted (as an f32 export is), or a
    float32 ``.tflite`` base as it is."""
    if model_format(path) == "tflite":
        from ondevice_audit.sweep.user_model import file_quantization

        kind = file_quantization(path)
        if kind != "f32":
            raise UsageError(f"{path}: the base must be a float32 model; this one is {kind}")
        return path.read_bytes()
    if model_format(path) != "keras":
        raise UsageError(f"{path}: the base must be a Keras model or a float32 .tflite file")
    kwargs = {"safe_mode": not trust_model} if path.suffix.lower() == ".keras" else {}
    try:
        model = _tensorflow.keras().models.load_model(str(path), compile=False, **kwargs)
    except Exception as exc:  # Keras raises ValueError, OSError, TypeError... for a bad file
        raise UsageError(f"{path}: not a Keras model TensorFlow can load ({_first_line(exc)})") from None
    return keras_flatbuffer(model)


def keras_flatbuffer(model: Any) -> bytes:
    """A Keras model converted to float32 TF Lite, as an ``f32`` export converts it."""
    tf = _tensorflow.tensorflow()
    return _converted(lambda: tf.lite.TFLiteConverter.from_keras_model(model).convert(), "float conversion")


class QuantizationDebug:
    """A float model calibrated once, then quantized for the debugger or with chosen layers kept in float."""

    def __init__(self, float_model: bytes, calibration: np.ndarray):
        from tensorflow.lite.python.optimize import calibrator

        def representative() -> Iterator[list[np.ndarray]]:
            for row in np.asarray(calibration, dtype=np.float32):
                yield [row[None, ...]]

        def calibrate() -> bytes:
            prepared = calibrator.add_intermediate_tensors(float_model)
            return calibrator.Calibrator(prepared).calibrate(representative)

        self.calibrated: bytes = _converted(calibrate, "calibration")
        self.debug_model: bytes = self._quantize(enable_numeric_verify=True)

    def quantize(self, keep: Sequence[str] = (), integer_io: bool = True) -> bytes:
        """The int8 model with the ops whose output tensors are ``keep`` left in float; int8 or float32 I/O."""
        tf = _tensorflow.tensorflow()
        io_type = tf.int8 if integer_io else tf.float32
        return self._quantize(input_data_type=io_type, output_data_type=io_type, denylisted_nodes=list(keep) or None)

    def _quantize(self, **options: Any) -> bytes:
        from tensorflow.lite.python import convert

        return _converted(lambda: convert.mlir_quantize(self.calibrated, **options), "quantization")

    def layer_errors(self, inputs: np.ndarray, units: np.ndarray, progress: Progress | None = None) -> LayerErrors:
        """Run the debugger over each unit's inputs (``units[i]`` is row ``i``'s unit, 0..U-1)."""
        tf = _tensorflow.tensorflow()
        current: list[np.ndarray] = [inputs[:0]]
        debugger = _quiet(
            lambda: tf.lite.experimental.QuantizationDebugger(
                quant_debug_model_content=self.debug_model,
                debug_dataset=lambda: ([row[None, ...]] for row in current[0]),
                debug_options=tf.lite.experimental.QuantizationDebugOptions(
                    layer_direct_compare_metrics={_POWER: _float_power}
                ),
            )
        )
        n_units = int(units.max()) + 1 if len(units) else 0
        clips = np.bincount(units, minlength=n_units)
        names: list[str] = []
        layers: list[Layer] = []
        squared, power = np.zeros((n_units, 0)), np.zeros((n_units, 0))
        with (progress or NullProgress()).task("TF Lite quantization debugger, speaker by speaker", n_units) as step:
            for unit in range(n_units):
                current[0] = np.asarray(inputs[units == unit], dtype=np.float32)
                _quiet(debugger.run)
                if not layers:
                    names, layers = _layers(debugger)
                    squared, power = np.zeros((n_units, len(layers))), np.zeros((n_units, len(layers)))
                stats = debugger.layer_statistics
                squared[unit] = [stats[name]["mean_squared_error"] * clips[unit] for name in names]
                power[unit] = [stats[name][_POWER] * clips[unit] for name in names]
                step(1)
        return LayerErrors(layers, squared, power)


def _float_power(float_values: np.ndarray, quantized: np.ndarray, scale: float, zero_point: int) -> float:
    return float(np.mean(np.square(np.asarray(float_values, dtype=np.float64))))


def _layers(debugger: Any) -> tuple[list[str], list[Layer]]:
    """The debugger's verified ops, in its order: its statistics keys and, from its own CSV dump, each op's type,
    output scale and the float tensor name selective quantization takes."""
    buffer = io.StringIO()
    debugger.layer_statistics_dump(buffer)
    rows = list(csv.DictReader(io.StringIO(buffer.getvalue())))
    names = list(debugger.layer_statistics)
    layers = [
        Layer(
            node=row["tensor_name"],
            op=row["op_name"],
            name=layer_name(row["tensor_name"], row["op_name"]),
            scale=float(row["scale"]),
        )
        for row in rows
    ]
    return names, layers


def _quiet(call: Callable[[], Any]) -> Any:
    """TF Lite warns on every interpreter it makes that ``tf.lite.Interpreter`` is deprecated (the debugger has no
    other) and that preserving tensors costs memory (which the float-power metric needs); from C++, the quantizer
    prints "fully_quantize: ..." and XNNPACK announces itself (on fd 2, kept for ``--debug``)."""
    with warnings.catch_warnings(), quiet_native():
        warnings.simplefilter("ignore")
        return call()


def _converted(convert: Callable[[], bytes], step: str) -> bytes:
    try:
        return _quiet(convert)
    except ImportError as exc:
        raise PipelineError(f"this TensorFlow has no TF Lite {step} tools ({_first_line(exc)})") from None
    except Exception as exc:  # the converter raises ConverterError, ValueError, RuntimeError...
        raise PipelineError(f"TF Lite {step} failed: {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def integer_activations(path: Path) -> tuple[bool, bool]:
    """(full integer, integer I/O) of a ``.tflite`` file: whether some op computes an int8 tensor (not only int8
    weights, as dynamic-range quantization stores), and whether the model's input is int8."""
    from ai_edge_litert import schema_py_generated as schema

    try:
        graph = schema.Model.GetRootAs(path.read_bytes(), 0).Subgraphs(0)
        produced = {int(t) for i in range(graph.OperatorsLength()) for t in graph.Operators(i).OutputsAsNumpy()}
        integer = {schema.TensorType.INT8, schema.TensorType.UINT8}
        computed = any(graph.Tensors(t).Type() in integer for t in produced)
        io = graph.InputsLength() > 0 and graph.Tensors(graph.Inputs(0)).Type() in integer
    except Exception as exc:  # flatbuffers raises assorted errors on bytes that are not a model
        raise UsageError(f"{path}: not a valid TFLite model ({type(exc).__name__})") from None
    return computed, bool(io)


class QuantizationExplainer(Explainer):
    """A full-integer variant explained by TF Lite's debugger, rebuilt from its float base and calibration inputs
    (the variant file itself carries no calibration statistics), with chosen layers kept in float."""

    kind = "quantization"
    undo = "kept in float"

    def __init__(
        self,
        base_model: bytes,
        calibration: np.ndarray,
        integer_io: bool,
        metadata: ModelMetadata,
        calibration_facts: dict[str, object],
    ):
        self.debug = QuantizationDebug(base_model, calibration)
        self.integer_io = integer_io
        self.metadata = metadata
        self.calibration_facts = calibration_facts

    def facts(self) -> dict[str, object]:
        return {"calibration": self.calibration_facts, "integer_io": self.integer_io}

    def reference_runs(self, out: Path) -> list[tuple[str, Path]]:
        path = self._write(self.debug.quantize((), self.integer_io), out / "int8-rebuilt.tflite", [])
        return [("int8 rebuilt here", path)]

    def layer_errors(self, inputs: np.ndarray, units: np.ndarray, progress: Progress) -> LayerErrors:
        return self.debug.layer_errors(inputs, units, progress)

    def candidate(self, layers: Sequence[Layer], out: Path, stem: str) -> Path:
        flatbuffer = self.debug.quantize([layer.node for layer in layers], self.integer_io)
        return self._write(flatbuffer, out / f"{stem}.tflite", [layer.name for layer in layers])

    def _write(self, flatbuffer: bytes, path: Path, kept: list[str]) -> Path:
        path.write_bytes(flatbuffer)
        extra = {**self.metadata.extra, "format": "tflite", "quantization": "int8", "kept_in_float": kept}
        write_metadata(path, ModelMetadata(self.metadata.labels, self.metadata.frontend, extra))
        return path
