"""Does the speaker-clustered bootstrap interval cover the true RB at roughly the nominal rate?

Simulation: a population of speakers whose accuracy varies around a group mean; each trial draws speakers
and clips, computes RB with a 90 % interval, and checks whether it covers the population RB (computed from
the expected accuracies). Trials are few (CI time), so the tolerance is wide: 90 % nominal, accept 80-98 %.
"""

import math

import numpy as np
import pandas as pd

from ondevice_audit.metrics import GroupMetricFrame


def _trial(rng, n_speakers=30, clips=15):
    rows_true, rows_pred, gender, speaker = [], [], [], []
    for s in range(2 * n_speakers):
        female = s < n_speakers
        p = np.clip((0.70 if female else 0.85) + rng.normal(0, 0.08), 0.01, 0.99)
        right = rng.random(clips) < p
        rows_true += ["a"] * clips
        rows_pred += ["a" if r else "b" for r in right]
        gender += ["f" if female else "m"] * clips
        speaker += [f"s{s}"] * clips
    frame = GroupMetricFrame(
        y_true=rows_true, y_pred=rows_pred, sensitive_features=pd.DataFrame({"gender": gender}), speakers=speaker,
        metric="accuracy", min_group_size=1, n_boot=400, n_perm=0, seed=int(rng.integers(1 << 30)), confidence=0.90,
    )  # fmt: skip
    return frame.attributes[0].rb.ci


def test_clustered_bootstrap_covers_true_rb_near_nominal_rate():
    rng = np.random.default_rng(2024)
    # population values: speaker accuracies are clipped normals; estimate their means by a large draw
    pop = np.random.default_rng(0).normal(0, 0.08, 2_000_000)
    f = np.clip(0.70 + pop, 0.01, 0.99).mean()
    m = np.clip(0.85 + pop, 0.01, 0.99).mean()
    overall = (f + m) / 2
    true_rb = abs(math.log(f / overall)) + abs(math.log(m / overall))
    trials = 150
    covered = 0
    for _ in range(trials):
        low, high = _trial(rng)
        covered += low <= true_rb <= high
    rate = covered / trials
    assert 0.80 <= rate <= 0.98, rate
