"""Google Speech Commands (v2, and v1 which has the same layout), as it is downloaded.

Layout::

    ROOT/<word>/<speaker hash>_nohash_<n>.wav   16 kHz, 1 s
    ROOT/validation_list.txt, testing_list.txt   one <word>/<file>.wav per line
    ROOT/_background_noise_/                     skipped (folders starting with _ or . are not words)

``split`` is ``test`` for files in ``testing_list.txt``, ``dev`` for ``validation_list.txt``, ``train``
otherwise. ``speaker`` is the hash before ``_nohash_``; a file named otherwise is reported and skipped.

Groups, optional: gender lists as used in the keyword-spotting bias study, ``ROOT/<split>_list_<value>.txt``
(e.g. ``training_list_male.txt``, ``testing_list_female.txt``; one relative path per line) give a ``gender``
column (files in no list have it missing; a file in two lists is reported); and/or ``--groups CSV`` keyed
by ``speaker`` (or ``file``) adds its columns.

Labels: the ten keywords of the standard task (``yes no up down left right on off stop go``) or
``--keywords``; other words are ``_unknown_`` (the word stays in ``word``); ``--all-words`` keeps every
word as its own label.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from ondevice_audit.data.corpora.files import list_files
from ondevice_audit.data.corpora.groups import join_groups
from ondevice_audit.data.corpora.interface import (
    MALFORMED_NAME,
    MALFORMED_ROW,
    MISSING_FILE,
    UNKNOWN_VALUE,
    CorpusAdapter,
    ImportResult,
    Problem,
    safe_path,
    undecodable_names,
)
from ondevice_audit.data.corpora.tables import read_lines
from ondevice_audit.data.corpora.values import UNKNOWN_LABEL, limit_unknown, parse_keywords
from ondevice_audit.data.interface import DataError
from ondevice_audit.data.synth_kws import KEYWORDS
from ondevice_audit.errors import UsageError
from ondevice_audit.progress import Progress

__all__ = ["SpeechCommandsAdapter"]

_NAME = re.compile(r"(?P<speaker>[^_/]+)_nohash_(?P<n>\d+)\.wav", re.IGNORECASE)
_GENDER_LIST = re.compile(r"(?:training|validation|testing)_list_(?P<value>[A-Za-z]+)\.txt")
_SPLIT_LISTS = (("testing_list.txt", "test"), ("validation_list.txt", "dev"))


class SpeechCommandsAdapter(CorpusAdapter):
    name = "speech-commands"
    modality = "audio"
    summary = "Google Speech Commands v2: <word>/<speaker>_nohash_<n>.wav, validation_list.txt, testing_list.txt"

    def _read(
        self,
        root: Path,
        progress: Progress,
        *,
        keywords: str | list[str] | None = None,
        all_words: bool = False,
        groups: Path | None = None,
        max_unknown: int | None = None,
        seed: int = 0,
    ) -> ImportResult:
        if not root.is_dir():
            raise UsageError(f"{root} is not a folder; give the Speech Commands folder (with one folder per word)")
        if all_words and keywords is not None:
            raise UsageError("give --keywords or --all-words, not both")
        problems: list[Problem] = []
        notes: list[str] = []
        rows = []
        with progress.task("Listing Speech Commands clips", total=None):
            words = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith(("_", ".")))
            for word in words:
                listing = list_files(root / word, frozenset({".wav"}), root)
                problems += undecodable_names(listing.undecodable)
                for path in listing.files:
                    match = _NAME.fullmatch(path.rsplit("/", 1)[-1])
                    if match is None:
                        reason = "name is not <speaker>_nohash_<n>.wav; skipped (no speaker)"
                        problems.append(Problem(MALFORMED_NAME, reason, file=path))
                        continue
                    rows.append((path, word, match["speaker"]))
        if not rows:
            raise DataError(f"{root}: no <word>/<speaker>_nohash_<n>.wav clips found")
        frame = pd.DataFrame(rows, columns=["path", "word", "speaker"])
        present = set(frame["path"])

        split = pd.Series("train", index=frame.index)
        found_lists = [(name, value) for name, value in _SPLIT_LISTS if (root / name).is_file()]
        if not found_lists:
            notes.append("no validation_list.txt or testing_list.txt: every clip is in split train")
        for name, value in reversed(found_lists):  # testing last, so it wins over validation
            listed = _read_list(root / name, problems, present)
            split = split.where(~frame["path"].isin(listed), value)
        frame["split"] = split

        group_columns: list[str] = []
        gender_lists = [
            (p, match["value"].casefold())
            for p in sorted(root.glob("*_list_*.txt"))
            if (match := _GENDER_LIST.fullmatch(p.name)) is not None
        ]
        if gender_lists:
            frame["gender"] = _genders(gender_lists, frame, problems, notes)
            group_columns.append("gender")
        if groups is not None:
            frame, extra = join_groups(frame, groups, problems)
            group_columns += [c for c in extra if c not in group_columns]

        if all_words:
            frame["label"] = frame["word"]
        else:
            chosen = parse_keywords(keywords) if keywords is not None else list(KEYWORDS)
            frame["label"] = frame["word"].where(frame["word"].str.casefold().isin(chosen), UNKNOWN_LABEL)
            frame["label"] = frame["label"].where(frame["label"] == UNKNOWN_LABEL, frame["label"].str.casefold())
            notes.append(f"keywords: {', '.join(chosen)}; other words are {UNKNOWN_LABEL}")
        frame, dropped = limit_unknown(frame, max_unknown, seed)
        if dropped:
            notes.append(
                f"left out {dropped} {UNKNOWN_LABEL} clip(s) at random (--max-unknown {max_unknown}, seed {seed})"
            )
        return ImportResult(frame, problems, root, root, groups=tuple(group_columns), notes=notes)


def _read_list(path: Path, problems: list[Problem], present: set[str]) -> set[str]:
    """The clips a list names; entries that are malformed or not on disk are reported."""
    listed = set()
    for number, text in read_lines(path, problems, path.name):
        entry = safe_path(text)
        where = f"{path.name} line {number}"
        if entry is None:
            problems.append(Problem(MALFORMED_ROW, f"{text.strip()!r} is not a path inside the corpus; ignored", where))
        elif entry not in present:
            problems.append(Problem(MISSING_FILE, "listed but not among the clips; ignored", where, entry))
        else:
            listed.add(entry)
    return listed


def _genders(
    lists: list[tuple[Path, str]], frame: pd.DataFrame, problems: list[Problem], notes: list[str]
) -> pd.Series:
    """Gender per clip from the lists (path, value); a clip in lists of two values keeps the first."""
    present = set(frame["path"])
    value_of: dict[str, str] = {}
    for path, value in lists:
        for entry in _read_list(path, problems, present):
            if value_of.setdefault(entry, value) != value:
                reason = f"in the {value_of[entry]} and {value} lists; kept as {value_of[entry]}"
                problems.append(Problem(UNKNOWN_VALUE, reason, path.name, entry))
    gender = frame["path"].map(value_of).fillna("")
    unlisted = int(gender.eq("").sum())
    names = ", ".join(p.name for p, _ in lists)
    notes.append(f"gender from {names}" + (f"; {unlisted} clip(s) are in no list (gender missing)" if unlisted else ""))
    return gender
