"""Metrics: per-group performance and reliability bias, with honest uncertainty.

The frames need pandas; they load on first use (PEP 562) so that the metric names (``METRICS``) cost no more
than numpy, e.g. for ``ondevice-audit --help``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ondevice_audit.metrics.bias import log_ratios, reliability_bias
from ondevice_audit.metrics.definitions import METRICS, MetricDefinition, compute_metric

if TYPE_CHECKING:
    from ondevice_audit.metrics.frame import AttributeResult, BiasResult, GroupMetricFrame, GroupResult

__all__ = [
    "METRICS",
    "AttributeResult",
    "BiasResult",
    "GroupMetricFrame",
    "GroupResult",
    "MetricDefinition",
    "compute_metric",
    "log_ratios",
    "reliability_bias",
]

_FROM_FRAME = {"AttributeResult", "BiasResult", "GroupMetricFrame", "GroupResult"}


def __getattr__(name: str) -> Any:
    if name in _FROM_FRAME:
        from ondevice_audit.metrics import frame

        return getattr(frame, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
