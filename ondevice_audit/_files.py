"""Content hashes and sizes of input files (or SavedModel folders), recorded in every report."""

from __future__ import annotations

import hashlib
from pathlib import Path

__all__ = ["sha256_of", "size_of"]


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
