"""Which layer hurts the worse-off group more than the others, and whether that is more than speaker noise.

Per layer and group, from per-speaker sums (``LayerSums`` for quantization, the same shape for pruning):

- ``rmse_per_scale``: the RMS error of the layer's output over the group's clips, in quantization steps of the
  layer's output (about 0.29 is pure rounding; TF Lite's debugger documentation reads it this way);
- ``snr_db``: the float output's power over the error's, in dB, on the group's own clips.

A layer *hurts* a group by how much of the group's own signal its error is, so layers are compared by the
noise-to-signal ratio in dB (``-snr_db``): the ``gap`` is the worse-off group's minus that of every other group
in RB pooled. A group whose activations are small next to the layer's range (or whose features pass through
coarsely quantized weights) loses more of its signal than one whose activations fill the range, even where
the RMS error in quantization steps is the same; the SNR sees that, the RMS error alone does not.

The gap's interval comes from the speaker bootstrap used everywhere else (speakers drawn with replacement
within their group): a layer whose interval reaches 0 is *noise* and is not ranked. When no layer is beyond the
noise, there is no ranking to report, and the report says so.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ondevice_audit.metrics._resampling import bootstrap_by_speaker

__all__ = ["LIMIT_DB", "GroupError", "LayerEffect", "UnitTable", "rank_layers"]

_PURPOSE = 5
"""Random stream id, distinct from the streams the metric frames draw from the same seed."""
LIMIT_DB = 150.0
"""The SNR of an output reproduced exactly (float32 resolves about 140 dB): finite, so that a layer exact for one
group and not for another still has a gap to rank by."""


@dataclass(frozen=True)
class GroupError:
    group: str
    clips: int
    rmse_per_scale: float | None
    """RMS error in steps of the layer's output scale (None where the layer has no scale, as for pruning)."""
    snr_db: float | None
    """10 log10(float power / squared error), within ±``LIMIT_DB`` (``LIMIT_DB``: exact); None where both are 0."""


@dataclass(frozen=True)
class LayerEffect:
    index: int
    """Position of the layer in the model (the order of its ops)."""
    groups: list[GroupError]
    gap_db: float | None
    """Noise-to-signal of the worse-off group minus the other groups' (dB): how much more the layer hurts it."""
    ci: tuple[float, float] | None
    beyond_noise: bool
    """The gap's interval lies above 0."""
    rank: int | None = None
    """1 for the layer that hurts the worse-off group most, among the layers beyond the noise."""


@dataclass(frozen=True)
class UnitTable:
    """Per-unit sums of one explanation, with each unit's group: what ``rank_layers`` reads."""

    squared_error: np.ndarray
    """``[units, layers]``."""
    power: np.ndarray
    """``[units, layers]``."""
    clips: np.ndarray
    """``[units]``."""
    group: np.ndarray
    """``[units]``: each unit's group code (a speaker in two groups is two units)."""
    group_names: Sequence[str]
    scales: Sequence[float | None]
    """Per layer: its output's quantization step, or None."""


def _noise_db(squared: np.ndarray, power: np.ndarray) -> np.ndarray:
    """10 log10(error / signal), held within ``±LIMIT_DB`` (an exact output is -LIMIT_DB, an error on a silent
    output +LIMIT_DB); NaN where both are 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        decibels = 10 * np.log10(squared / power)
    return np.where(
        (squared == 0) & (power == 0), np.nan, np.clip(np.nan_to_num(decibels, nan=0.0), -LIMIT_DB, LIMIT_DB)
    )


def _gap(sums: np.ndarray, worse: int, others: np.ndarray) -> np.ndarray:
    """``sums[..., G, 2, L]`` (squared error, power per group) -> the worse group's noise-to-signal minus the
    pooled others', ``[..., L]``."""
    pooled = sums[..., others, :, :].sum(axis=-3)
    return _noise_db(sums[..., worse, 0, :], sums[..., worse, 1, :]) - _noise_db(pooled[..., 0, :], pooled[..., 1, :])


def rank_layers(
    table: UnitTable, worse: int, included: np.ndarray, n_boot: int, seed: int, confidence: float
) -> list[LayerEffect]:
    """Every layer's per-group error and its gap between group ``worse`` and the other ``included`` groups, with
    a stratified speaker-bootstrap interval; the layers beyond the noise ranked by gap."""
    n_groups = len(table.group_names)
    n_units, n_layers = table.squared_error.shape
    per_unit = np.zeros((n_units, n_groups, 2, n_layers))
    per_unit[np.arange(n_units), table.group, 0] = table.squared_error
    per_unit[np.arange(n_units), table.group, 1] = table.power
    sums = per_unit.sum(axis=0)
    clips = np.bincount(table.group, weights=table.clips, minlength=n_groups)
    others = np.flatnonzero(included & (np.arange(n_groups) != worse))
    gap = _gap(sums, worse, others)
    rng = np.random.default_rng([seed, zlib.crc32(b"explain"), _PURPOSE])
    replicates = _gap(bootstrap_by_speaker(per_unit, table.group, n_boot, rng), worse, others)
    alpha = 1 - confidence
    effects = []
    for layer in range(n_layers):
        defined = replicates[:, layer][np.isfinite(replicates[:, layer])]
        ci = None
        if np.isfinite(gap[layer]) and len(defined) >= 0.9 * n_boot:
            low, high = np.quantile(defined, [alpha / 2, 1 - alpha / 2])
            ci = (float(low), float(high))
        groups = [_group_error(table, sums, clips, g, layer) for g in range(n_groups)]
        value = float(gap[layer]) if np.isfinite(gap[layer]) else None
        effects.append(LayerEffect(layer, groups, value, ci, ci is not None and ci[0] > 0))
    ranked = sorted((e for e in effects if e.beyond_noise), key=lambda e: -(e.gap_db or 0.0))
    order = {effect.index: position for position, effect in enumerate(ranked, start=1)}
    return [LayerEffect(e.index, e.groups, e.gap_db, e.ci, e.beyond_noise, order.get(e.index)) for e in effects]


def _group_error(table: UnitTable, sums: np.ndarray, clips: np.ndarray, group: int, layer: int) -> GroupError:
    n = int(clips[group])
    squared, power = sums[group, 0, layer], sums[group, 1, layer]
    scale = table.scales[layer]
    rmse = float(np.sqrt(squared / n)) if n else None
    snr = -_noise_db(np.array(squared), np.array(power))
    return GroupError(
        group=table.group_names[group],
        clips=n,
        rmse_per_scale=None if rmse is None or not scale else rmse / scale,
        snr_db=float(snr) if np.isfinite(snr) else None,
    )
