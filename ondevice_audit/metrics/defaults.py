"""Scoring defaults, declared once: every option, setting and frame that has one takes it from here."""

from __future__ import annotations

__all__ = ["BOOTSTRAP", "CONFIDENCE", "MAX_GROUPS", "METRIC", "MIN_GROUP_SIZE", "NEGATIVE_LABELS", "PERMUTATIONS"]

METRIC = "mcc"
"""The metric RB is computed on: MCC, as in the study the measure comes from."""
MIN_GROUP_SIZE = 30
"""Groups with fewer clips are shown but left out of RB: their metric is too noisy to rank anyone."""
BOOTSTRAP = 1000
PERMUTATIONS = 1000
CONFIDENCE = 0.95
NEGATIVE_LABELS = ("_unknown_", "_silence_")
"""Classes that are not keywords, for FRR/FAR (Speech Commands' names)."""
MAX_GROUPS = 500
"""An attribute with more groups is refused: it is almost always a speaker or id column given as a group."""
