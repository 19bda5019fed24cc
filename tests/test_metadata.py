"""Front-end and labels travel inside every model format, readable without TensorFlow."""

import shutil

import pytest

from ondevice_audit.errors import UsageError
from ondevice_audit.export.metadata import ModelMetadata, read_metadata, write_metadata
from ondevice_audit.frontend import ImageFrontendSpec


@pytest.mark.parametrize("fmt", ["tflite", "onnx", "keras"])
def test_metadata_round_trips_and_replaces(tiny_models, tmp_path, fmt):
    path = tmp_path / tiny_models[fmt].name
    shutil.copy(tiny_models[fmt], path)
    first = read_metadata(path)
    assert first.labels == ["_unknown_", "no", "yes"] and first.frontend.n_mfcc == 10
    replacement = ModelMetadata(labels=["a", "b", "c"], frontend=ImageFrontendSpec(height=4, width=4), extra={"k": 1})
    write_metadata(path, replacement)
    assert read_metadata(path) == replacement


def test_h5_metadata(tiny_models, tmp_path):
    from ondevice_audit import _tensorflow

    model = _tensorflow.keras().models.load_model(tiny_models["keras"])
    path = tmp_path / "m.h5"
    model.save(path)
    assert read_metadata(path) is None
    write_metadata(path, ModelMetadata(labels=["x"]))
    assert read_metadata(path).labels == ["x"]


def test_unknown_format_is_a_user_error(tmp_path):
    with pytest.raises(UsageError, match="unknown model format"):
        read_metadata(tmp_path / "model.pt")
