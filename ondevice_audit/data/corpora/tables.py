"""The forgiving side of the one table reader (``data/tables.py``) for the files corpora ship: bad lines become
problems, not exceptions.

``read_table`` stops at the first bad line, as an audit must; one bad line in a million-row Common Voice TSV
should cost that line, not the import. ``read_rows`` reads the same records (quoted fields may span lines) and
reports every line that cannot be used, with its number. ``read_lines`` reads plain lists (one name a line).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from ondevice_audit.data.corpora.interface import MALFORMED_ROW, NON_UTF8, UNUSABLE_TABLE, WHERE, Problem
from ondevice_audit.data.tables import NON_UTF8 as NON_UTF8_KIND
from ondevice_audit.data.tables import file_bytes, read_records

__all__ = ["read_lines", "read_rows"]


def read_lines(path: Path, problems: list[Problem], label: str) -> list[tuple[int, str]]:
    """(line number, text) of every non-blank, UTF-8 line; the others are reported under ``label``."""
    lines = []
    for number, raw in enumerate(file_bytes(path).split(b"\n"), start=1):
        raw = raw.rstrip(b"\r")
        if not raw.strip():
            continue
        try:
            lines.append((number, raw.decode("utf-8")))
        except UnicodeDecodeError:
            problems.append(Problem(NON_UTF8, "line is not valid UTF-8; skipped", f"{label} line {number}"))
    return lines


def read_rows(
    path: Path, problems: list[Problem], *, sep: str = ",", required: Sequence[str] = (), label: str | None = None
) -> pd.DataFrame | None:
    """The table as strings plus ``_where`` (``name line N``); None (reported) when it cannot be used at all.

    Header names are stripped; cells are kept as written. A row with more or fewer fields than the header
    is reported and skipped. ``sep="\\t"`` reads without quoting, as Common Voice writes its TSVs (its
    sentences contain bare quotes).
    """
    label = label or path.name

    def report(kind: str, line: int, reason: str) -> None:
        problems.append(Problem(NON_UTF8 if kind == NON_UTF8_KIND else MALFORMED_ROW, reason, f"{label} line {line}"))

    records = read_records(path, report, sep=sep, quoting=sep != "\t")
    first = next(records, None)
    if first is None:
        problems.append(Problem(UNUSABLE_TABLE, "the file has no readable lines", label))
        return None
    header_line, cells = first
    header = [name.strip() for name in cells]
    missing = [c for c in required if c not in header]
    if missing:
        reason = f"missing column(s) {', '.join(missing)} (line {header_line} has: {', '.join(header)}); table skipped"
        problems.append(Problem(UNUSABLE_TABLE, reason, label))
        return None
    rows, where = [], []
    for number, cells in records:
        if len(cells) != len(header):
            reason = f"{len(cells)} fields where the header has {len(header)}; skipped"
            problems.append(Problem(MALFORMED_ROW, reason, f"{label} line {number}"))
            continue
        rows.append(cells)
        where.append(f"{label} line {number}")
    frame = pd.DataFrame(rows, columns=header, dtype=str) if rows else pd.DataFrame(columns=header, dtype=str)
    frame = frame.loc[:, ~frame.columns.duplicated()]
    frame[WHERE] = where
    return frame
