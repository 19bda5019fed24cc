"""What a corpus adapter returns, the checks every import shares, and how the manifest is written.

An adapter reads a corpus *as it ships* and returns an ``ImportResult``: a table with ``path`` (relative to
``root``, ``/``-separated), ``label``, an optional ``split`` and ``speaker``, group columns and raw values,
plus the **problems** it met. Real corpora have bad rows; a bad row is counted and reported (kind, where,
why), never silently dropped and never fatal. Only when nothing usable is left does the import stop, with one
line saying so.

The manifest is written where its relative paths resolve: in ``root`` by default, or in a folder that
contains ``root`` (paths then gain the prefix, e.g. ``cv/en/clips/x.mp3``). ``read_manifest`` refuses paths
that climb out of the manifest's folder (``../``), so a manifest anywhere else (a sibling folder, or a
subfolder of ``root``) could not be read back; ``write_manifest`` refuses it up front.
"""

from __future__ import annotations

import inspect
import os
import posixpath
import re
from abc import ABC, abstractmethod
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd

from ondevice_audit.data.corpora.files import check_decoders
from ondevice_audit.data.interface import DataError, leaves_folder
from ondevice_audit.errors import UsageError
from ondevice_audit.progress import NullProgress, Progress

__all__ = [
    "DUPLICATE_PATH",
    "MALFORMED_NAME",
    "MALFORMED_ROW",
    "MISSING_FILE",
    "NON_UTF8",
    "NO_GROUPS",
    "NO_SPEAKER",
    "RESERVED_COLUMNS",
    "UNKNOWN_VALUE",
    "UNREADABLE_FILE",
    "UNUSABLE_TABLE",
    "WHERE",
    "CorpusAdapter",
    "ImportResult",
    "Problem",
    "default_out",
    "describe_problem",
    "own_speakers",
    "undecodable_names",
    "safe_path",
    "write_manifest",
]

# Problem kinds: the keys problems are counted under in summaries.
MALFORMED_ROW = "malformed row"
MALFORMED_NAME = "malformed file name"
NON_UTF8 = "non-UTF-8 text"
MISSING_FILE = "missing file"
DUPLICATE_PATH = "duplicate path"
UNKNOWN_VALUE = "unknown value"
NO_GROUPS = "no group values"
NO_SPEAKER = "no speaker"
UNUSABLE_TABLE = "unusable table"
UNREADABLE_FILE = "unreadable file"

RESERVED_COLUMNS = ("path", "label", "split", "speaker")
"""Manifest columns that are not group columns, in the order they are written."""
_DRIVE = re.compile(r"[A-Za-z]:[\\/]")
WHERE = "_where"
"""Internal column: the row's provenance (``train.tsv line 12``) for problems found after parsing."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the input; ``reason`` says what happened to the row (skipped, kept with ...)."""

    kind: str
    reason: str
    row: str | None = None
    """Where in a table: ``train.tsv line 12``."""
    file: str | None = None
    """Which file, relative to the corpus root."""

    def to_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "row": self.row or "", "file": self.file or "", "reason": self.reason}


@dataclass
class ImportResult:
    frame: pd.DataFrame
    """``path`` (relative to ``root``), ``label``, optional ``split``/``speaker``, group and raw columns."""
    problems: list[Problem]
    root: Path
    """The folder ``path`` is relative to."""
    source: Path
    """What was read: the corpus folder, or the CSV for the ``manifest`` format."""
    groups: tuple[str, ...] = ()
    """The columns meant as groups (``--group``), in order."""
    notes: list[str] = field(default_factory=list)
    """Facts worth telling that are not problems (rows left out by choice, keywords chosen)."""
    modality: Literal["audio", "image"] = "audio"

    def problem_counts(self) -> dict[str, int]:
        return dict(Counter(p.kind for p in self.problems).most_common())


class CorpusAdapter(ABC):
    """Reads one corpus layout. Subclasses implement ``_read``; its keyword-only arguments are the options."""

    name: ClassVar[str]
    modality: ClassVar[Literal["audio", "image"]]
    summary: ClassVar[str]
    """One line for ``--help``: the layout this adapter expects."""

    def options(self) -> list[str]:
        """The options ``read`` accepts, as ``--flag`` names."""
        parameters = inspect.signature(self._read).parameters.values()
        return [f"--{p.name.replace('_', '-')}" for p in parameters if p.kind is inspect.Parameter.KEYWORD_ONLY]

    def read(self, root: Path, *, progress: Progress | None = None, **options: Any) -> ImportResult:
        """Read ``root``, then apply the shared checks (paths, duplicates, missing files, decoders)."""
        accepted = self.options()
        unknown = [f"--{name.replace('_', '-')}" for name in options if f"--{name.replace('_', '-')}" not in accepted]
        if unknown:
            takes = f"its options: {', '.join(accepted)}" if accepted else "it takes no options"
            raise UsageError(f"{self.name} does not take {', '.join(unknown)} ({takes}); remove it")
        root = Path(root)
        if not root.exists():
            raise DataError(f"{root}: not found; check the path")
        progress = progress or NullProgress()
        return _finish(self._read(root, progress, **options), self.modality, progress)

    @abstractmethod
    def _read(self, root: Path, progress: Progress, *args: Any, **options: Any) -> ImportResult:
        """The corpus as a table (``path`` relative to the result's root) and the problems met. Each adapter
        declares its own keyword-only options (``*args: Any`` lets type checkers accept any of them)."""


def safe_path(text: str) -> str | None:
    """``text`` as a normalised ``/`` path inside the root, or None when it is absolute or climbs out."""
    text = text.strip()
    if not text or text.startswith(("/", "\\")) or _DRIVE.match(text):
        return None
    normal = posixpath.normpath(text)
    if normal == ".." or normal.startswith("../") or normal == ".":
        return None
    return normal


def undecodable_names(names: list[str]) -> list[Problem]:
    """Problems for files whose names are not UTF-8 (see ``files.Listing.undecodable``)."""
    return [Problem(NON_UTF8, "file name is not valid UTF-8; skipped (rename it)", file=name) for name in names]


def own_speakers(frame: pd.DataFrame, problems: list[Problem], reason: str) -> pd.DataFrame:
    """Blank speakers become the clip's own path (a cluster of one), each reported with ``reason``.

    Reports resample speakers; blank ids would pool every such clip into one made-up speaker.
    """
    blank = frame["speaker"].astype(str).str.strip().eq("").to_numpy()
    if not blank.any():
        return frame
    origins = frame[WHERE] if WHERE in frame.columns else pd.Series("", index=frame.index)
    for path, origin in zip(frame.loc[blank, "path"], origins[blank], strict=True):
        problems.append(Problem(NO_SPEAKER, reason, origin or None, path))
    speakers = frame["speaker"].astype(str).where(~blank, frame["path"].astype(str))
    return frame.assign(speaker=speakers)


def _finish(result: ImportResult, modality: Literal["audio", "image"], progress: Progress) -> ImportResult:
    frame = result.frame.reset_index(drop=True)
    if WHERE not in frame.columns:
        frame[WHERE] = ""
    problems = list(result.problems)
    normal = [safe_path(text) for text in frame["path"]]
    unsafe = np.array([n is None for n in normal], dtype=bool)
    for text, origin in frame.loc[unsafe, ["path", WHERE]].itertuples(index=False):
        reason = f"path {text!r} is empty, absolute or leaves the corpus folder; skipped"
        problems.append(Problem(MALFORMED_ROW, reason, origin or None))
    frame = frame.assign(path=[n or "" for n in normal])[~unsafe]

    duplicated = frame["path"].duplicated(keep="first")
    for path, origin in frame.loc[duplicated, ["path", WHERE]].itertuples(index=False):
        problems.append(Problem(DUPLICATE_PATH, "path listed again; the first row is kept", origin or None, path))
    frame = frame[~duplicated]

    exists, outside = np.zeros(len(frame), dtype=bool), np.zeros(len(frame), dtype=bool)
    real_root = os.path.realpath(result.root)
    with progress.task("Checking files", total=len(frame)) as advance:
        for i, path in enumerate(frame["path"]):
            full = os.path.join(result.root, path)
            outside[i] = leaves_folder(real_root, full)
            exists[i] = not outside[i] and os.path.isfile(full)
            if i % 1000 == 999:
                advance(1000)
        advance(len(frame) % 1000)
    for path, origin in frame.loc[outside, ["path", WHERE]].itertuples(index=False):
        reason = "a symlink (or inside one) that leads out of the corpus folder; skipped"
        problems.append(Problem(MALFORMED_ROW, reason, origin or None, path))
    for path, origin in frame.loc[~exists & ~outside, ["path", WHERE]].itertuples(index=False):
        problems.append(Problem(MISSING_FILE, "file not found; skipped", origin or None, path))
    frame = frame[exists]

    if frame.empty:
        counts = ", ".join(f"{n} {kind}" for kind, n in Counter(p.kind for p in problems).most_common())
        first = f"; first: {describe_problem(problems[0])}" if problems else ""
        raise DataError(
            f"{result.root}: nothing usable to import ({counts or 'no files found'}){first}; check ROOT and the paths in it"
        )
    if modality == "audio":
        check_decoders({posixpath.splitext(p)[1].lower() for p in frame["path"]})
    ordered = [c for c in RESERVED_COLUMNS if c in frame.columns]
    groups = [g for g in result.groups if g in frame.columns and g not in ordered]
    rest = [c for c in frame.columns if c not in ordered and c not in groups and c != WHERE]
    frame = frame[ordered + groups + rest].reset_index(drop=True)
    return replace(result, frame=frame, problems=problems, groups=tuple(groups), modality=modality)


def describe_problem(problem: Problem) -> str:
    """One line for a terminal: where, kind, reason."""
    where = " ".join(filter(None, (problem.row, f"({problem.file})" if problem.row and problem.file else problem.file)))
    return f"{where}: {problem.kind}: {problem.reason}" if where else f"{problem.kind}: {problem.reason}"


def default_out(root: Path) -> Path:
    """``manifest.csv`` in the corpus folder (beside the CSV when the corpus is itself a CSV)."""
    return (root.parent if root.is_file() else root) / "manifest.csv"


def write_manifest(result: ImportResult, out: Path, *, overwrite: bool = False) -> Path | None:
    """Write ``result`` as a canonical manifest at ``out``; problems go to ``<out stem>.problems.csv``.

    Returns the problems file, or None when there were no problems. ``out`` must be in ``result.root`` or a
    folder containing it, so every path stays inside the manifest's folder (see the module docstring).
    """
    root = Path(os.path.normpath(result.root.absolute()))
    target = Path(os.path.normpath(out.absolute()))
    if target.is_dir():
        raise UsageError(f"--out {out} is a folder; give the manifest's file name, such as {out / 'manifest.csv'}")
    prefix = os.path.relpath(root, target.parent)
    if prefix == ".." or prefix.startswith(f"..{os.sep}"):
        raise UsageError(
            f"--out {out} is not in {result.root} or a folder containing it: manifest paths are relative to the "
            f"manifest's folder and may not climb out of it (../), so the manifest must sit beside or above the data"
        )
    if target == Path(os.path.normpath(result.source.absolute())):
        raise UsageError(f"--out {out} is the input itself; choose another file name")
    if target.exists() and not overwrite:
        raise UsageError(f"{out} already exists; use --overwrite to replace it")
    frame = result.frame
    if prefix != ".":
        frame = frame.assign(path=[posixpath.join(Path(prefix).as_posix(), p) for p in frame["path"]])
    target.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(target, index=False, lineterminator="\n", encoding="utf-8")
    problems_path = target.with_name(f"{target.stem}.problems.csv")
    if result.problems:
        rows = [p.to_dict() for p in result.problems]
        pd.DataFrame(rows, columns=["kind", "row", "file", "reason"]).to_csv(
            problems_path, index=False, lineterminator="\n", encoding="utf-8"
        )
        return problems_path
    problems_path.unlink(missing_ok=True)  # a stale list from an earlier import would mislead
    return None
