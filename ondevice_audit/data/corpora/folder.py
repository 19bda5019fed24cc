"""Generic layouts: one folder per label, groups from a CSV keyed by file or speaker.

Layout::

    ROOT/<label>/**/<file>        audio: .wav .flac .mp3 .opus .ogg .oga .aif .aiff (image-folder: images)
    groups.csv                    --groups: file (or path) or speaker, then one column per group

The label is the top-level folder; files directly in ``ROOT`` and hidden files are not read. ``speaker``
comes from the file name with ``--speaker-pattern`` (a regular expression whose first group, or group
``speaker``, is the id; default ``^([^_]+)_``, the part before the first ``_``, as in Speech Commands), or
from a ``speaker`` column of a groups CSV keyed by file. When the default pattern matches no file at all
the manifest has no speaker column (reports then resample files); when it matches only some, the others
are reported and kept as speakers of their own.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import ClassVar, Literal

import pandas as pd

from ondevice_audit.data.corpora.files import AUDIO_SUFFIXES, list_files
from ondevice_audit.data.corpora.groups import join_groups
from ondevice_audit.data.corpora.interface import NO_SPEAKER, CorpusAdapter, ImportResult, Problem, undecodable_names
from ondevice_audit.data.interface import DataError
from ondevice_audit.errors import UsageError
from ondevice_audit.progress import Progress

__all__ = ["DEFAULT_SPEAKER_PATTERN", "FolderAdapter"]

DEFAULT_SPEAKER_PATTERN = r"^([^_]+)_"


class FolderAdapter(CorpusAdapter):
    name = "folder"
    modality: ClassVar[Literal["audio", "image"]] = "audio"  # ImageFolderAdapter: the same layout of images
    summary = "one folder per label (<label>/**/<clip>), groups from --groups CSV keyed by file or speaker"
    suffixes: ClassVar[frozenset[str]] = AUDIO_SUFFIXES

    def _read(
        self, root: Path, progress: Progress, *, groups: Path | None = None, speaker_pattern: str | None = None
    ) -> ImportResult:
        if not root.is_dir():
            raise UsageError(f"{root} is not a folder; give the folder holding one folder per label")
        pattern = _compile(speaker_pattern or DEFAULT_SPEAKER_PATTERN)
        problems: list[Problem] = []
        notes: list[str] = []
        rows, ignored = [], 0
        with progress.task("Listing files", total=None):
            labels = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
            for label in labels:
                listing = list_files(root / label, self.suffixes, root)
                ignored += listing.ignored
                problems += undecodable_names(listing.undecodable)
                rows += [(path, label) for path in listing.files]
        kind = "clips" if self.modality == "audio" else "images"
        if not rows:
            suffixes = " ".join(sorted(self.suffixes))
            raise DataError(f"{root}: no {kind} in label folders (<label>/<file> with suffix {suffixes})")
        if ignored:
            notes.append(f"ignored {ignored} file(s) in label folders that are not {kind}")
        frame = pd.DataFrame(rows, columns=["path", "label"])
        names = frame["path"].str.rsplit("/", n=1).str[-1]
        speakers = names.map(lambda name: _speaker(pattern, name))
        if speakers.eq("").all() and speaker_pattern is None:
            notes.append(
                f"no file name matches {DEFAULT_SPEAKER_PATTERN}: no speaker column (--speaker-pattern sets one)"
            )
        else:
            for path in frame.loc[speakers.eq(""), "path"]:
                reason = f"name does not match --speaker-pattern {pattern.pattern}; kept as a speaker of its own"
                problems.append(Problem(NO_SPEAKER, reason, file=path))
            frame["speaker"] = speakers.where(speakers.ne(""), frame["path"])
        group_columns: list[str] = []
        if groups is not None:
            frame, group_columns = join_groups(frame, groups, problems)
        return ImportResult(frame, problems, root, root, groups=tuple(group_columns), notes=notes)


def _compile(pattern: str) -> re.Pattern[str]:
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise UsageError(f"--speaker-pattern {pattern!r} is not a regular expression ({exc})") from None
    if compiled.groups < 1:
        raise UsageError(f"--speaker-pattern {pattern!r} needs a group, such as ^([^_]+)_, for the speaker id")
    return compiled


def _speaker(pattern: re.Pattern[str], name: str) -> str:
    match = pattern.search(name)
    if match is None:
        return ""
    value = match.group("speaker") if "speaker" in pattern.groupindex else match.group(1)
    return (value or "").strip()
