"""Speaker-disjoint splits: bias measured on speakers the model was trained on is memorisation, not reliability."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ondevice_audit.errors import UsageError

__all__ = ["check_fractions", "split_by_speaker"]


def check_fractions(fractions: tuple[float, ...]) -> None:
    """Three shares (train, validation, test) a split can be made of: checked before any work is done."""
    if len(fractions) != 3 or not all(math.isfinite(f) and f >= 0 for f in fractions) or not math.isclose(
        sum(fractions), 1.0, abs_tol=1e-6
    ):
        raise UsageError(f"split fractions {fractions} must be three non-negative numbers summing to 1")
    if fractions[0] == 0:
        raise UsageError("the training split cannot be empty (first fraction is 0)")


def split_by_speaker(
    manifest: pd.DataFrame,
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    *,
    group: str | None = None,
    speaker_column: str = "speaker",
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Train/validation/test rows with every speaker in exactly one split.

    Speakers are shuffled with ``seed`` and dealt, largest-deficit first, so each split gets about its
    fraction of the *files*; with ``group`` this is done per group value (a speaker counts under the value
    most of their files carry), so every group is represented in every split. Without a speaker column
    each file is its own speaker.
    """
    check_fractions(fractions)
    if group is not None and group not in manifest.columns:
        raise UsageError(f"unknown group column {group!r}; columns: {', '.join(map(str, manifest.columns))}")
    rows = pd.Series([f"#row{i}" for i in range(len(manifest))], index=manifest.index)
    speakers = rows
    if speaker_column in manifest.columns:
        named = manifest[speaker_column].astype(str).str.strip()
        speakers = named.where(named != "", rows)  # a blank speaker is nobody else's: the file stands alone
    files_per_speaker = speakers.value_counts()
    strata: dict[str, list[str]] = {"": sorted(files_per_speaker.index)}
    if group is not None:
        speaker_group = (
            pd.DataFrame({"speaker": speakers, "group": manifest[group].astype(str)})
            .groupby("speaker")["group"]
            .agg(_most_common)
        )
        strata = {value: sorted(speaker_group.index[speaker_group == value]) for value in sorted(set(speaker_group))}
    rng = np.random.default_rng(seed)
    assignment: dict[str, int] = {}
    open_splits = [i for i, f in enumerate(fractions) if f > 0]
    for members in strata.values():
        total = sum(int(files_per_speaker[s]) for s in members)
        filled = [0.0, 0.0, 0.0]
        for position in rng.permutation(len(members)):
            speaker = members[position]
            target = max(open_splits, key=lambda i: fractions[i] * total - filled[i])
            assignment[speaker] = target
            filled[target] += int(files_per_speaker[speaker])
    split = speakers.map(assignment)
    train, val, test = (manifest[split == i] for i in range(3))
    return train, val, test


def _most_common(values: pd.Series) -> str:
    """The value most rows have; of several equally common, the first in sorted order."""
    return str(values.value_counts().sort_index().idxmax())
