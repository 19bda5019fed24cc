"""The manifest CSV: ``path`` (relative to the manifest's folder), ``label``, group columns, ``speaker``."""

from __future__ import annotations

import os
from pathlib import Path

from ondevice_audit._files import sha256_of
from ondevice_audit.data.interface import DataError, LabelledFiles, check_group_columns, leaves_folder
from ondevice_audit.data.tables import read_numbered_table, read_table

__all__ = ["read_manifest", "select_split", "split_file_beside"]

_REQUIRED = ("path", "label")


def read_manifest(path: Path, groups: list[str] | None = None) -> LabelledFiles:
    """Read and check a manifest; ``file`` holds absolute paths, never outside the manifest's folder."""
    frame, lines = read_numbered_table(path)
    missing = [c for c in _REQUIRED if c not in frame.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(missing)}; a manifest needs path and label")
    check_group_columns(frame, groups or [], path, set(_REQUIRED) | {"speaker"})
    root = Path(os.path.normpath(path.parent.absolute()))
    real_root = os.path.realpath(root)  # the dataset folder itself may be a symlink; nothing in it may lead out
    files = []
    for row, relative in zip(lines, frame["path"], strict=True):
        if not relative.strip():
            raise DataError(f"{path}: line {row} has an empty path; give every row the path of its file")
        full = Path(os.path.normpath(root / relative))
        if full != root and root not in full.parents:
            raise DataError(
                f"{path}: line {row}: path {relative!r} escapes the manifest folder; paths are relative to it and may "
                "not leave it: put the manifest in a folder that contains the files"
            )
        if leaves_folder(real_root, str(full)):
            raise DataError(
                f"{path}: line {row}: {relative!r} is a symlink (or inside one) that leads out of the manifest "
                "folder; copy the files in, or put the manifest in a folder that contains them"
            )
        files.append(str(full))
    frame = frame.assign(file=files)
    if frame["label"].str.strip().eq("").any():
        row = lines[int(frame.index[frame["label"].str.strip().eq("")][0])]
        raise DataError(f"{path}: line {row} has an empty label; give every row a label")
    return LabelledFiles(source=path, frame=frame, sha256=sha256_of(path))


def select_split(dataset: LabelledFiles, split_file: Path, split: str) -> LabelledFiles:
    """Keep the manifest rows that ``split_file`` (``path``, ``split`` columns, as ``train`` writes) assigns to
    ``split``: how a model is audited on the speakers it never heard."""
    assignments = read_table(split_file)
    missing = [c for c in ("path", "split") if c not in assignments.columns]
    if missing:
        raise DataError(f"{split_file}: missing column(s) {', '.join(missing)}; a split file needs path and split")
    chosen = set(assignments.loc[assignments["split"] == split, "path"])
    if not chosen:
        known = ", ".join(sorted(set(assignments["split"])))
        raise DataError(f"{split_file}: no rows in split {split!r} (splits: {known})")
    frame = dataset.frame[dataset.frame["path"].isin(chosen)]
    if frame.empty:
        raise DataError(f"{split_file}: split {split!r} selects none of the manifest's rows")
    return LabelledFiles(dataset.source, frame.reset_index(drop=True), dataset.sha256)


def split_file_beside(model: Path) -> Path | None:
    """The ``split.csv`` ``train`` wrote beside ``model`` (a file, or a SavedModel folder), if there is one: the
    rows it trained on and the speakers held out, which export and explain calibrate and audit by."""
    found = model.parent / "split.csv" if model.is_file() else model / "split.csv"
    return found if found.is_file() else None
