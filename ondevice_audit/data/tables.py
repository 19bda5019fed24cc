"""The one CSV/TSV reader every table goes through: manifests, split files and predictions (``audit``, ``score``),
and every table a corpus ships (``datasets import``/``inspect``), so they all see the same rows.

Records follow RFC 4180 (Python's ``csv`` module, strict): a quoted field may hold the separator, doubled quotes
and line breaks. Each record carries the number of the line it starts on. What cannot be read is a *problem*
with that line number: a line that is not UTF-8 (a BOM is allowed), a quote that never closes, a character after
a closing quote. ``read_table`` stops at the first problem (an audit must not run on half a manifest), and a
corpus import reports each one and goes on. A quote left open would otherwise swallow the rest of the file into
one field, so a record that has not closed after ``MAX_RECORD_LINES`` lines is reported at its first line and
reading resumes on the next. Common Voice's TSVs are read without quoting (its sentences hold bare quotes).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd

from ondevice_audit.data.interface import DataError

__all__ = ["MAX_RECORD_LINES", "OnProblem", "file_bytes", "read_numbered_table", "read_records", "read_table"]

MAX_RECORD_LINES = 1000
"""Lines one quoted record may span before its opening quote is taken for a mistake."""
NON_UTF8 = "non-UTF-8 text"
MALFORMED = "malformed row"

OnProblem = Callable[[str, int, str], None]
"""Called with (kind, line number, reason) for every line that cannot be read."""


def read_records(
    path: Path, on_problem: OnProblem, *, sep: str = ",", quoting: bool = True
) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) of every non-blank record of ``path``; the rest goes to ``on_problem``."""
    data = file_bytes(path)
    try:
        yield from _fast(data.decode("utf-8"), sep, quoting)
        return
    except (UnicodeDecodeError, csv.Error):
        pass  # a bad byte or quote somewhere: read line by line to report it and keep the rest
    yield from _line_by_line(data.split(b"\n"), on_problem, sep, quoting)


def file_bytes(path: Path) -> bytes:
    """A text file's bytes without a UTF-8 byte-order mark; a ``DataError`` when it cannot be read."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    return data[3:] if data.startswith(b"\xef\xbb\xbf") else data


def _reader(lines: io.StringIO | list[str], sep: str, quoting: bool) -> Iterator[list[str]]:
    return csv.reader(lines, delimiter=sep, strict=True, quoting=csv.QUOTE_MINIMAL if quoting else csv.QUOTE_NONE)


def _blank(cells: list[str]) -> bool:
    return not cells or (len(cells) == 1 and not cells[0].strip())


def _fast(text: str, sep: str, quoting: bool) -> Iterator[tuple[int, list[str]]]:
    """The whole file through one reader (the common case); a ``csv.Error`` means it needs the slow path. Parsed in
    full before anything is yielded: an error half-way must not leave half the rows read."""
    reader = _reader(io.StringIO(text, newline=""), sep, quoting)
    rows = list(reader)
    if len(rows) == reader.line_num:  # type: ignore[attr-defined]  # one line per record: row i is on line i + 1
        return iter([(number, cells) for number, cells in enumerate(rows, start=1) if not _blank(cells)])
    records, start = [], 1  # a quoted field spans lines: count them record by record
    reader = _reader(io.StringIO(text, newline=""), sep, quoting)
    for cells in reader:
        if not _blank(cells):
            records.append((start, cells))
        start = reader.line_num + 1  # type: ignore[attr-defined]  # csv readers have line_num; typeshed's protocol omits it
    return iter(records)


def _line_by_line(
    lines: list[bytes], on_problem: OnProblem, sep: str, quoting: bool
) -> Iterator[tuple[int, list[str]]]:
    index = 0
    while index < len(lines):
        number, raw = index + 1, lines[index].rstrip(b"\r")
        index += 1
        if not raw.strip():
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            on_problem(NON_UTF8, number, "line is not valid UTF-8; skipped")
            continue
        if not quoting or '"' not in text:
            yield number, text.split(sep)
            continue
        cells, used = _quoted(text, lines, index, sep)
        if cells is None:
            on_problem(MALFORMED, number, used)
            continue
        index += int(used)
        yield number, cells


def _quoted(text: str, lines: list[bytes], index: int, sep: str) -> tuple[list[str] | None, str]:
    """A record starting with ``text`` whose quoted fields may continue on ``lines[index:]``: its fields and how
    many more lines it took (as text), or None and why it cannot be read."""
    for extra in range(MAX_RECORD_LINES):
        try:
            return next(_reader([text], sep, True)), str(extra)
        except csv.Error as exc:
            if "unexpected end of data" not in str(exc):
                return None, f"{exc} (a stray quote?); skipped"
        if index + extra >= len(lines):
            break
        try:
            text += "\n" + lines[index + extra].rstrip(b"\r").decode("utf-8")
        except UnicodeDecodeError:
            break
    return None, "a quoted field is never closed; skipped"


def read_numbered_table(path: Path, *, sep: str = ",") -> tuple[pd.DataFrame, list[int]]:
    """A CSV/TSV as strings (so ``01`` stays ``01`` and group names stay as written), and the line each row starts
    on (a quoted field may span lines). The first line it cannot read, a row whose field count differs from the
    header's, or a column named twice stops it with a ``DataError`` naming the line."""
    if path.is_dir():
        raise DataError(f"{path} is a folder; give the path of a CSV file")
    if not path.is_file():
        raise DataError(f"file not found: {path}; check the path")

    def stop(kind: str, line: int, reason: str) -> None:
        raise DataError(f"{path}: line {line}: {kind}: {reason.removesuffix('; skipped')}; fix that line")

    records = read_records(path, stop, sep=sep)
    first = next(records, None)
    if first is None:
        raise DataError(f"{path}: the file is empty; a table needs a header line and rows")
    header = [name.strip() for name in first[1]]
    twice = sorted({name for name in header if header.count(name) > 1})
    if twice:
        raise DataError(
            f"{path}: column(s) {', '.join(map(repr, twice))} appear more than once in the header; rename them"
        )
    rows, lines = [], []
    for line, cells in records:
        if len(cells) != len(header):
            raise DataError(
                f"{path}: line {line} has {len(cells)} fields where the header has {len(header)}; fix that line "
                "(a value holding the separator needs quotes)"
            )
        rows.append(cells)
        lines.append(line)
    if not rows:
        raise DataError(f"{path}: the table has a header but no rows; add rows")
    return pd.DataFrame(rows, columns=header, dtype=str), lines


def read_table(path: Path, *, sep: str = ",") -> pd.DataFrame:
    """``read_numbered_table`` without the line numbers."""
    return read_numbered_table(path, sep=sep)[0]
