"""Front-end settings and label names stored inside the model file, so `audit` needs no flags.

Where it lives, per format (read without TensorFlow; TFLite and ONNX with the core install alone):

- TFLite: a ``Model.metadata`` entry named ``ondevice_audit`` pointing at a buffer holding JSON.
- ONNX: ``metadata_props`` key ``ondevice_audit``.
- Keras ``.keras``: an ``ondevice_audit.json`` member of the zip (Keras ignores unknown members).
- Keras ``.h5``: the root attribute ``ondevice_audit``.
- SavedModel: ``assets.extra/ondevice_audit.json`` in the model folder.
"""

from __future__ import annotations

import dataclasses
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ondevice_audit._files import model_format
from ondevice_audit.errors import UsageError
from ondevice_audit.frontend import FrontendSpec, spec_from_dict

__all__ = ["METADATA_KEY", "ModelMetadata", "read_metadata", "write_metadata"]

METADATA_KEY = "ondevice_audit"
_SCHEMA_VERSION = 1


@dataclass
class ModelMetadata:
    labels: list[str]
    """Class names in output order."""
    frontend: FrontendSpec | None = None
    """How a file becomes this model's input."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Free-form facts (recipe, design choices, achieved sparsity, training data) shown in reports."""

    def to_json(self) -> str:
        return json.dumps(
            {
                "schema_version": _SCHEMA_VERSION,
                "labels": self.labels,
                "frontend": dataclasses.asdict(self.frontend) if self.frontend else None,
                "extra": self.extra,
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> ModelMetadata:
        data = json.loads(text)
        frontend = data.get("frontend")
        return cls(
            labels=[str(x) for x in data.get("labels", [])],
            frontend=spec_from_dict(frontend) if frontend else None,
            extra=data.get("extra", {}),
        )


def read_metadata(path: Path) -> ModelMetadata | None:
    """The metadata embedded in ``path`` by this tool, or None for a model from elsewhere."""
    text = _READERS[model_format(path)](path)
    return ModelMetadata.from_json(text) if text else None


def write_metadata(path: Path, metadata: ModelMetadata) -> None:
    """Embed ``metadata`` in the model file at ``path`` (in place, replacing any earlier entry)."""
    _WRITERS[model_format(path)](path, metadata.to_json())


def _read_tflite(path: Path) -> str | None:
    from ai_edge_litert import schema_py_generated as schema

    buf = path.read_bytes()
    try:
        model = schema.Model.GetRootAs(buf, 0)
        for i in range(model.MetadataLength()):
            entry = model.Metadata(i)
            if entry.Name() == METADATA_KEY.encode():
                return model.Buffers(entry.Buffer()).DataAsNumpy().tobytes().decode()
    except Exception as exc:  # flatbuffers raises assorted errors on bytes that are not a model
        raise UsageError(f"{path}: not a valid TFLite model ({type(exc).__name__})") from None
    return None


def _write_tflite(path: Path, text: str) -> None:
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(bytearray(path.read_bytes()), 0)
    buffer = schema.BufferT()
    buffer.data = list(text.encode())
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name = METADATA_KEY
    entry.buffer = len(model.buffers) - 1
    model.metadata = [m for m in (model.metadata or []) if m.name != METADATA_KEY.encode()] + [entry]
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    path.write_bytes(bytes(builder.Output()))


def _read_onnx(path: Path) -> str | None:
    """Through ONNX Runtime, which the core install has (the ``onnx`` package comes with the train extra)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # InvalidProtobuf, Fail, NotImplemented... on bytes that are not a model it can run
        raise UsageError(f"{path}: not a valid ONNX model ({type(exc).__name__})") from None
    return session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)


def _write_onnx(path: Path, text: str) -> None:
    import onnx

    model = onnx.load(str(path))
    kept = [p for p in model.metadata_props if p.key != METADATA_KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    model.metadata_props.add(key=METADATA_KEY, value=text)
    onnx.save(model, str(path))


_KERAS_MEMBER = f"{METADATA_KEY}.json"
_SAVEDMODEL_FILE = Path("assets.extra") / _KERAS_MEMBER


def _read_keras(path: Path) -> str | None:
    if path.is_dir():
        sidecar = path / _SAVEDMODEL_FILE
        return sidecar.read_text() if sidecar.exists() else None
    if path.suffix.lower() == ".keras":
        try:
            with zipfile.ZipFile(path) as archive:
                if _KERAS_MEMBER in archive.namelist():
                    return archive.read(_KERAS_MEMBER).decode()
        except zipfile.BadZipFile:
            raise UsageError(f"{path}: not a valid .keras model (not a zip archive)") from None
        return None
    import h5py

    try:
        with h5py.File(path, "r") as archive:
            value = archive.attrs.get(METADATA_KEY)
    except OSError:
        raise UsageError(f"{path}: not a valid HDF5 Keras model") from None
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)


def _write_keras(path: Path, text: str) -> None:
    if path.is_dir():
        (path / _SAVEDMODEL_FILE).parent.mkdir(exist_ok=True)
        (path / _SAVEDMODEL_FILE).write_text(text)
    elif path.suffix.lower() == ".keras":
        with zipfile.ZipFile(path) as archive:
            members = [(info, archive.read(info)) for info in archive.infolist() if info.filename != _KERAS_MEMBER]
        with zipfile.ZipFile(path, "w") as archive:
            for info, data in members:
                archive.writestr(info, data)
            archive.writestr(_KERAS_MEMBER, text)
    else:
        import h5py

        with h5py.File(path, "a") as archive:
            archive.attrs[METADATA_KEY] = text


_READERS = {"tflite": _read_tflite, "onnx": _read_onnx, "keras": _read_keras}
_WRITERS = {"tflite": _write_tflite, "onnx": _write_onnx, "keras": _write_keras}
