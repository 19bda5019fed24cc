"""What every dataset reader returns, and the errors they raise.

A labelled dataset is a table with one row per file: ``file`` (absolute path), ``label``, optional
``speaker``, and any group columns. New formats (corpora as they ship) are modules that build this table.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ondevice_audit.errors import UsageError

__all__ = ["DataError", "LabelledFiles", "check_group_columns", "leaves_folder"]


class DataError(UsageError):
    """The dataset or predictions file cannot be used as given."""


@dataclass
class LabelledFiles:
    source: Path
    """The manifest (or corpus folder) the table was read from."""
    frame: pd.DataFrame
    """``file``, ``label``, optional ``speaker`` and group columns; all values strings."""
    sha256: str


def check_group_columns(frame: pd.DataFrame, groups: list[str], source: Path, reserved: set[str]) -> None:
    missing = [g for g in groups if g not in frame.columns]
    if missing:
        available = [c for c in frame.columns if c not in reserved] or ["(none)"]
        raise DataError(
            f"{source}: unknown --group {', '.join(missing)}; choose from the group columns: {', '.join(available)}"
        )


def leaves_folder(real_root: str, path: str) -> bool:
    """Whether ``path`` (inside the folder whose ``os.path.realpath`` is ``real_root``, as written) really lies
    outside it once symlinks are followed: a link to ``/etc/passwd`` is refused as ``../`` is."""
    real = os.path.realpath(path)
    return real != real_root and not real.startswith(real_root.rstrip(os.sep) + os.sep)
