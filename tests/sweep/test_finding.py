"""The plain-words finding of a sweep, checked against means, a pooled SD and an F-test computed here."""

from __future__ import annotations

import itertools
import math
import statistics

import pandas as pd
import pytest
from scipy.stats import f_oneway

from ondevice_audit.sweep.analysis import analyse
from ondevice_audit.sweep.finding import find

FACTORS = ["features", "quantization", "seed"]
# RB per (features, quantization, seed): log-mel cells are far more biased; int8 barely differs from f32.
RB = {
    ("mfcc", "f32", 0): 0.02, ("mfcc", "f32", 1): 0.04,
    ("mfcc", "int8", 0): 0.03, ("mfcc", "int8", 1): 0.05,
    ("logmel", "f32", 0): 0.20, ("logmel", "f32", 1): 0.16,
    ("logmel", "int8", 0): 0.19, ("logmel", "int8", 1): 0.17,
}  # fmt: skip


def _results(rb: dict[tuple[str, str, int], float]) -> pd.DataFrame:
    rows = [
        {"cell": f"c{i}", "status": "ok", "features": f, "quantization": q, "seed": s, "rb": value,
         "accuracy": 0.9 if f == "mfcc" else 0.6 + 0.01 * (s - 0.5),
         "rb_ci_low": value / 2, "rb_ci_high": value * 2, "size_bytes": 1000, "latency_ms": 1.0}
        for i, ((f, q, s), value) in enumerate(rb.items())
    ]  # fmt: skip
    return pd.DataFrame(rows)


def test_feature_type_moves_rb_beyond_the_noise_floor_and_quantization_does_not() -> None:
    finding = find(analyse(_results(RB), FACTORS, "accuracy"), "gender")

    twins = [[RB[(f, q, s)] for s in (0, 1)] for f, q in itertools.product(("mfcc", "logmel"), ("f32", "int8"))]
    floor = math.sqrt(statistics.mean(statistics.variance(pair) for pair in twins))
    mfcc = [v for k, v in RB.items() if k[0] == "mfcc"]
    logmel = [v for k, v in RB.items() if k[0] == "logmel"]
    f32 = [v for k, v in RB.items() if k[1] == "f32"]
    int8 = [v for k, v in RB.items() if k[1] == "int8"]
    p_features, p_quantization = f_oneway(logmel, mfcc).pvalue, f_oneway(f32, int8).pvalue

    assert finding.noise_floor == pytest.approx(floor)
    features, quantization = finding.factors
    assert features.factor == "features" and features.moved
    assert features.lowest.level == "mfcc" and features.lowest.rb == pytest.approx(statistics.mean(mfcc))
    assert features.highest.level == "logmel" and features.highest.rb == pytest.approx(statistics.mean(logmel))
    assert (features.lowest.metric, features.highest.metric) == (pytest.approx(0.9), pytest.approx(0.6))
    assert features.p_value == pytest.approx(p_features)
    assert quantization.factor == "quantization" and not quantization.moved
    assert quantization.spread == pytest.approx(abs(statistics.mean(int8) - statistics.mean(f32)))
    assert quantization.p_value == pytest.approx(p_quantization)
    assert finding.sentences() == [
        f"On held-out speakers, feature type moved RB(gender) from {statistics.mean(mfcc):.3f} (mfcc; mean "
        f"accuracy 0.900) to {statistics.mean(logmel):.3f} (logmel; mean accuracy 0.600) (p = {p_features:.1e}), "
        f"more than seed-to-seed noise (SD {floor:.3f}).",
        f"Not shown to move it (p ≥ 0.05 or a spread within the noise): quantization (spread "
        f"{quantization.spread:.3f}, p = {p_quantization:.3f}).",
    ]


def test_a_significant_difference_smaller_than_the_noise_floor_does_not_count() -> None:
    """int8 is consistently a little more biased (p < 0.05 over 16 seeds) but by less than retraining moves RB."""
    noise = [-0.03, -0.02, -0.01, 0.0, 0.01, 0.02, 0.03, 0.0] * 2
    f32 = [0.1 + e for e in noise]
    int8 = [0.1 + 0.016 + e for e in noise]
    rows = {("mfcc", q, seed): values[seed] for q, values in (("f32", f32), ("int8", int8)) for seed in range(16)}
    finding = find(analyse(_results(rows), FACTORS, "accuracy"), "gender")

    floor = math.sqrt(statistics.mean([statistics.variance(f32), statistics.variance(int8)]))
    assert f_oneway(f32, int8).pvalue < 0.05 and 0.016 < floor  # the case this test is about
    (quantization,) = finding.factors
    assert quantization.p_value == pytest.approx(f_oneway(f32, int8).pvalue)
    assert finding.noise_floor == pytest.approx(floor) and not quantization.moved
    assert finding.sentences()[0].startswith("No design choice moved RB(gender) beyond seed-to-seed noise")


def test_without_a_second_seed_nothing_is_said_to_move() -> None:
    one_seed = {key: value for key, value in RB.items() if key[2] == 0}
    finding = find(analyse(_results(one_seed), FACTORS, "accuracy"), "gender")
    assert finding.noise_floor is None and finding.moved == ()
    assert finding.sentences() == [
        "The seed-to-seed noise of RB(gender) is unknown (one seed per setting), so no design choice can be told "
        "apart from retraining with another seed."
    ]
