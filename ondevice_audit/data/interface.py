"""What every dataset reader returns, and the errors they raise.

A labelled dataset is a table with one row per file: ``file`` (absolute path), ``label``, optional
``speaker``, and any group columns. New formats (corpora as they ship) are modules that build this table.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ondevice_audit.errors import UsageError

__all__ = ["DataError", "LabelledFiles", "check_group_columns", "read_table"]


class DataError(UsageError):
    """The dataset or predictions file cannot be used as given."""


@dataclass
class LabelledFiles:
    source: Path
    """The manifest (or corpus folder) the table was read from."""
    frame: pd.DataFrame
    """``file``, ``label``, optional ``speaker`` and group columns; all values strings."""
    sha256: str


def read_table(path: Path, *, sep: str = ",") -> pd.DataFrame:
    """A CSV/TSV as strings (so ``01`` stays ``01`` and group names stay as written)."""
    if not path.is_file():
        raise DataError(f"file not found: {path}")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, sep=sep)
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a readable table ({str(exc).splitlines()[0]})") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file is empty") from None
    if frame.empty:
        raise DataError(f"{path}: the table has no rows")
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame


def check_group_columns(frame: pd.DataFrame, groups: list[str], source: Path, reserved: set[str]) -> None:
    missing = [g for g in groups if g not in frame.columns]
    if missing:
        available = [c for c in frame.columns if c not in reserved] or ["(none)"]
        raise DataError(
            f"{source}: unknown --group {', '.join(missing)}; group columns available: {', '.join(available)}"
        )
