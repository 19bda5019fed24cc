"""A user's own trained model as the base of a sweep, instead of one of our recipes.

``model = "PATH"`` in the matrix (or ``sweep --model PATH``) names it. What it is decides what can be swept:

- a Keras model (``.keras``, ``.h5``; a SavedModel folder is refused, as a cell holds one model file) is the
  trained base of every cell. Optimisation factors (pruning, quantisation, export format, runtime, target)
  start from its weights as they are; pruning fine-tunes it on the sweep's training split. A cell whose
  front-end differs from the model's own rebuilds the architecture from its config for the new input shape,
  with fresh weights, and trains it from scratch with ``[training]``; an architecture that cannot take the
  shape fails that cell in one line and the sweep goes on.
- a TFLite or ONNX file has no weights we can retrain or prune: only the runtime, the target and, for ONNX,
  ONNX Runtime quantisation (``optimize/onnx_quantize.py``) are swept; a factor that would need more is
  refused up front.

Its label names come from the metadata the file carries (as ``audit`` reads them) or from ``--labels``, counted
as the data's labels through ``--label-map``; its front-end from that metadata or from a ``--frontend
path/to/file.py:callable`` (or ``package.module:callable``) plug-in, which fixes the front-end (no front-end
factor can be swept), is loaded by every worker process from the same reference, and whose arrays are reshaped
to the model's input when only the shape differs (a missing channel axis), as ``audit`` does. The file's sha256,
and the plug-in file's, are in every cache key that reads them, so a changed model or plug-in is never served
stale.

Every such sweep has a ``baseline`` cell, the model exactly as given on its format's default runtime, that
the other cells are compared with (``sweep/baseline.py``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ondevice_audit._files import model_format, sha256_of
from ondevice_audit.errors import UsageError
from ondevice_audit.export.metadata import read_metadata
from ondevice_audit.frontend import (
    AUDIO_FACTOR_FIELDS,
    AudioFrontendSpec,
    Frontend,
    FrontendSpec,
    ImageFrontendSpec,
    build_frontend,
    spec_from_dict,
)
from ondevice_audit.frontend.plugin import PluginFrontend, plugin_sha256
from ondevice_audit.label_map import LabelMap
from ondevice_audit.model_io import ModelOptions, resolve_labels
from ondevice_audit.runtimes import DEFAULT_RUNTIME, RuntimeOptions
from ondevice_audit.runtimes.interface import fixed_shape, select_output

__all__ = [
    "BASELINE_CELL",
    "PluginReference",
    "UserModel",
    "as_given_sparsity",
    "build_sweep_frontend",
    "file_quantization",
    "load_keras_model",
    "load_user_model",
    "rebuild_for_input",
]

BASELINE_CELL = "baseline"
"""The id of the cell that is the user's model as given."""


@dataclass(frozen=True)
class PluginReference:
    """A front-end plug-in as a sweep's front-end setting (what the features key holds)."""

    plugin: str
    """``/absolute/path/to/file.py:callable`` or ``package.module:callable``: what every worker loads."""
    sha256: str
    """Of the plug-in's file: an edited plug-in computes its features again."""
    input_shape: tuple[int, ...] | None
    """The model's per-sample input shape, which the plug-in's arrays are reshaped to; None: not known."""
    kind: str = "plugin"


def plugin_reference(reference: str, model: Path) -> PluginReference:
    """Load and check the plug-in now, so a bad reference fails before any work."""
    plugin = PluginFrontend(reference)
    return PluginReference(plugin.reference, plugin_sha256(plugin.reference), _input_shape(model))


def _input_shape(path: Path) -> tuple[int, ...] | None:
    """Per-sample input shape, read without TensorFlow (a Keras file's config names it)."""
    fmt = model_format(path)
    if fmt != "keras":
        from ondevice_audit.runtimes import load_runtime

        shape: Sequence[int | None] | None = load_runtime(path).input_shape
    else:
        shape = _keras_input_shape(path)
    return None if shape is None else fixed_shape(shape)


def _keras_config(path: Path) -> dict[str, Any]:
    """The model's architecture as the file stores it (JSON), read without TensorFlow."""
    import json
    import zipfile

    if path.suffix.lower() == ".keras":
        with zipfile.ZipFile(path) as archive:
            return dict(json.loads(archive.read("config.json")).get("config", {}))
    import h5py

    with h5py.File(path, "r") as archive:
        text = archive.attrs.get("model_config")
    config = json.loads(text.decode() if isinstance(text, bytes) else str(text)) if text is not None else {}
    return dict(config.get("config", {}))


def _keras_input_shape(path: Path) -> list[int | None] | None:
    layers = _keras_config(path).get("layers") or [{}]
    shape = layers[0].get("config", {}).get("batch_input_shape")
    return list(shape[1:]) if shape else None


def _chosen_output(path: Path, fmt: str, wanted: str | None) -> str | None:
    """The output ``--output`` names, checked before any work; None for a model with one output.

    A Keras model with several outputs is refused: retraining and pruning would need a loss for each.
    """
    if fmt == "keras":
        outputs = [str(layer[0]) for layer in _keras_config(path).get("output_layers") or []]
        if len(outputs) > 1:
            raise UsageError(
                f"{path.name} has {len(outputs)} outputs ({', '.join(outputs)}): a sweep retrains and prunes a "
                "Keras model with one; save the output you audit as its own model (keras.Model(model.input, "
                "model.get_layer(NAME).output)) or sweep its .tflite/.onnx export with --output"
            )
        if wanted is not None:  # its one output, by name (a Sequential model's has none in the file) or index 0
            select_output(outputs or ["0"], wanted, path)
        return None
    from ondevice_audit.runtimes import load_runtime

    return load_runtime(path, options=RuntimeOptions(output=wanted)).describe().output


def build_sweep_frontend(settings: dict[str, Any]) -> Frontend:
    """The front-end a features key describes: a plug-in (its arrays fitted to the model), or one of ours."""
    if settings.get("kind") == "plugin":
        shape = settings["input_shape"]
        return _ModelShapedPlugin(settings["plugin"], tuple(shape) if shape is not None else None)
    return build_frontend(spec_from_dict(settings))


class _ModelShapedPlugin(PluginFrontend):
    """The plug-in's arrays, reshaped to the model's input when only the shape differs."""

    def __init__(self, reference: str, input_shape: tuple[int, ...] | None):
        super().__init__(reference)
        self.input_shape = input_shape

    def load_one(self, path: Path) -> np.ndarray:
        array = super().load_one(path)
        shape = self.input_shape
        if shape is not None and array.shape != shape and array.size == int(np.prod(shape)):
            return array.reshape(shape)
        return array


@dataclass(frozen=True)
class UserModel:
    path: Path
    format: str
    """``keras``, ``tflite`` or ``onnx``."""
    sha256: str
    labels: tuple[str, ...]
    """Class names in output order: the sweep's classes."""
    frontend: FrontendSpec | PluginReference
    """The model's own front-end: the default level of every front-end factor, and the baseline's; a
    plug-in is every cell's."""
    quantization: str
    """What the file is (``f32`` for Keras): the only quantization level a TFLite file can have."""
    trust_model: bool = False
    label_map: LabelMap | None = None
    """Model class -> data label (``--label-map``): how cells are scored, and the targets of cells that train."""
    output: str | None = None
    """The output every cell scores (``--output``, its name); None when the model has one."""

    @property
    def retrainable(self) -> bool:
        return self.format == "keras"

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def runtime(self) -> str:
        """The baseline's runtime: the default for the file's format."""
        return DEFAULT_RUNTIME[self.format]

    @property
    def plugin(self) -> str | None:
        return self.frontend.plugin if isinstance(self.frontend, PluginReference) else None

    def identity(self) -> dict[str, Any]:
        """What enters cache keys: the content, not where the file lies. The label map is not in it: it changes
        how cells are scored (the score stage's key), not the model they train or run."""
        plugin = {"frontend_plugin": dataclasses.asdict(self.frontend)} if self.plugin else {}
        return {"sha256": self.sha256, "format": self.format, "trust_model": self.trust_model, **plugin}

    def described(self) -> dict[str, Any]:
        """What the sweep asks of the model, for the matrix's digest: its identity, label map and output."""
        mapped = {"label_map": self.label_map.as_dict()} if self.label_map is not None else {}
        chosen = {"output": self.output} if self.output is not None else {}
        return {**self.identity(), **mapped, **chosen}

    def own_levels(self) -> dict[str, Any]:
        """Cell attribute -> the model's own front-end level (none with a plug-in: it is not a factor)."""
        spec = self.frontend
        if isinstance(spec, PluginReference):
            return {}
        if isinstance(spec, ImageFrontendSpec):
            return {"image_size": spec.height, "color": spec.color}
        assert isinstance(spec, AudioFrontendSpec)
        levels = {name: getattr(spec, name) for name in AUDIO_FACTOR_FIELDS}
        return {"sample_rate": levels.pop("sample_rate"), "features": spec.kind, **levels}

    def frontend_for(self, levels: dict[str, Any]) -> FrontendSpec | PluginReference:
        """The model's front-end with a cell's levels put in: every setting no factor names (scaling, fmin,
        the clip length) stays the model's own, so the own levels give back exactly its front-end."""
        spec = self.frontend
        if isinstance(spec, PluginReference):
            return spec
        if isinstance(spec, ImageFrontendSpec):
            size = levels["image_size"]
            return dataclasses.replace(spec, height=size, width=size, color=levels["color"])
        assert isinstance(spec, AudioFrontendSpec)
        if levels["features"] == "mfcc":
            n_mfcc = levels["n_mfcc"]
        else:  # meaningless without a DCT: the model's own, so log-mel cells differing only in it share features
            n_mfcc = spec.n_mfcc if spec.kind != "mfcc" else AudioFrontendSpec.n_mfcc
        factors = {name: levels[name] for name in AUDIO_FACTOR_FIELDS}
        return dataclasses.replace(spec, kind=levels["features"], **{**factors, "n_mfcc": n_mfcc})


def load_user_model(
    path: Path,
    labels_file: Path | None = None,
    trust_model: bool = False,
    frontend_plugin: str | None = None,
    frontend_spec: FrontendSpec | None = None,
    label_map: LabelMap | None = None,
    output: str | None = None,
) -> UserModel:
    """Read what the sweep needs from the file, without TensorFlow: format, digest, labels, front-end (as in
    ``audit``: the plug-in's when given, else ``frontend_spec`` from ``--features``, else the file's metadata),
    the ``label_map``, checked against the labels, and the ``output`` to score (``--output``)."""
    if not path.exists():
        raise UsageError(f"model not found: {path}; check the path")
    fmt = model_format(path)
    if fmt == "keras" and path.is_dir():
        raise UsageError(
            f"{path}: a sweep takes a model file, not a SavedModel folder; save it as .keras "
            "(tf_keras.models.load_model(folder).save('model.keras')) and sweep that"
        )
    from ondevice_audit.runtimes.tensorflow import _h5_has_lambda  # h5py only, no TensorFlow

    if path.suffix.lower() in (".h5", ".hdf5") and not trust_model and _h5_has_lambda(path):
        raise UsageError(f"{path}: contains a Lambda layer (arbitrary code); pass --trust-model to load it")
    metadata = read_metadata(path)
    labels = resolve_labels(metadata, ModelOptions(labels_file=labels_file))
    if labels is None:
        raise UsageError("the model carries no label names: pass --labels FILE (one class name per line, in output "
                         "order)")  # fmt: skip
    if label_map is not None:
        label_map.apply(labels)  # a class the model does not have is refused before any work
    frontend: FrontendSpec | PluginReference | None = frontend_spec or (metadata.frontend if metadata else None)
    if frontend_plugin:
        frontend = plugin_reference(frontend_plugin, path)
    if frontend is None:
        raise UsageError(
            f"{path.name} carries no front-end settings: pass --features (and its settings) or --frontend "
            "path/to/file.py:callable, or embed them with ondevice_audit.export.metadata.write_metadata"
        )
    return UserModel(
        path=path.absolute(),
        format=fmt,
        sha256=sha256_of(path),
        labels=tuple(labels),
        frontend=frontend,
        quantization=file_quantization(path),
        trust_model=trust_model,
        label_map=label_map,
        output=_chosen_output(path, fmt, output),
    )


def file_quantization(path: Path) -> str:
    """Which ``QuantApproach`` a file is: int8 inputs, int8 weights with float inputs, float16, else f32."""
    fmt = model_format(path)
    if fmt == "tflite":
        return _tflite_quantization(path)
    if fmt == "onnx":
        return _onnx_quantization(path)
    return "f32"


def _tflite_quantization(path: Path) -> str:
    from ai_edge_litert import schema_py_generated as schema

    model = schema.Model.GetRootAs(path.read_bytes(), 0)
    graph = model.Subgraphs(0)
    types = {graph.Tensors(i).Type() for i in range(graph.TensorsLength())}
    inputs = {graph.Tensors(graph.Inputs(i)).Type() for i in range(graph.InputsLength())}
    integer = {schema.TensorType.INT8, schema.TensorType.UINT8}
    if inputs & integer:
        return "int8"
    if types & integer:
        return "dynamic"
    if schema.TensorType.FLOAT16 in types:
        return "f16"
    return "f32"


def _onnx_quantization(path: Path) -> str:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    ops = {node.op_type for node in model.graph.node}
    if ops & {"DynamicQuantizeLinear", "MatMulInteger", "ConvInteger"}:
        return "dynamic"
    if ops & {"QuantizeLinear", "QLinearConv", "QLinearMatMul"}:
        return "int8"
    if any(tensor.data_type == onnx.TensorProto.FLOAT16 for tensor in model.graph.initializer):
        return "f16"
    return "f32"


def load_keras_model(user: UserModel) -> Any:
    """The user's Keras model, uncompiled; a ``.keras`` file with stored code loads only with trust."""
    from ondevice_audit import _tensorflow

    kwargs = {"safe_mode": not user.trust_model} if user.path.suffix.lower() == ".keras" else {}
    return _tensorflow.keras().models.load_model(str(user.path), compile=False, **kwargs)


def as_given_sparsity(path: Path, user: UserModel) -> dict[str, Any]:
    """``FileSparsity`` of a file as given: read from a TFLite/ONNX file, from the weights of a Keras one."""
    if model_format(path) == "keras":
        from ondevice_audit.optimize.prune import keras_sparsity

        return keras_sparsity(load_keras_model(user))
    from ondevice_audit.sweep.weights import measure_sparsity

    return dataclasses.asdict(measure_sparsity(path))


def rebuild_for_input(model: Any, input_shape: tuple[int, ...]) -> Any:
    """The same architecture for inputs of ``input_shape``: rebuilt from its config, fresh weights.

    Layers whose weights depend on the input (a Dense after Flatten) are rebuilt for the new size; what the
    config fixes (a Reshape target, a kernel larger than the new input) cannot follow, and that is a
    ``UsageError`` in one line."""
    import numpy as np

    config = model.get_config()
    layers = config.get("layers") or []
    first = layers[0]["config"] if layers else {}
    if "batch_input_shape" not in first:
        raise UsageError(f"{model.name} declares no input shape in its config, so it cannot be rebuilt for another")
    shape = (None, *input_shape)
    first["batch_input_shape"] = shape
    if "build_input_shape" in config:
        config["build_input_shape"] = shape
    try:
        rebuilt = type(model).from_config(config)
        rebuilt(np.zeros((1, *input_shape), np.float32))
    except Exception as exc:  # Keras raises ValueError, TypeError... naming the layer that does not fit
        text = str(exc).strip()
        reason = text.splitlines()[0] if text else type(exc).__name__
        raise UsageError(
            f"the architecture of the model cannot take inputs of shape {list(input_shape)}: {reason}"
        ) from None
    return rebuilt
