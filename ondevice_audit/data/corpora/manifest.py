"""The tool's own manifest CSV, read leniently: the ``manifest`` import format and ``datasets inspect``.

``read_manifest`` (what ``audit`` and ``train`` use) stops at the first bad row, as it should before hours
of inference. This reader is its counterpart for cleaning: ``path`` (relative to the CSV's folder) and
``label`` are required, ``split``, ``speaker`` and every other column are kept as written, and bad rows
(ragged, non-UTF-8, empty path or label, paths leaving the folder, duplicates, missing files) are
reported and left out. A ``gender`` value outside ``female``, ``male``, ``other`` and empty is reported
(kept as written), since the same group spelled two ways splits into two groups.
"""

from __future__ import annotations

from pathlib import Path

from ondevice_audit.data.corpora.files import IMAGE_SUFFIXES
from ondevice_audit.data.corpora.interface import (
    MALFORMED_ROW,
    RESERVED_COLUMNS,
    UNKNOWN_VALUE,
    WHERE,
    CorpusAdapter,
    ImportResult,
    Problem,
    own_speakers,
)
from ondevice_audit.data.corpora.tables import read_rows
from ondevice_audit.data.corpora.values import GENDERS
from ondevice_audit.data.interface import DataError
from ondevice_audit.errors import UsageError
from ondevice_audit.progress import Progress

__all__ = ["ManifestAdapter"]


class ManifestAdapter(CorpusAdapter):
    name = "manifest"
    modality = "audio"
    summary = "a manifest CSV (path relative to its folder, label, group columns, speaker); ROOT is the CSV"

    def read(self, root: Path, *, progress: Progress | None = None, **options: object) -> ImportResult:
        """As ``CorpusAdapter.read``; image manifests are recognised by their files' suffixes."""
        if not Path(root).is_file():
            raise UsageError(f"{root} is not a file; the manifest format reads a CSV: give its path")
        result = super().read(root, progress=progress, **options)
        suffixes = result.frame["path"].str.rsplit(".", n=1).str[-1].str.casefold()
        if suffixes.map(lambda s: f".{s}" in IMAGE_SUFFIXES).mean() > 0.5:
            result.modality = "image"
        return result

    def _read(self, root: Path, progress: Progress) -> ImportResult:
        problems: list[Problem] = []
        with progress.task(f"Reading {root.name}", total=None):
            frame = read_rows(root, problems, required=("path", "label"))
        if frame is None:
            raise DataError(
                f"{root}: not a usable manifest ({problems[-1].reason}); a manifest needs path and label columns"
            )
        empty = frame["label"].str.strip().eq("")
        for origin in frame.loc[empty, WHERE]:
            problems.append(Problem(MALFORMED_ROW, "empty label; skipped", origin))
        frame = frame[~empty]
        if "gender" in frame.columns:
            odd = ~frame["gender"].isin([*GENDERS, ""])
            for origin, value in frame.loc[odd, [WHERE, "gender"]].itertuples(index=False):
                reason = f"gender {value!r} is not female, male, other or empty; kept as written"
                problems.append(Problem(UNKNOWN_VALUE, reason, origin))
        if "speaker" in frame.columns:
            frame = own_speakers(frame, problems, "blank speaker; kept as a speaker of its own")
        groups = tuple(c for c in frame.columns if c not in (*RESERVED_COLUMNS, WHERE))
        return ImportResult(frame, problems, root.parent, root, groups=groups)
