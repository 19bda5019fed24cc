"""Model recipes and training: named architectures, deterministic training, speaker-disjoint splits."""

from ondevice_audit.model.recipes import RECIPES, BuiltModel, Recipe, get_recipe
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
