"""What a model or data file is: its format (by name), content hash and size, as every report records them."""

from __future__ import annotations

import hashlib
from pathlib import Path

from ondevice_audit.errors import UsageError

__all__ = ["model_format", "sha256_of", "size_of"]


def _files(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    for file in _files(path):
        with file.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def size_of(path: Path) -> int:
    return sum(file.stat().st_size for file in _files(path))


def model_format(path: Path) -> str:
    """``tflite``, ``onnx`` or ``keras`` from the path; a user error for anything else."""
    suffix = path.suffix.lower()
    if suffix == ".tflite":
        return "tflite"
    if suffix == ".onnx":
        return "onnx"
    if suffix in (".keras", ".h5", ".hdf5") or (path.is_dir() and (path / "saved_model.pb").exists()):
        return "keras"
    raise UsageError(f"{path}: unknown model format; expected .tflite, .onnx, .keras, .h5 or a SavedModel folder")
