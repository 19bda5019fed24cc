"""Design choices applied to a trained model before export: pruning (tfmot) and quantisation settings."""

from ondevice_audit.optimize.prune import SCHEDULES, PruneResult, UnprunableLayer, prune
from ondevice_audit.optimize.quantize import DEFAULT_ATOL, QuantApproach, QuantizationConfig

__all__ = [
    "DEFAULT_ATOL",
    "SCHEDULES",
    "PruneResult",
    "QuantApproach",
    "QuantizationConfig",
    "UnprunableLayer",
    "prune",
]
