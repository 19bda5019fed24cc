"""Model recipes and training: named architectures, deterministic training, speaker-disjoint splits.

Training needs pandas; it loads on first use (PEP 562) so that the recipe names cost no more than numpy,
e.g. for ``ondevice-audit --help``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ondevice_audit.model.recipes import RECIPES, BuiltModel, Recipe, get_recipe

if TYPE_CHECKING:
    from ondevice_audit.model.train import Features, compute_features, encode_labels, split_by_speaker, train_model

__all__ = [
    "RECIPES",
    "BuiltModel",
    "Features",
    "Recipe",
    "compute_features",
    "encode_labels",
    "get_recipe",
    "split_by_speaker",
    "train_model",
]

_FROM_TRAIN = {"Features", "compute_features", "encode_labels", "split_by_speaker", "train_model"}


def __getattr__(name: str) -> Any:
    if name in _FROM_TRAIN:
        from ondevice_audit.model import train

        return getattr(train, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
