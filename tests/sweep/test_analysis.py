"""The analysis on a hand-made results table whose answers are worked out by hand below."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.feature_selection import mutual_info_regression

from ondevice_audit.sweep import analyse
from ondevice_audit.sweep.analysis import noise_floor, pareto_front

FACTORS = ["features", "quantization", "seed"]

# features moves RB by +0.4, quantization by +0.02, seed by +0.2 (the noise).
ROWS = [
    ("c0", "mfcc", "f32", 0, 0.900, 0.10),
    ("c1", "mfcc", "f32", 1, 0.910, 0.30),
    ("c2", "mfcc", "int8", 0, 0.905, 0.12),
    ("c3", "mfcc", "int8", 1, 0.945, 0.32),
    ("c4", "logmel", "f32", 0, 0.800, 0.50),
    ("c5", "logmel", "f32", 1, 0.850, 0.70),
    ("c6", "logmel", "int8", 0, 0.930, 0.52),
    ("c7", "logmel", "int8", 1, 0.950, 0.72),
]


@pytest.fixture
def results() -> pd.DataFrame:
    frame = pd.DataFrame(ROWS, columns=["cell", *FACTORS, "accuracy", "rb"]).assign(status="ok", error="")
    frame["size_bytes"] = np.where(frame["quantization"] == "f32", 400, 100)
    frame["latency_ms"] = 1.0
    frame["rb_ci_low"] = frame["rb"] - 0.05
    frame["rb_ci_high"] = frame["rb"] + 0.05
    extra = [
        # Finished, but RB undefined: ranked last, left out of the effects.
        {"cell": "c8", "features": "mfcc", "quantization": "f32", "seed": 2, "accuracy": 0.5, "status": "ok"},
        # Failed: left out of everything but the count.
        {"cell": "c9", "features": "mfcc", "quantization": "f16", "seed": 0, "status": "failed", "error": "boom"},
    ]
    return pd.concat([frame, pd.DataFrame(extra)], ignore_index=True)


def test_mean_rb_per_level_and_the_f_test(results: pd.DataFrame) -> None:
    analysis = analyse(results, FACTORS, "accuracy")
    effects = {e.factor: e for e in analysis.effects}
    assert set(effects) == set(FACTORS)
    features = effects["features"]
    assert [(lv.level, lv.cells) for lv in features.levels] == [("logmel", 4), ("mfcc", 4)]
    assert [lv.mean_rb for lv in features.levels] == pytest.approx([0.61, 0.21])
    assert features.spread == pytest.approx(0.4)
    # Between-level sum of squares 8 * 0.2^2 = 0.32 (1 df); within 2 * 0.0404 = 0.0808 (6 df).
    f_value = 0.32 / (0.0808 / 6)
    assert features.f_statistic == pytest.approx(f_value)
    assert features.p_value == pytest.approx(stats.f.sf(f_value, 1, 6))
    quantization = effects["quantization"]
    assert quantization.spread == pytest.approx(0.02) and quantization.p_value > 0.9
    # Most significant first.
    assert [e.factor for e in analysis.effects][0] == "features"


def test_mutual_information_is_seeded_and_ranks_the_driver(results: pd.DataFrame) -> None:
    analysis = analyse(results, FACTORS, "accuracy")
    effects = {e.factor: e for e in analysis.effects}
    defined = results.dropna(subset=["rb"])
    codes = pd.factorize(defined["features"], sort=True)[0].reshape(-1, 1)
    expected = mutual_info_regression(codes, defined["rb"], discrete_features=True, random_state=0)[0]
    assert effects["features"].mutual_information == pytest.approx(expected)
    assert effects["features"].mutual_information > 0.3
    assert effects["quantization"].mutual_information == 0.0  # the same RB distribution at both levels
    again = analyse(results, FACTORS, "accuracy")
    assert [e.mutual_information for e in again.effects] == [e.mutual_information for e in analysis.effects]


def test_noise_floor_flags_effects_smaller_than_seed_noise(results: pd.DataFrame) -> None:
    analysis = analyse(results, FACTORS, "accuracy")
    # Every (features, quantization) pair has seeds 0.2 apart: variance 0.02, pooled sd sqrt(0.02).
    assert analysis.noise_floor == pytest.approx(math.sqrt(0.02))
    assert analysis.noise_sets == 4
    effects = {e.factor: e for e in analysis.effects}
    assert effects["features"].below_noise is False
    assert effects["quantization"].below_noise is True
    one_seed = results[results["seed"] == 0]
    assert noise_floor(one_seed.dropna(subset=["rb"]), FACTORS) == (None, 0)
    assert all(e.below_noise is None for e in analyse(one_seed, FACTORS, "accuracy").effects)


def test_selection(results: pd.DataFrame) -> None:
    analysis = analyse(results, FACTORS, "accuracy", within=1.0)
    assert analysis.most_accurate == "c7"
    assert analysis.least_biased == "c0"
    # 1 % of 0.95 is 0.0095: c3 (0.945, RB 0.32) qualifies and is less biased than c7 (RB 0.72).
    assert analysis.least_biased_within == "c3"
    assert analyse(results, FACTORS, "accuracy", within=0).least_biased_within == "c7"
    assert analyse(results, FACTORS, "accuracy", within=10).least_biased_within == "c0"
    assert (analysis.cells, analysis.ok) == (10, 9)


def test_lower_is_better_metric() -> None:
    frame = pd.DataFrame(
        {"cell": ["a", "b", "c"], "seed": [0, 1, 2], "frr": [0.10, 0.101, 0.2], "rb": [0.5, 0.2, 0.1]}
    ).assign(status="ok", size_bytes=1, latency_ms=1.0)
    analysis = analyse(frame, ["seed"], "frr", within=1.0)
    assert analysis.most_accurate == "a" and analysis.least_biased == "c"
    assert analysis.least_biased_within == "b"  # 0.101 is within 1 % of 0.10


def test_pareto_front(results: pd.DataFrame) -> None:
    # c4, c5: c2 is more accurate, less biased and smaller; c6: c3 beats it on accuracy and RB at the same size.
    assert analyse(results, FACTORS, "accuracy").pareto == ("c0", "c1", "c2", "c3", "c7")
    slower = results.assign(latency_ms=np.where(results["cell"] == "c3", 0.5, 1.0))
    assert pareto_front(slower, "accuracy", True) == ["c0", "c1", "c2", "c3", "c7"]
    ties = pd.DataFrame({"cell": ["x", "y"], "m": [0.9, 0.9], "rb": [0.1, 0.1], "size_bytes": 1, "latency_ms": 1.0})
    assert pareto_front(ties, "m", True) == ["x", "y"]  # equal cells do not dominate each other


def test_ranking_outputs_and_plot(results: pd.DataFrame, tmp_path: Path) -> None:
    analysis = analyse(results, FACTORS, "accuracy")
    assert list(analysis.ranked["cell"]) == ["c0", "c2", "c1", "c3", "c4", "c6", "c5", "c7", "c8"]
    assert analysis.varied == ("features", "quantization", "seed")
    document = analysis.to_dict()
    assert document["selection"] == {"most_accurate": "c7", "least_biased": "c0", "least_biased_within": "c3",
                                     "within_percent": 1.0}  # fmt: skip
    assert document["ranked"][-1]["rb"] is None
    markdown = analysis.to_markdown("plot.png")
    assert "| features | logmel: 0.61 (4); mfcc: 0.21 (4) | 0.4 |" in markdown
    assert "below noise" in markdown and "![accuracy vs RB per cell](plot.png)" in markdown
    analysis.plot(tmp_path / "plot.png", "gender")
    assert (tmp_path / "plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_nothing_finished() -> None:
    failed = pd.DataFrame({"cell": ["a"], "status": ["failed"], "error": ["boom"], "seed": [0]})
    analysis = analyse(failed, ["seed"], "accuracy")
    assert (analysis.ok, analysis.effects, analysis.most_accurate, analysis.pareto) == (0, (), None, ())
    assert "(no finished cell)" in analysis.to_markdown()
