"""A sweep's analysis in plain words: which design choices moved reliability bias beyond seed-to-seed noise.

A factor *moved* RB when both hold:

- its levels' mean RB differ more than chance would make them (one-way ANOVA over the cells, ``p < alpha``), and
- the spread of those means (largest minus smallest) exceeds the noise floor: the pooled standard deviation of
  RB across seeds of otherwise-identical cells. Without two or more seeds the floor is unknown and nothing is
  said to have moved: retraining alone moves RB, so a factor's effect cannot be told from it.

The two tests guard against different mistakes: many cells can make a tiny, useless difference significant,
and a few noisy cells can make a large spread that is chance. Both numbers are in every sentence, so a reader
can weigh them; the wording says no more than they do (RB "moved", not "caused" or "is biased").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from ondevice_audit.sweep.analysis import Analysis, FactorEffect

__all__ = ["FACTOR_NAMES", "FactorFinding", "Finding", "LevelMean", "find"]

ALPHA = 0.05
_NOISE_FACTOR = "seed"
_BASELINE_CELL = "baseline"  # a user model as given: not a level the matrix chose (as in the analysis)
FACTOR_NAMES = {
    "sample_rate": "sample rate",
    "features": "feature type",
    "n_mels": "the number of mel bins",
    "n_mfcc": "the number of MFCCs",
    "frame_length_ms": "frame length",
    "frame_step": "frame step",
    "window": "the window",
    "architecture": "architecture",
    "pruning.final_sparsity": "pruning sparsity",
    "pruning.learning_rate": "the pruning learning rate",
    "pruning.schedule": "the pruning schedule",
    "quantization": "quantization",
    "mitigation": "mitigation",
    "export": "export format",
    "runtime": "runtime",
    "target": "target",
    "image_size": "image size",
    "color": "colour",
}
"""Factors as a sentence names them; others by their matrix name."""


@dataclass(frozen=True)
class LevelMean:
    level: Any
    rb: float
    """Mean RB of the level's cells."""
    metric: float
    """Mean metric of the same cells: a level can be less biased only because it is worse for everyone."""

    def describe(self, metric: str) -> str:
        return f"{self.rb:.3f} ({_level(self.level)}; mean {metric} {self.metric:.3f})"


@dataclass(frozen=True)
class FactorFinding:
    factor: str
    lowest: LevelMean
    """The level with the smallest mean RB."""
    highest: LevelMean
    spread: float
    """``highest.rb - lowest.rb``."""
    p_value: float | None
    moved: bool

    @property
    def name(self) -> str:
        return FACTOR_NAMES.get(self.factor, self.factor)


@dataclass(frozen=True)
class Finding:
    attribute: str
    metric: str
    noise_floor: float | None
    factors: tuple[FactorFinding, ...]
    """Every varied factor but the seed, those that moved RB first (largest spread first), then the others."""
    alpha: float = ALPHA

    @property
    def moved(self) -> tuple[FactorFinding, ...]:
        return tuple(f for f in self.factors if f.moved)

    def sentences(self) -> list[str]:
        """The finding in plain words: what moved RB beyond the noise floor, and what did not."""
        rb = f"RB({self.attribute})"
        if not self.factors:
            return [f"No design choice was varied, so nothing can be said about what moves {rb}."]
        if self.noise_floor is None:
            return [
                f"The seed-to-seed noise of {rb} is unknown (one seed per setting), so no design choice can be told "
                "apart from retraining with another seed."
            ]
        noise = f"seed-to-seed noise (SD {self.noise_floor:.3f})"
        lines = [
            f"On held-out speakers, {f.name} moved {rb} from {f.lowest.describe(self.metric)} to "
            f"{f.highest.describe(self.metric)} (p = {_p(f.p_value)}), more than {noise}."
            for f in self.moved
        ]
        still = [f for f in self.factors if not f.moved]
        if still:
            parts = ", ".join(f"{f.name} (spread {f.spread:.3f}, p = {_p(f.p_value)})" for f in still)
            opening = (
                f"Not shown to move it (p ≥ {self.alpha:g} or a spread within the noise)"
                if lines
                else f"No design choice moved {rb} beyond {noise}"
            )
            lines.append(f"{opening}: {parts}.")
        return lines


def find(analysis: Analysis, attribute: str, alpha: float = ALPHA, noise_floor: float | None = None) -> Finding:
    """The finding of ``analysis`` (whose RB is over ``attribute``, the sweep's bias attribute).

    ``noise_floor``: one measured over more cells than this analysis holds (several sweeps around one base
    configuration, say); by default the analysis's own.
    """
    floor = analysis.noise_floor if noise_floor is None else noise_floor
    ranked = analysis.ranked
    cells = ranked[(ranked["cell"] != _BASELINE_CELL) & ranked["rb"].notna()]  # the cells the effects are over
    judged = [
        _judge(effect, cells.groupby(effect.factor)[analysis.metric].mean(), floor, alpha)
        for effect in analysis.effects
        if effect.factor != _NOISE_FACTOR
    ]
    judged.sort(key=lambda f: (not f.moved, -f.spread, f.factor))
    return Finding(attribute=attribute, metric=analysis.metric, noise_floor=floor, factors=tuple(judged), alpha=alpha)


def _judge(effect: FactorEffect, metric: pd.Series, floor: float | None, alpha: float) -> FactorFinding:
    low = min(effect.levels, key=lambda level: level.mean_rb)
    high = max(effect.levels, key=lambda level: level.mean_rb)
    significant = effect.p_value is not None and effect.p_value < alpha
    moved = floor is not None and significant and effect.spread > floor
    return FactorFinding(
        factor=effect.factor,
        lowest=LevelMean(low.level, low.mean_rb, float(metric[low.level])),
        highest=LevelMean(high.level, high.mean_rb, float(metric[high.level])),
        spread=effect.spread,
        p_value=effect.p_value,
        moved=moved,
    )


def _level(level: Any) -> str:
    return str(level.item() if hasattr(level, "item") else level)


def _p(p_value: float | None) -> str:
    if p_value is None:
        return "n/a"
    return f"{p_value:.1e}" if p_value < 0.001 else f"{p_value:.3f}"
