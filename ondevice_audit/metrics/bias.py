r"""Reliability bias (Toussaint/Hutiri et al., "Tiny, always-on and fragile", ACM TOSEM 2023).

For a metric :math:`P` in [0, 1] and groups :math:`g` of one attribute,

.. math:: RB = \sum_g \left| \ln \frac{P_g}{P_{all}} \right|

0 means every group is served as well as the population; larger is more bias. The signed
:math:`\ln(P_g / P_{all})` per group says who is worse off (negative: below the population for a
higher-is-better metric). Where any :math:`P_g` or :math:`P_{all}` is not positive (MCC can be negative,
an error rate can be 0) the logarithm does not exist and RB is *undefined*: never a number.

>>> round(float(reliability_bias(np.array([0.8, 0.9]), np.array(0.85))), 4)
0.1178
"""

from __future__ import annotations

import numpy as np

__all__ = ["log_ratios", "reliability_bias"]


def log_ratios(group_values: np.ndarray, overall: np.ndarray) -> np.ndarray:
    """Signed :math:`\\ln(P_g / P_{all})`, NaN where undefined. ``group_values[..., G]``, ``overall[...]``."""
    overall = np.asarray(overall, dtype=np.float64)[..., None]
    group_values = np.asarray(group_values, dtype=np.float64)
    valid = (group_values > 0) & (overall > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(valid, np.log(np.where(valid, group_values, 1.0) / np.where(valid, overall, 1.0)), np.nan)


def reliability_bias(group_values: np.ndarray, overall: np.ndarray) -> np.ndarray:
    """RB over the last axis of ``group_values``; NaN where any group's log ratio is undefined."""
    ratios = log_ratios(group_values, overall)
    return np.abs(ratios).sum(axis=-1) if ratios.shape[-1] else np.full(ratios.shape[:-1], np.nan)
