"""UTKFace (Zhang et al. 2017), as it is downloaded: the labels are in the file names.

Layout: ``ROOT/**/<age>_<gender>_<race>_<datetime>.jpg`` (the aligned-and-cropped set ends in
``.jpg.chip.jpg``; both are read). ``age`` is in years (0-116); ``gender`` 0 is ``male``, 1 ``female``;
``race`` 0 ``White``, 1 ``Black``, 2 ``Asian``, 3 ``Indian``, 4 ``Others``; ``datetime`` is the capture
time (digits). A name that does not have exactly these four fields with these values (a few in the
published set lack one) is reported and skipped, never guessed.

Columns: ``age`` (years), ``age_group`` (FairFace's bins ``0-2`` ... ``more than 70``, so the two corpora
compare), ``gender``, ``race``; ``--target`` (``gender`` by default, ``race`` or ``age``, the age group) is
the label. UTKFace has no person ids and no split, so there is no ``speaker`` (reports resample images) and
no ``split`` column.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ondevice_audit.data.corpora.fairface import age_bin, check_target
from ondevice_audit.data.corpora.files import IMAGE_SUFFIXES, list_files
from ondevice_audit.data.corpora.interface import (
    MALFORMED_NAME,
    CorpusAdapter,
    ImportResult,
    Problem,
    undecodable_names,
)
from ondevice_audit.data.interface import DataError
from ondevice_audit.errors import UsageError
from ondevice_audit.progress import Progress

__all__ = ["GENDERS", "RACES", "UTKFaceAdapter", "parse_name"]

GENDERS = ("male", "female")
RACES = ("White", "Black", "Asian", "Indian", "Others")
MAX_AGE = 116


def parse_name(name: str) -> tuple[int, str, str] | str:
    """(age, gender, race) from a UTKFace file name, or why it is malformed."""
    stem = name.split(".", 1)[0]
    fields = stem.split("_")
    if len(fields) != 4 or not all(f.isdigit() and f.isascii() for f in fields):
        return f"expected <age>_<gender>_<race>_<datetime>.jpg, got {len(fields)} field(s) in {stem!r}"
    age, gender, race = (int(f) for f in fields[:3])
    if age > MAX_AGE:
        return f"age {age} is above {MAX_AGE}"
    if gender >= len(GENDERS):
        return f"gender {gender} is not 0 (male) or 1 (female)"
    if race >= len(RACES):
        return f"race {race} is not 0-4 (White, Black, Asian, Indian, Others)"
    return age, GENDERS[gender], RACES[race]


class UTKFaceAdapter(CorpusAdapter):
    name = "utkface"
    modality = "image"
    summary = "UTKFace: <age>_<gender>_<race>_<datetime>.jpg[.chip.jpg] anywhere under ROOT"

    def _read(self, root: Path, progress: Progress, *, target: str = "gender") -> ImportResult:
        check_target(target)
        if not root.is_dir():
            raise UsageError(f"{root} is not a folder; give the folder holding the UTKFace images")
        problems: list[Problem] = []
        rows = []
        with progress.task("Listing UTKFace images", total=None):
            listing = list_files(root, IMAGE_SUFFIXES, root)
            problems += undecodable_names(listing.undecodable)
            for path in listing.files:
                parsed = parse_name(path.rsplit("/", 1)[-1])
                if isinstance(parsed, str):
                    problems.append(Problem(MALFORMED_NAME, f"{parsed}; skipped", file=path))
                    continue
                age, gender, race = parsed
                rows.append((path, str(age), age_bin(age), gender, race))
        if not rows and not problems:
            raise DataError(f"{root}: no images found")
        frame = pd.DataFrame(rows, columns=["path", "age", "age_group", "gender", "race"], dtype=str)
        frame["label"] = frame["age_group" if target == "age" else target]
        notes = ["UTKFace has no person ids: no speaker column, so reports resample images"]
        return ImportResult(frame, problems, root, root, groups=("age_group", "gender", "race"), notes=notes)
