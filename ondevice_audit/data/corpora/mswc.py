"""MLCommons Multilingual Spoken Words Corpus (MSWC), one language as it is downloaded.

Layout (``ROOT`` is the language folder)::

    ROOT/clips/<word>/<name>.opus          48 kHz Opus, one word per clip
    ROOT/<lang>_splits.csv                 SET,LINK,WORD,VALID,SPEAKER,GENDER
    ROOT/<lang>_train.csv, _dev.csv, _test.csv (or train.csv, ...)   LINK,WORD,VALID,SPEAKER,GENDER

The ``*_splits.csv`` is used when present, else the per-split files (the split then comes from the file
name); ``--splits-file`` names another. ``LINK`` is relative to ``clips/`` (``<word>/<name>.opus``; a bare
name is looked up under ``clips/<WORD>/``). ``SET`` (``TRAIN``/``DEV``/``TEST``) becomes ``split`` in lower
case. ``SPEAKER`` (the Common Voice client id) becomes ``speaker``; ``NA`` (MSWC's id for invalid clips) and
empty ids are reported and each clip is a speaker of its own. ``GENDER`` (``MALE``, ``FEMALE``,
``OTHER``, empty or ``NAN``) becomes ``gender`` (see ``values``), as written in ``gender_raw``.

Labels: the ``--keywords`` given, or the ``--top`` N most frequent words (default 10) among the clips
kept; every other word is ``_unknown_`` (the word stays in ``word``). ``--max-unknown`` keeps a seeded
sample of those. Clips with ``VALID`` other than ``True`` are left out unless ``--include-invalid``
(a ``valid`` column is then written).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ondevice_audit.data.corpora.interface import (
    UNKNOWN_VALUE,
    WHERE,
    CorpusAdapter,
    ImportResult,
    Problem,
    own_speakers,
)
from ondevice_audit.data.corpora.tables import read_rows
from ondevice_audit.data.corpora.values import UNKNOWN_LABEL, choose_keywords, limit_unknown, normalise_gender
from ondevice_audit.data.interface import DataError
from ondevice_audit.errors import UsageError
from ondevice_audit.progress import Progress

__all__ = ["MSWCAdapter"]

SPLITS = ("train", "dev", "test")


class MSWCAdapter(CorpusAdapter):
    name = "mswc"
    modality = "audio"
    summary = "MLCommons Multilingual Spoken Words: <lang>_splits.csv or train/dev/test CSVs, clips/<word>/*.opus"

    def _read(
        self,
        root: Path,
        progress: Progress,
        *,
        keywords: str | list[str] | None = None,
        top: int | None = None,
        max_unknown: int | None = None,
        seed: int = 0,
        include_invalid: bool = False,
        splits_file: Path | None = None,
    ) -> ImportResult:
        problems: list[Problem] = []
        notes: list[str] = []
        parts = []
        with progress.task("Reading MSWC split tables", total=None):
            for path, split in _tables(root, splits_file):
                table = read_rows(path, problems, required=("LINK", "WORD") if split else ("SET", "LINK", "WORD"))
                if table is not None:
                    parts.append(table.assign(SET=split) if split else table)
        if not parts:
            raise DataError(f"{root}: no usable MSWC split table ({problems[-1].reason})")
        table = pd.concat(parts, ignore_index=True)
        if "VALID" not in table.columns:
            table["VALID"] = "True"  # a table without the column lists validated clips only
        for column in ("SPEAKER", "GENDER"):
            if column not in table.columns:
                table[column] = ""

        valid_text = table["VALID"].str.strip().str.casefold()
        odd = ~valid_text.isin(["true", "false"])
        for origin, value in table.loc[odd, [WHERE, "VALID"]].itertuples(index=False):
            problems.append(Problem(UNKNOWN_VALUE, f"VALID {value!r} is not True or False; read as False", origin))
        valid = valid_text.eq("true")
        if not include_invalid:
            dropped = int((~valid).sum())
            if dropped:
                notes.append(f"left out {dropped} clip(s) not marked VALID=True (--include-invalid keeps them)")
            table, valid = table[valid], valid[valid]

        words = table["WORD"].str.strip()
        chosen = choose_keywords(words.str.casefold(), keywords, top)
        how = "as given" if keywords is not None else f"the {len(chosen)} most frequent words"
        notes.append(f"keywords ({how}): {', '.join(chosen)}; other words are {UNKNOWN_LABEL}")
        link = table["LINK"].str.strip()
        bare = ~link.str.contains("/", regex=False)
        clips = "clips/" + link.where(~bare, words + "/" + link)
        gender, unknown = normalise_gender(table["GENDER"])
        for origin, value in table.loc[unknown, [WHERE, "GENDER"]].itertuples(index=False):
            reason = f"GENDER {value!r} is not MALE, FEMALE, OTHER or empty; kept with gender missing"
            problems.append(Problem(UNKNOWN_VALUE, reason, origin))
        frame = pd.DataFrame(
            {
                "path": clips,
                "label": words.str.casefold().where(words.str.casefold().isin(chosen), UNKNOWN_LABEL),
                "split": table["SET"].str.strip().str.casefold(),
                "speaker": table["SPEAKER"].str.strip().replace("NA", ""),  # MSWC's speaker of invalid clips
                "gender": gender,
                "word": words,
                "gender_raw": table["GENDER"],
                WHERE: table[WHERE],
            }
        )
        if include_invalid:
            frame["valid"] = valid.map({True: "true", False: "false"}).to_numpy()
        frame = own_speakers(frame, problems, "no SPEAKER (empty or NA); kept as a speaker of its own")
        frame, dropped = limit_unknown(frame, max_unknown, seed)
        if dropped:
            notes.append(
                f"left out {dropped} {UNKNOWN_LABEL} clip(s) at random (--max-unknown {max_unknown}, seed {seed})"
            )
        return ImportResult(frame, problems, root, root, groups=("gender",), notes=notes)


def _tables(root: Path, splits_file: Path | None) -> list[tuple[Path, str | None]]:
    """(table, split) pairs: split None when the table has a SET column."""
    if splits_file is not None:
        if not splits_file.is_file():
            raise UsageError(f"--splits-file {splits_file}: not found; check the path")
        stem = splits_file.stem.casefold()
        return [(splits_file, next((s for s in SPLITS if stem == s or stem.endswith(f"_{s}")), None))]
    if not root.is_dir():
        raise UsageError(f"{root} is not a folder; give the MSWC language folder (with clips/)")
    combined = sorted(p for p in root.glob("*splits.csv") if p.is_file())
    if len(combined) > 1:
        names = ", ".join(p.name for p in combined)
        raise UsageError(f"{root} holds several split tables ({names}); choose one with --splits-file")
    if combined:
        return [(combined[0], None)]
    found: list[tuple[Path, str | None]] = []
    for split in SPLITS:
        candidates = sorted({*root.glob(f"{split}.csv"), *root.glob(f"*_{split}.csv")})
        found += [(p, split) for p in candidates[:1]]
    if not found:
        raise DataError(
            f"{root}: no MSWC split table; expected <lang>_splits.csv (SET,LINK,WORD,VALID,SPEAKER,GENDER) or "
            f"train.csv/dev.csv/test.csv (LINK,WORD,VALID,SPEAKER,GENDER); name one with --splits-file"
        )
    return found
