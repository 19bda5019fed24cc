"""Mozilla Common Voice, one locale as it is downloaded.

Layout (``ROOT`` is the locale folder, e.g. ``cv-corpus-17.0/en``)::

    ROOT/clips/*.mp3
    ROOT/train.tsv, dev.tsv, test.tsv, validated.tsv, ...

The TSVs are tab-separated without quoting. Columns read: ``client_id`` (-> ``speaker``), ``path``
(relative to ``clips/``), ``sentence`` (the label), ``gender``, ``age``, ``accents`` (``accent`` in older
releases; -> ``accent``, free text as written), ``variant`` and ``locale`` when present. Newer columns
(``sentence_id``, ``sentence_domain``, ``segment``, votes) are accepted and not copied. Gender (``male``,
``female``, ``other`` in old releases; ``male_masculine``, ``female_feminine``, ``intersex``,
``transgender``, ``non-binary``, ``do_not_wish_to_say`` in new ones) and age (``teens`` ... ``nineties``,
``fourties`` read as ``forties``) are normalised as documented in ``values``; the values as written go to
``gender_raw`` and ``age_raw``.

Tables: ``train``, ``dev`` and ``test`` when present (the corpus' own speaker-disjoint split), else
``validated``; ``--tables`` chooses others (e.g. ``validated``). The table name is the ``split``. A clip in
two tables (``validated`` holds ``train``'s clips) is reported as a duplicate and kept once.

Labels: the sentence, or the column named by ``--label-column``. With ``--keywords`` the data becomes a
keyword-spotting set: clips whose text is a single word (case and outer punctuation ignored, as in the
corpus' single-word segment) are kept, labelled with the word when it is a keyword and ``_unknown_``
otherwise; clips of several words are left out (counted in the notes). The text is then kept in ``sentence``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from ondevice_audit.data.corpora.interface import (
    MALFORMED_ROW,
    UNKNOWN_VALUE,
    WHERE,
    CorpusAdapter,
    ImportResult,
    Problem,
    own_speakers,
)
from ondevice_audit.data.corpora.tables import read_rows
from ondevice_audit.data.corpora.values import (
    UNKNOWN_LABEL,
    limit_unknown,
    normalise_age,
    normalise_gender,
    parse_keywords,
    single_word,
)
from ondevice_audit.data.interface import DataError
from ondevice_audit.errors import UsageError
from ondevice_audit.progress import Progress

__all__ = ["CommonVoiceAdapter"]

SPLITS = ("train", "dev", "test")


class CommonVoiceAdapter(CorpusAdapter):
    name = "common-voice"
    modality = "audio"
    summary = "Mozilla Common Voice locale folder: train/dev/test.tsv (or --tables), clips/*.mp3"

    def _read(
        self,
        root: Path,
        progress: Progress,
        *,
        keywords: str | list[str] | None = None,
        label_column: str | None = None,
        tables: str | Sequence[str] | None = None,
        max_unknown: int | None = None,
        seed: int = 0,
    ) -> ImportResult:
        if not root.is_dir():
            raise UsageError(f"{root} is not a folder; give the Common Voice locale folder (with clips/ and *.tsv)")
        text_column = label_column or "sentence"
        problems: list[Problem] = []
        notes: list[str] = []
        parts = []
        with progress.task("Reading Common Voice tables", total=None):
            for name in _table_names(root, tables):
                table = read_rows(root / f"{name}.tsv", problems, sep="\t", required=("client_id", "path", text_column))
                if table is not None:
                    parts.append(table.assign(_split=name))
        if not parts:
            raise DataError(f"{root}: no usable Common Voice table ({problems[-1].reason})")
        table = pd.concat(parts, ignore_index=True)
        if "accents" not in table.columns and "accent" in table.columns:
            table = table.rename(columns={"accent": "accents"})

        frame = pd.DataFrame(
            {
                "path": "clips/" + table["path"].str.strip(),
                "split": table["_split"],
                "speaker": table["client_id"].str.strip(),
                WHERE: table[WHERE],
            }
        )
        groups = _add_groups(frame, table, problems)

        text = table[text_column].str.strip()
        if keywords is not None:
            chosen = parse_keywords(keywords)
            words = text.map(single_word)
            several = words.isna() & text.ne("")  # an empty text is a malformed row, reported below
            if several.any():
                notes.append(f"left out {int(several.sum())} clip(s) whose text is not a single word (--keywords)")
            frame["label"] = words.fillna("").where(words.isin(chosen) | words.isna(), UNKNOWN_LABEL)
            frame["sentence"] = text
            frame, text = frame[~several], text[~several]
            notes.append(f"keywords: {', '.join(chosen)}; other single words are {UNKNOWN_LABEL}")
        else:
            frame["label"] = text
            if label_column is not None:
                frame["sentence"] = table["sentence"] if "sentence" in table.columns else ""
        empty = frame["label"].eq("")
        for origin in frame.loc[empty, WHERE]:
            problems.append(Problem(MALFORMED_ROW, f"empty {text_column}; skipped", origin))
        frame = frame[~empty]
        frame = own_speakers(frame, problems, "no client_id; kept as a speaker of its own")
        frame, dropped = limit_unknown(frame, max_unknown, seed)
        if dropped:
            notes.append(
                f"left out {dropped} {UNKNOWN_LABEL} clip(s) at random (--max-unknown {max_unknown}, seed {seed})"
            )
        return ImportResult(frame, problems, root, root, groups=tuple(groups), notes=notes)


def _table_names(root: Path, tables: str | Sequence[str] | None) -> list[str]:
    if tables is not None:
        parts = [tables] if isinstance(tables, str) else list(tables)
        names = list(
            dict.fromkeys(n.strip().removesuffix(".tsv") for part in parts for n in part.split(",") if n.strip())
        )
        missing = [n for n in names if not (root / f"{n}.tsv").is_file()]
        if not names or missing:
            present = ", ".join(sorted(p.stem for p in root.glob("*.tsv"))) or "none"
            raise UsageError(f"--tables: no {', '.join(missing) or 'table named'} in {root} (tables there: {present})")
        return names
    names = [s for s in SPLITS if (root / f"{s}.tsv").is_file()]
    if names:
        return names
    if (root / "validated.tsv").is_file():
        return ["validated"]
    raise DataError(f"{root}: no Common Voice table (train.tsv, dev.tsv, test.tsv or validated.tsv)")


def _add_groups(frame: pd.DataFrame, table: pd.DataFrame, problems: list[Problem]) -> list[str]:
    """Common Voice's speaker columns as group columns (values normalised, the raw ones kept); the groups added."""
    groups = []
    for column, normaliser, allowed in (
        ("gender", normalise_gender, "male, female, other, male_masculine, female_feminine, intersex, "
         "transgender, non-binary, do_not_wish_to_say or empty"),
        ("age", normalise_age, "teens ... nineties or empty"),
    ):  # fmt: skip
        if column not in table.columns:
            continue
        values, unknown = normaliser(table[column])
        for origin, value in table.loc[unknown, [WHERE, column]].itertuples(index=False):
            reason = f"{column} {value!r} is not one of {allowed}; kept with {column} missing"
            problems.append(Problem(UNKNOWN_VALUE, reason, origin))
        frame[column] = values
        frame[f"{column}_raw"] = table[column]
        groups.append(column)
    for source, column in (("accents", "accent"), ("variant", "variant")):
        if source in table.columns:
            frame[column] = table[source].str.strip()
            groups.append(column)
    if "locale" in table.columns:  # one value per download: kept, but not a group
        frame["locale"] = table["locale"].str.strip()
    return groups
