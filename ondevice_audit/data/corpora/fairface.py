"""FairFace (Kärkkäinen & Joo 2021), as it is downloaded.

Layout::

    ROOT/fairface_label_train.csv, fairface_label_val.csv    file,age,gender,race,service_test
    ROOT/train/<n>.jpg, ROOT/val/<n>.jpg                       ``file`` is relative to ROOT

``split`` is ``train`` or ``dev`` (the val table). Values are checked against FairFace's own: ``age`` one
of ``0-2 3-9 10-19 20-29 30-39 40-49 50-59 60-69 more than 70``; ``gender`` ``Male``/``Female`` (written
``male``/``female``, as the audio corpora); ``race`` one of ``White``, ``Black``, ``Latino_Hispanic``,
``East Asian``, ``Southeast Asian``, ``Indian``, ``Middle Eastern`` (kept as written). ``service_test`` is
copied. ``--target`` (``gender`` by default, ``race`` or ``age``) is the label; the attributes are groups.
A value outside these lists is reported: the row is kept with that group missing, or skipped when the
value is the label. FairFace has no person ids, so there is no ``speaker`` column: reports resample images.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ondevice_audit.data.corpora.interface import UNKNOWN_VALUE, WHERE, CorpusAdapter, ImportResult, Problem
from ondevice_audit.data.corpora.tables import read_rows
from ondevice_audit.data.interface import DataError
from ondevice_audit.errors import UsageError
from ondevice_audit.progress import Progress

__all__ = ["AGE_BINS", "RACES", "TARGETS", "FairFaceAdapter", "age_bin", "check_target"]

AGE_BINS = ("0-2", "3-9", "10-19", "20-29", "30-39", "40-49", "50-59", "60-69", "more than 70")
RACES = ("White", "Black", "Latino_Hispanic", "East Asian", "Southeast Asian", "Indian", "Middle Eastern")
TARGETS = ("gender", "race", "age")
_TABLES = (("fairface_label_train.csv", "train"), ("fairface_label_val.csv", "dev"))


def age_bin(age: int) -> str:
    """FairFace's age group of an age in years (its last bin, ``more than 70``, starts at 70)."""
    for label in AGE_BINS[:-1]:
        low, high = (int(x) for x in label.split("-"))
        if low <= age <= high:
            return label
    return AGE_BINS[-1]


def check_target(target: str) -> str:
    if target not in TARGETS:
        raise UsageError(f"--target {target!r}: choose {', '.join(TARGETS)}")
    return target


class FairFaceAdapter(CorpusAdapter):
    name = "fairface"
    modality = "image"
    summary = "FairFace: fairface_label_train.csv / fairface_label_val.csv (file,age,gender,race,service_test)"

    def _read(self, root: Path, progress: Progress, *, target: str = "gender") -> ImportResult:
        check_target(target)
        if not root.is_dir():
            raise UsageError(f"{root} is not a folder; give the FairFace folder (with fairface_label_*.csv)")
        problems: list[Problem] = []
        parts = []
        with progress.task("Reading FairFace tables", total=None):
            for name, split in _TABLES:
                if (root / name).is_file():
                    table = read_rows(root / name, problems, required=("file", "age", "gender", "race"))
                    if table is not None:
                        parts.append(table.assign(split=split))
        if not parts:
            found = [name for name, _ in _TABLES if (root / name).is_file()]
            why = problems[-1].reason if found else f"no {' or '.join(n for n, _ in _TABLES)}"
            raise DataError(f"{root}: no usable FairFace table ({why})")
        table = pd.concat(parts, ignore_index=True)
        columns = {  # values as written out, the accepted ones, and how FairFace spells them
            "age": (table["age"].str.strip(), AGE_BINS, AGE_BINS),
            "gender": (table["gender"].str.strip().str.casefold(), ("male", "female"), ("Male", "Female")),
            "race": (table["race"].str.strip(), RACES, RACES),
        }
        frame = pd.DataFrame({"path": table["file"].str.strip(), "split": table["split"], WHERE: table[WHERE]})
        for column, (values, allowed, spelled) in columns.items():
            known = values.isin(allowed)
            outcome = "skipped (it is the --target)" if column == target else f"kept with {column} missing"
            for origin, value in table.loc[~known, [WHERE, column]].itertuples(index=False):
                reason = f"{column} {value!r} is not one of {', '.join(spelled)}; {outcome}"
                problems.append(Problem(UNKNOWN_VALUE, reason, origin))
            frame[column] = values.where(known, "")
        frame["label"] = frame[target]
        if "service_test" in table.columns:
            frame["service_test"] = table["service_test"].str.strip()
        frame = frame[frame["label"].ne("")]
        return ImportResult(frame, problems, root, root, groups=("age", "gender", "race"), notes=_NOTES)


_NOTES = ["FairFace has no person ids: no speaker column, so reports resample images"]
