"""Bootstrap and permutation replicates of per-group metrics, in memory that does not grow with groups x replicates.

Clips of one speaker are not independent (same voice, same microphone), so when speakers are known the
unit of resampling is the speaker: a replicate draws speakers with replacement and keeps all their clips.
When every speaker belongs to exactly one group of the attribute, the draw is stratified by group, so each
replicate has the same number of speakers per group as the data (the design is held fixed, as in a
stratified sample). Without speakers, clips are the unit; resampling clips i.i.d. is then exactly a
multinomial draw over the (group, true, predicted) cells, which is what we sample.

Memory. A replicate's confusion matrices are ``groups x classes x classes`` numbers; a thousand replicates of
500 groups and 35 classes would be 4.9 GB, and the per-speaker counts they are made from ``speakers x groups x
classes x classes`` more. So per-speaker counts are sparse, replicates are drawn ``DRAW_BLOCK`` at a time (a fixed
number, so the numbers never depend on memory), and their confusion matrices are built a few rows at a time
(``MEMORY_BYTES`` at most) and reduced to the metric at once: what is kept is ``replicates x groups`` metric
values. Every function takes a ``numpy.random.Generator``; callers derive one per purpose from the user's seed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
from scipy import sparse

__all__ = [
    "DRAW_BLOCK",
    "MEMORY_BYTES",
    "Metric",
    "bootstrap_by_cell",
    "bootstrap_by_speaker",
    "permute_by_clip",
    "permute_by_speaker",
    "permute_totals",
    "speaker_weights",
]

DRAW_BLOCK = 100
"""Replicates drawn at a time."""
MEMORY_BYTES = 64 * 2**20
"""Confusion matrices held at once, in bytes."""
Metric = Callable[[np.ndarray], np.ndarray]
"""Confusion matrices ``[..., K, K]`` to metric values ``[...]``."""


def _blocks(n: int, size: int) -> Iterator[slice]:
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


def _rows_at_once(row_values: int) -> int:
    """How many replicates of ``row_values`` float64 counts fit in ``MEMORY_BYTES``."""
    return max(1, MEMORY_BYTES // (8 * max(row_values, 1)))


def speaker_weights(n_speakers: int, strata: np.ndarray | None, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """``[n_boot, speakers]`` draw counts: speakers with replacement, within their stratum (group) if given.

    ``strata[S]`` gives each speaker's stratum (its only group), or None to resample all speakers at once. For
    statistics that are not confusion matrices (a detector's counts at a threshold re-chosen per replicate).
    """
    weights = np.zeros((n_boot, n_speakers), dtype=np.float64)
    groups = [np.arange(n_speakers)] if strata is None else [np.flatnonzero(strata == h) for h in np.unique(strata)]
    for members in groups:
        weights[:, members] = rng.multinomial(len(members), np.full(len(members), 1 / len(members)), size=n_boot)
    return weights


def permute_totals(
    unit_totals: np.ndarray, unit_group: np.ndarray, n_groups: int, n_perm: int, rng: np.random.Generator
) -> np.ndarray:
    """Shuffle group labels across units: ``unit_totals[U, D]`` (any statistic that adds up) -> ``[n_perm, G, D]``."""
    n_units = len(unit_group)
    shuffled = rng.permuted(np.broadcast_to(unit_group, (n_perm, n_units)), axis=1)
    flat = unit_totals.reshape(n_units, -1).astype(np.float64)
    out = np.empty((n_perm, n_groups, flat.shape[1]))
    for g in range(n_groups):
        out[:, g] = (shuffled == g).astype(np.float64) @ flat
    return out.reshape(n_perm, n_groups, *unit_totals.shape[1:])


def bootstrap_by_speaker(
    per_speaker: sparse.csr_matrix,
    shape: tuple[int, int],
    strata: np.ndarray | None,
    n_boot: int,
    rng: np.random.Generator,
    metric: Metric,
) -> tuple[np.ndarray, np.ndarray]:
    """``per_speaker[S, G*K*K]`` clip counts -> the metric of resampled speakers: ``[n_boot, G]`` per group and
    ``[n_boot]`` over everyone. ``shape`` is ``(G, K)``; ``strata[S]`` gives each speaker's stratum (its only
    group), or None to resample all speakers at once."""
    n_groups, k = shape
    n_speakers = per_speaker.shape[0]
    members = [np.arange(n_speakers)] if strata is None else [np.flatnonzero(strata == h) for h in np.unique(strata)]
    transposed = sparse.csr_matrix(per_speaker.T, dtype=np.float64)
    values, overall = np.empty((n_boot, n_groups)), np.empty(n_boot)
    for block in _blocks(n_boot, DRAW_BLOCK):
        weights = np.zeros((block.stop - block.start, n_speakers))
        for chosen in members:
            weights[:, chosen] = rng.multinomial(len(chosen), np.full(len(chosen), 1 / len(chosen)), size=len(weights))
        for rows in _blocks(len(weights), _rows_at_once(n_groups * k * k)):
            cms = np.asarray(transposed @ weights[rows].T).T.reshape(-1, n_groups, k, k)
            at = slice(block.start + rows.start, block.start + rows.stop)
            values[at], overall[at] = metric(cms), metric(cms.sum(axis=1))
    return values, overall


def bootstrap_by_cell(
    per_group: np.ndarray, n_boot: int, rng: np.random.Generator, metric: Metric
) -> tuple[np.ndarray, np.ndarray]:
    """``per_group[G, K, K]`` clip counts -> the metric with clips resampled within each group: ``[n_boot, G]``
    and ``[n_boot]`` over everyone."""
    n_groups, k = per_group.shape[0], per_group.shape[1]
    values, overall = np.empty((n_boot, n_groups)), np.empty(n_boot)
    for block in _blocks(n_boot, DRAW_BLOCK):
        size = block.stop - block.start
        total = np.zeros((size, k * k))
        for g, cm in enumerate(per_group):
            n = int(cm.sum())
            draws = rng.multinomial(n, cm.ravel() / n, size=size) if n else np.zeros((size, k * k))
            total += draws
            values[block, g] = metric(draws.reshape(size, k, k))
        overall[block] = metric(total.reshape(size, k, k))
    return values, overall


def permute_by_speaker(
    speaker_totals: sparse.csr_matrix,
    speaker_group: np.ndarray,
    shape: tuple[int, int],
    n_perm: int,
    rng: np.random.Generator,
    metric: Metric,
) -> np.ndarray:
    """Shuffle group labels across speakers: ``speaker_totals[S, K*K]`` -> the metric per group ``[n_perm, G]``
    (the overall metric does not change under a permutation)."""
    n_groups, k = shape
    n_speakers = len(speaker_group)
    totals = sparse.csr_matrix(speaker_totals, dtype=np.float64)
    values = np.empty((n_perm, n_groups))
    for block in _blocks(n_perm, DRAW_BLOCK):
        shuffled = rng.permuted(np.broadcast_to(speaker_group, (block.stop - block.start, n_speakers)), axis=1)
        for rows in _blocks(len(shuffled), _rows_at_once(n_groups * k * k)):
            part = shuffled[rows]
            assign = sparse.csr_matrix(
                (np.ones(part.size), ((np.arange(len(part))[:, None] * n_groups + part).ravel(),
                                      np.tile(np.arange(n_speakers), len(part)))),
                shape=(len(part) * n_groups, n_speakers),
            )  # fmt: skip
            cms = (assign @ totals).toarray().reshape(len(part), n_groups, k, k)
            values[block.start + rows.start : block.start + rows.stop] = metric(cms)
    return values


def permute_by_clip(
    group: np.ndarray, cell: np.ndarray, shape: tuple[int, int], n_perm: int, rng: np.random.Generator, metric: Metric
) -> np.ndarray:
    """Shuffle group labels across clips -> the metric per group ``[n_perm, G]``; ``cell`` is each clip's
    true*K+predicted."""
    n_groups, k = shape
    n_cells = k * k
    values = np.empty((n_perm, n_groups))
    for rows in _blocks(n_perm, _rows_at_once(n_groups * n_cells)):
        counts = np.stack(
            [
                np.bincount(rng.permutation(group) * n_cells + cell, minlength=n_groups * n_cells)
                for _ in range(rows.stop - rows.start)
            ]
        )
        values[rows] = metric(counts.reshape(-1, n_groups, k, k))
    return values
