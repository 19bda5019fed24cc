"""Attributes and their groups, formed the same way by every frame that disaggregates by group."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ondevice_audit.errors import UsageError
from ondevice_audit.metrics import defaults
from ondevice_audit.metrics.definitions import METRICS

__all__ = [
    "CLI_GROUP_LIMIT",
    "INTERSECTION",
    "MIN_SPEAKERS",
    "MISSING_GROUP",
    "GroupLimit",
    "GroupedAttribute",
    "group_attributes",
    "left_out",
    "speaker_codes",
]

MISSING_GROUP = "(missing)"
INTERSECTION = " × "
MIN_SPEAKERS = 2
"""A group of fewer speakers is left out of RB: resampling one speaker's clips gives a zero-width interval."""


@dataclass
class GroupedAttribute:
    name: str
    """A column, or the columns joined by `` × `` for their intersection."""
    columns: list[str]
    codes: np.ndarray
    """Each row's group index into ``names``."""
    names: list[str]
    """Group names, sorted."""


@dataclass(frozen=True)
class GroupLimit:
    """The most groups an attribute may have (more is almost always an id column given as a group, and would
    take hours and gigabytes), and how the user who meant it raises the limit: the refusal names the setting
    they can change (``--max-groups`` on the command line, ``data.max_groups`` in a sweep's matrix)."""

    most: int = defaults.MAX_GROUPS
    setting: str = "--max-groups"
    """The limit's name, as the user writes it."""
    groups_from: str = "-g"
    """Where the user named the group columns."""
    raise_to: str = "pass --max-groups {n}"
    """How to raise the limit to ``n`` groups."""

    def check(self, attribute: str, n: int) -> None:
        if n > self.most:
            raise UsageError(
                f"{attribute} has {n} groups, more than {self.setting} {self.most}: the usual cause is a speaker or "
                f"id column given as a group ({self.groups_from}); {self.raise_to.format(n=n)} if you mean it"
            )


CLI_GROUP_LIMIT = GroupLimit()


def group_attributes(
    sensitive_features: pd.DataFrame, intersections: bool, limit: GroupLimit | None = None
) -> list[GroupedAttribute]:
    """One attribute per column (and their intersection with two or more); empty values form ``(missing)``.
    With ``limit``, an attribute with more groups is refused as soon as it is formed, before any work on it."""
    frame = sensitive_features.astype("string").fillna(MISSING_GROUP).astype(str).replace("", MISSING_GROUP)
    columns = [[c] for c in frame.columns]
    if intersections and len(frame.columns) >= 2:
        columns.append(list(frame.columns))
    attributes = []
    for cols in columns:
        # vectorised: a row-wise ``agg`` took 33 s and ~400 MB for 100 000 rows
        values = (
            frame[cols[0]] if len(cols) == 1 else frame[cols[0]].str.cat(frame[cols[1:]], sep=INTERSECTION)
        )
        codes, names = pd.factorize(values, sort=True)
        if limit is not None:
            limit.check(INTERSECTION.join(cols), len(names))
        attributes.append(GroupedAttribute(INTERSECTION.join(cols), cols, codes, [str(n) for n in names]))
    return attributes


def speaker_codes(speakers: Sequence[object] | np.ndarray) -> np.ndarray:
    """Each clip's speaker as an integer code; ids are compared as text (``7`` and ``"7"`` are one speaker)."""
    codes, _ = pd.factorize(pd.Series(speakers, dtype=str))  # type: ignore[arg-type]  # pandas-stubs: dtype=str takes any list
    return codes


def left_out(
    per_group: np.ndarray,
    speakers_per_group: np.ndarray | None,
    metric: str,
    negatives: np.ndarray,
    min_group_size: int,
    support: tuple[Callable[[np.ndarray], np.ndarray], str] | None = None,
) -> list[str | None]:
    """Why each group (``per_group[G, K, K]`` clip counts) is left out of RB, or None for the groups in it.

    ``min_group_size`` applies to the clips the metric rests on (FRR: keyword clips; FAR: negative clips), not
    to all clips of the group; and with a speaker column a group needs ``MIN_SPEAKERS`` speakers. ``support``
    (counts of confusion matrices, and their name) replaces ``METRICS[metric]``'s: a detector's decisions.
    """
    if support is None:
        definition = METRICS[metric]
        support = (lambda cm: definition.support(cm, negatives), definition.support_name)
    count, support_name = support
    reasons: list[str | None] = []
    for g, used in enumerate(count(per_group.astype(np.float64))):
        if used < min_group_size:
            what = "clips" if support_name == "clips" else f"{support_name}, what {metric} uses"
            reasons.append(f"{int(used)} {what}: fewer than {min_group_size}")
        elif speakers_per_group is not None and speakers_per_group[g] < MIN_SPEAKERS:
            reasons.append(f"{int(speakers_per_group[g])} speaker: its interval would resample one voice")
        else:
            reasons.append(None)
    return reasons
