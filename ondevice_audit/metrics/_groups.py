"""Attributes and their groups, formed the same way by every frame that disaggregates by group."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["INTERSECTION", "MISSING_GROUP", "GroupedAttribute", "group_attributes"]

MISSING_GROUP = "(missing)"
INTERSECTION = " × "


@dataclass
class GroupedAttribute:
    name: str
    """A column, or the columns joined by `` × `` for their intersection."""
    columns: list[str]
    codes: np.ndarray
    """Each row's group index into ``names``."""
    names: list[str]
    """Group names, sorted."""


def group_attributes(sensitive_features: pd.DataFrame, intersections: bool) -> list[GroupedAttribute]:
    """One attribute per column (and their intersection with two or more); empty values form ``(missing)``."""
    frame = sensitive_features.astype("string").fillna(MISSING_GROUP).astype(str).replace("", MISSING_GROUP)
    columns = [[c] for c in frame.columns]
    if intersections and len(frame.columns) >= 2:
        columns.append(list(frame.columns))
    attributes = []
    for cols in columns:
        # vectorised: a row-wise ``agg`` took 33 s and ~400 MB for 100 000 rows
        values = (
            frame[cols[0]] if len(cols) == 1 else frame[cols[0]].str.cat([frame[c] for c in cols[1:]], sep=INTERSECTION)
        )
        codes, names = pd.factorize(values, sort=True)
        attributes.append(GroupedAttribute(INTERSECTION.join(cols), cols, codes, [str(n) for n in names]))
    return attributes
