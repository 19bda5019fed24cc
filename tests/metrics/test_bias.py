import math

import numpy as np
import pytest

from ondevice_audit.metrics import log_ratios, reliability_bias


def test_rb_matches_hand_computation():
    groups = np.array([0.62, 0.81, 0.75])
    overall = 0.73
    expected = abs(math.log(0.62 / 0.73)) + abs(math.log(0.81 / 0.73)) + abs(math.log(0.75 / 0.73))
    assert float(reliability_bias(groups, overall)) == pytest.approx(expected, rel=1e-12)


def test_signed_log_ratio_says_who_is_worse_off():
    ratios = log_ratios(np.array([0.5, 0.9]), np.array(0.7))
    assert ratios[0] == pytest.approx(math.log(0.5 / 0.7))
    assert ratios[0] < 0 < ratios[1]


def test_rb_is_zero_without_bias():
    assert float(reliability_bias(np.array([0.8, 0.8]), 0.8)) == 0.0


@pytest.mark.parametrize(("groups", "overall"), [([0.5, -0.1], 0.3), ([0.5, 0.0], 0.3), ([0.5, 0.6], 0.0)])
def test_rb_is_undefined_for_non_positive_values(groups, overall):
    assert np.isnan(reliability_bias(np.array(groups), overall))


def test_rb_vectorises_over_replicates():
    groups = np.array([[0.6, 0.8], [0.7, 0.7]])
    overall = np.array([0.7, 0.7])
    np.testing.assert_allclose(
        reliability_bias(groups, overall), [abs(math.log(6 / 7)) + abs(math.log(8 / 7)), 0.0]
    )
