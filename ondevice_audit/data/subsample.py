"""A seeded stratified subsample of a manifest: a quick audit on a slow runtime (TFLM) that keeps every group."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ondevice_audit.errors import UsageError

__all__ = ["stratified_subsample"]


def stratified_subsample(
    frame: pd.DataFrame, group_columns: Sequence[str], max_per_group: int, seed: int = 0
) -> pd.DataFrame:
    """At most ``max_per_group`` rows of every combination of ``group_columns`` values, in the original order.

    For a quick check on a slow runtime (TFLM): every group keeps clips, small groups keep all of theirs, so
    per-group metrics stay defined where the full run has them. Rows with a missing value form their own
    stratum. The same seed picks the same rows; the index is kept so rows map back to the full frame.
    """
    if max_per_group < 1:
        raise UsageError(f"a subsample needs at least 1 clip per group, got {max_per_group}")
    missing = [c for c in group_columns if c not in frame.columns]
    if missing:
        raise UsageError(f"no column(s) {', '.join(missing)} to stratify by")
    if not group_columns:
        raise UsageError("name at least one group column to stratify by")
    rng = np.random.default_rng(seed)
    keep = []
    for rows in frame.groupby(list(group_columns), dropna=False, sort=True).indices.values():
        keep.append(rows if len(rows) <= max_per_group else rng.choice(rows, size=max_per_group, replace=False))
    chosen = np.sort(np.concatenate(keep)) if keep else np.zeros(0, dtype=int)
    return frame.iloc[chosen]
