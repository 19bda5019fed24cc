"""The manifest CSV: ``path`` (relative to the manifest's folder), ``label``, group columns, ``speaker``."""

from __future__ import annotations

import os
from pathlib import Path

from ondevice_audit._files import sha256_of
from ondevice_audit.data.interface import DataError, LabelledFiles, check_group_columns, read_table

__all__ = ["read_manifest"]

_REQUIRED = ("path", "label")


def read_manifest(path: Path, groups: list[str] | None = None) -> LabelledFiles:
    """Read and check a manifest; ``file`` holds absolute paths, never outside the manifest's folder."""
    frame = read_table(path)
    missing = [c for c in _REQUIRED if c not in frame.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(missing)}; a manifest needs path and label")
    check_group_columns(frame, groups or [], path, set(_REQUIRED) | {"speaker"})
    root = Path(os.path.normpath(path.parent.absolute()))
    files = []
    for row, relative in enumerate(frame["path"], start=2):
        if not relative.strip():
            raise DataError(f"{path}: line {row} has an empty path")
        # Lexical check (not resolve()): a dataset folder may be a symlink, a path may not climb out of it.
        full = Path(os.path.normpath(root / relative))
        if full != root and root not in full.parents:
            raise DataError(f"{path}: line {row}: path {relative!r} escapes the manifest folder")
        files.append(str(full))
    frame = frame.assign(file=files)
    if frame["label"].str.strip().eq("").any():
        row = int(frame.index[frame["label"].str.strip().eq("")][0]) + 2
        raise DataError(f"{path}: line {row} has an empty label")
    return LabelledFiles(source=path, frame=frame, sha256=sha256_of(path))
