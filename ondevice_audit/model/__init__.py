"""Model recipes and training: named architectures and deterministic training.

Training needs pandas; it loads on first use (PEP 562) so that the recipe names cost no more than numpy,
e.g. for ``ondevice-audit --help``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ondevice_audit.model.recipes import RECIPES, BuiltModel, Recipe, get_recipe

if TYPE_CHECKING:
    from ondevice_audit.model.train import encode_labels, train_model

__all__ = [
    "RECIPES",
    "BuiltModel",
    "Recipe",
    "encode_labels",
    "get_recipe",
    "train_model",
]

_FROM_TRAIN = {"encode_labels", "train_model"}


def __getattr__(name: str) -> Any:
    if name in _FROM_TRAIN:
        from ondevice_audit.model import train

        return getattr(train, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
