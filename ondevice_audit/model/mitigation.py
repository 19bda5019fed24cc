r"""Training-time mitigations for reliability bias, as design choices the sweep can compare.

- ``none``: plain training.
- ``balanced``: every training batch draws the same number of clips from each group of the chosen
  attribute (with replacement inside a group when it is small), as the bias study trained its models.
- ``reweight``: each clip's loss is weighted by the inverse of its group's frequency, normalised so the
  mean weight over the training set is 1 (so the learning rate means the same as without weights):
  :math:`w_i = \frac{N}{G \, n_{g(i)}}`.
- ``reweight-heldout``: group weights start at 1 and, after every epoch, move towards the groups the model
  fails more *on the held-out validation split*:
  :math:`w_g \leftarrow w_g \exp(\eta (L_g - \bar L))`, normalised to a sample mean of 1, where
  :math:`L_g` is group g's mean validation loss. This is the exponentiated-gradient step of group DRO
  applied to held-out losses. FORML (Yan et al. 2022) instead learns a weight per *training example*
  by a meta-gradient through one optimiser step on a validation fairness objective; ours keeps one weight
  per group and a closed-form update, which is cheaper and needs no second-order gradients, but cannot
  tell hard from easy clips inside a group.

``imbalance`` makes a training split deliberately imbalanced (whole speakers removed, seeded), so users can
reproduce how imbalance and compression interact.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ondevice_audit.errors import UsageError

__all__ = [
    "MITIGATIONS",
    "HeldoutReweighting",
    "balanced_batches",
    "check_mitigation",
    "group_weights",
    "imbalance",
    "parse_imbalance",
]

MITIGATIONS = ("none", "balanced", "reweight", "reweight-heldout")


def check_mitigation(name: str) -> str:
    if name not in MITIGATIONS:
        raise UsageError(f"unknown mitigation {name!r}; choose one of {', '.join(MITIGATIONS)}")
    return name


def group_weights(groups: np.ndarray) -> np.ndarray:
    """Per-clip weights inversely proportional to group frequency, mean 1."""
    names, codes, counts = np.unique(np.asarray(groups, dtype=str), return_inverse=True, return_counts=True)
    weights = len(codes) / (len(names) * counts[codes])
    return weights.astype(np.float64)


def balanced_batches(groups: np.ndarray, batch_size: int, n_batches: int, seed: int) -> Iterator[np.ndarray]:
    """Index batches with ``batch_size // G`` clips from each of the G groups (the remainder spread in turn).

    Within a group, clips are drawn without replacement until the group is exhausted, then reshuffled, so
    every clip of a small group is seen before any is repeated.
    """
    names, codes = np.unique(np.asarray(groups, dtype=str), return_inverse=True)
    if batch_size < len(names):
        raise UsageError(f"a balanced batch needs at least one clip per group: batch size {batch_size} < {len(names)}")
    rng = np.random.default_rng(seed)
    members = [np.flatnonzero(codes == g) for g in range(len(names))]
    queues = [rng.permutation(m) for m in members]
    positions = [0] * len(names)
    for batch in range(n_batches):
        shares = [batch_size // len(names)] * len(names)
        for extra in range(batch_size % len(names)):
            shares[(batch + extra) % len(names)] += 1
        picked = []
        for g, share in enumerate(shares):
            for _ in range(share):
                if positions[g] == len(queues[g]):
                    queues[g], positions[g] = rng.permutation(members[g]), 0
                picked.append(queues[g][positions[g]])
                positions[g] += 1
        yield rng.permutation(np.array(picked))


@dataclass
class HeldoutReweighting:
    """Group weights updated between epochs from per-group validation loss (see the module docstring)."""

    train_groups: np.ndarray
    val_groups: np.ndarray
    step_size: float = 1.0

    def __post_init__(self) -> None:
        self.names = sorted(str(g) for g in set(np.asarray(self.train_groups, dtype=str)))
        missing = sorted(set(self.names) - {str(g) for g in np.asarray(self.val_groups, dtype=str)})
        if missing:
            raise UsageError(f"reweight-heldout needs every group in the validation split; missing {missing}")
        self.group_weight = {name: 1.0 for name in self.names}
        self.history: list[dict[str, dict[str, float]]] = []

    def sample_weights(self) -> np.ndarray:
        """Current per-clip weights for the training set, mean 1."""
        return np.array([self.group_weight[g] for g in np.asarray(self.train_groups, dtype=str)])

    def update(self, val_losses: np.ndarray) -> dict[str, float]:
        """One step from per-clip validation losses; returns the new group weights."""
        val_groups = np.asarray(self.val_groups, dtype=str)
        group_loss = {g: float(np.mean(val_losses[val_groups == g])) for g in self.names}
        mean_loss = float(np.mean(list(group_loss.values())))
        for g in self.names:
            self.group_weight[g] *= float(np.exp(self.step_size * (group_loss[g] - mean_loss)))
        mean_weight = float(np.mean([self.group_weight[g] for g in np.asarray(self.train_groups, dtype=str)]))
        self.group_weight = {g: w / mean_weight for g, w in self.group_weight.items()}
        self.history.append({"loss": group_loss, "weight": dict(self.group_weight)})
        return dict(self.group_weight)


def parse_imbalance(text: str) -> tuple[str, str, float]:
    """``gender=female:0.2`` -> (column, group, share)."""
    column, _, rest = text.partition("=")
    group, _, share = rest.rpartition(":")
    try:
        value = float(share)
    except ValueError:
        value = -1.0
    if not column or not group or not 0 < value < 1:
        raise UsageError(f"--train-imbalance {text!r} must look like gender=female:0.2 (a share between 0 and 1)")
    return column, group, value


def imbalance(frame: pd.DataFrame, column: str, group: str, share: float, seed: int) -> pd.DataFrame:
    """Drop whole speakers of ``group`` (seeded) until it makes up at most ``share`` of the clips."""
    if column not in frame.columns:
        raise UsageError(f"--train-imbalance names column {column!r}, which the data does not have")
    in_group = frame[column].astype(str) == group
    if not in_group.any():
        raise UsageError(f"--train-imbalance: no training clips have {column}={group}")
    speakers = frame["speaker"] if "speaker" in frame.columns else pd.Series(frame.index.astype(str), frame.index)
    others = int((~in_group).sum())
    target = share * others / (1 - share)
    order = np.random.default_rng(seed).permutation(sorted(set(speakers[in_group])))
    kept: list[object] = []
    count = 0
    sizes = speakers[in_group].value_counts()
    for speaker in order:
        if count + sizes[speaker] > target and kept:
            break
        kept.append(speaker)
        count += int(sizes[speaker])
    return frame[~in_group | speakers.isin(kept)]
