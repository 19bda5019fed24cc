"""Normalised group values, and choosing keywords among a corpus' words.

Corpora spell the same group differently (MSWC ``FEMALE``, old Common Voice ``female``, new Common Voice
``female_feminine``) and a group split by spelling is two groups. Imports write one spelling:

- ``gender``: ``female``, ``male``, ``other`` (any declared gender other than female or male: MSWC/Common
  Voice ``other``, Common Voice ``intersex``, ``transgender``, ``non-binary``), or empty (not given,
  ``do_not_wish_to_say``, MSWC ``NAN``), which reports show as ``(missing)``.
- ``age``: ``teens``, ``twenties``, ``thirties``, ``forties`` (Common Voice writes ``fourties``), ``fifties``,
  ``sixties``, ``seventies``, ``eighties``, ``nineties``, or empty.

The value as written goes to ``gender_raw`` / ``age_raw``; a value outside these lists is reported and
normalised to empty, never guessed.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

import numpy as np
import pandas as pd

from ondevice_audit.data.synth_kws import UNKNOWN_LABEL
from ondevice_audit.errors import UsageError

__all__ = [
    "AGES",
    "GENDERS",
    "UNKNOWN_LABEL",
    "choose_keywords",
    "limit_unknown",
    "normalise",
    "normalise_age",
    "normalise_gender",
    "parse_keywords",
    "single_word",
]

GENDERS = ("female", "male", "other")
AGES = ("teens", "twenties", "thirties", "forties", "fifties", "sixties", "seventies", "eighties", "nineties")

_GENDER = {
    "female": "female",
    "male": "male",
    "other": "other",
    "female_feminine": "female",
    "male_masculine": "male",
    "intersex": "other",
    "transgender": "other",
    "non-binary": "other",
    "do_not_wish_to_say": "",
    "nan": "",
    "": "",
}
_AGE = {**{age: age for age in AGES}, "fourties": "forties", "": ""}


def normalise(raw: pd.Series, table: dict[str, str]) -> tuple[pd.Series, pd.Series]:
    """(normalised values, mask of values not in ``table``); matching ignores case and outer spaces."""
    key = raw.astype(str).str.strip().str.casefold()
    known = key.isin(list(table))
    return key.map(table).where(known, "").astype(str), ~known


def normalise_gender(raw: pd.Series) -> tuple[pd.Series, pd.Series]:
    return normalise(raw, _GENDER)


def normalise_age(raw: pd.Series) -> tuple[pd.Series, pd.Series]:
    return normalise(raw, _AGE)


def parse_keywords(text: str | Sequence[str]) -> list[str]:
    """``"yes, No,yes"`` (or a list of such strings) -> ``["yes", "no"]``: case-folded, in order, once each."""
    parts = [text] if isinstance(text, str) else list(text)
    words = [w.strip().casefold() for part in parts for w in part.split(",")]
    chosen = list(dict.fromkeys(w for w in words if w))
    if not chosen:
        raise UsageError("--keywords is empty; give comma-separated words such as yes,no")
    if UNKNOWN_LABEL in chosen:
        raise UsageError(f"{UNKNOWN_LABEL} is the label of the other words; it cannot be a keyword")
    return chosen


def choose_keywords(words: pd.Series, keywords: Sequence[str] | None, top: int | None) -> list[str]:
    """``keywords`` as given, else the ``top`` most frequent words (ties alphabetical)."""
    if keywords is not None and top is not None:
        raise UsageError("give --keywords or --top, not both")
    if keywords is not None:
        return parse_keywords(keywords)
    top = 10 if top is None else top
    if top < 1:
        raise UsageError(f"--top must be at least 1, got {top}")
    counts = words.value_counts()
    order = sorted(counts.index, key=lambda w: (-int(counts[w]), w))
    return [str(w) for w in order[:top]]


def limit_unknown(frame: pd.DataFrame, max_unknown: int | None, seed: int) -> tuple[pd.DataFrame, int]:
    """At most ``max_unknown`` ``_unknown_`` rows, drawn with ``seed`` (order kept); returns (frame, dropped).

    Other words outnumber keywords by orders of magnitude in MSWC and Common Voice; an audit needs enough
    of them to measure false accepts, not all of them.
    """
    if max_unknown is None:
        return frame, 0
    if max_unknown < 0:
        raise UsageError(f"--max-unknown must be 0 or more, got {max_unknown}")
    unknown = np.flatnonzero((frame["label"] == UNKNOWN_LABEL).to_numpy())
    if len(unknown) <= max_unknown:
        return frame, 0
    dropped = np.random.default_rng(seed).choice(unknown, size=len(unknown) - max_unknown, replace=False)
    keep = np.ones(len(frame), dtype=bool)
    keep[dropped] = False
    return frame[keep], len(dropped)


def single_word(sentence: str) -> str | None:
    """The one word of ``sentence``, case-folded, outer punctuation stripped; None for several words or none."""
    text = sentence.strip()
    while text and unicodedata.category(text[0]).startswith(("P", "Z")):
        text = text[1:]
    while text and unicodedata.category(text[-1]).startswith(("P", "Z")):
        text = text[:-1]
    if not text or any(c.isspace() for c in text):
        return None
    return text.casefold()
