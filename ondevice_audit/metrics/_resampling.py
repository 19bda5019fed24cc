"""Bootstrap and permutation replicates of per-group confusion matrices.

Clips of one speaker are not independent (same voice, same microphone), so when speakers are known the
unit of resampling is the speaker: a replicate draws speakers with replacement and keeps all their clips.
When every speaker belongs to exactly one group of the attribute, the draw is stratified by group, so each
replicate has the same number of speakers per group as the data (the design is held fixed, as in a
stratified sample). Without speakers, clips are the unit; resampling clips i.i.d. is then exactly a
multinomial draw over the (group, true, predicted) cells, which is what we sample.

Every function takes a ``numpy.random.Generator``; callers derive one per purpose from the user's seed.
"""

from __future__ import annotations

import numpy as np

__all__ = ["bootstrap_by_cell", "bootstrap_by_speaker", "permute_by_clip", "permute_by_speaker", "speaker_weights"]


def speaker_weights(n_speakers: int, strata: np.ndarray | None, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """``[n_boot, speakers]`` draw counts: speakers with replacement, within their stratum (group) if given.

    ``strata[S]`` gives each speaker's stratum (its only group), or None to resample all speakers at once.
    """
    weights = np.zeros((n_boot, n_speakers), dtype=np.float64)
    groups = [np.arange(n_speakers)] if strata is None else [np.flatnonzero(strata == h) for h in np.unique(strata)]
    for members in groups:
        weights[:, members] = rng.multinomial(len(members), np.full(len(members), 1 / len(members)), size=n_boot)
    return weights


def bootstrap_by_speaker(
    per_speaker: np.ndarray, strata: np.ndarray | None, n_boot: int, rng: np.random.Generator
) -> np.ndarray:
    """``per_speaker[S, G, K, K]`` -> ``[n_boot, G, K, K]`` confusion matrices of resampled speakers."""
    n_speakers = per_speaker.shape[0]
    weights = speaker_weights(n_speakers, strata, n_boot, rng)
    flat = per_speaker.reshape(n_speakers, -1).astype(np.float64)
    return (weights @ flat).reshape(n_boot, *per_speaker.shape[1:])


def bootstrap_by_cell(per_group: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """``per_group[G, K, K]`` clip counts -> ``[n_boot, G, K, K]``, clips resampled within each group."""
    replicates = np.zeros((n_boot, *per_group.shape), dtype=np.float64)
    for g, cm in enumerate(per_group):
        n = int(cm.sum())
        if n:
            replicates[:, g] = rng.multinomial(n, cm.ravel() / n, size=n_boot).reshape(n_boot, *cm.shape)
    return replicates


def permute_by_speaker(
    speaker_totals: np.ndarray, speaker_group: np.ndarray, n_groups: int, n_perm: int, rng: np.random.Generator
) -> np.ndarray:
    """Shuffle group labels across speakers: ``speaker_totals[S, K, K]`` -> ``[n_perm, G, K, K]``."""
    n_speakers = len(speaker_group)
    shuffled = rng.permuted(np.broadcast_to(speaker_group, (n_perm, n_speakers)), axis=1)
    flat = speaker_totals.reshape(n_speakers, -1).astype(np.float64)
    out = np.empty((n_perm, n_groups, flat.shape[1]))
    for g in range(n_groups):
        out[:, g] = (shuffled == g).astype(np.float64) @ flat
    return out.reshape(n_perm, n_groups, *speaker_totals.shape[1:])


def permute_by_clip(
    group: np.ndarray, cell: np.ndarray, n_groups: int, n_classes: int, n_perm: int, rng: np.random.Generator
) -> np.ndarray:
    """Shuffle group labels across clips -> ``[n_perm, G, K, K]``; ``cell`` is each clip's true*K+predicted."""
    n_cells = n_classes * n_classes
    out = np.empty((n_perm, n_groups * n_cells))
    for i in range(n_perm):
        out[i] = np.bincount(rng.permutation(group) * n_cells + cell, minlength=n_groups * n_cells)
    return out.reshape(n_perm, n_groups, n_classes, n_classes)
