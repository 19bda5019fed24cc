"""Metrics: per-group performance and reliability bias, with honest uncertainty."""

from ondevice_audit.metrics.bias import log_ratios, reliability_bias
from ondevice_audit.metrics.definitions import METRICS, MetricDefinition, compute_metric
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
