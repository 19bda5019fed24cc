"""Design-choice sweeps: train, prune, quantise and export every combination of a matrix, audit each on
held-out speakers, and find which choice drives reliability bias.

``matrix`` parses and checks the TOML, ``stages`` is one cell's chain and the plan that shares it between
cells, ``cache`` keeps every stage content-addressed, ``executor`` schedules the plan on a pool of ``pools``
(local processes or Ray tasks), ``analysis`` ranks and explains the results, ``mitigation`` pairs mitigated cells with
their unmitigated twins, ``compare`` lines up two sweeps. ``user_model`` makes a user's trained model the base
instead of a recipe, and ``baseline`` compares every cell with that model as given.
"""

from ondevice_audit.sweep.analysis import Analysis, FactorEffect, LevelEffect, analyse
from ondevice_audit.sweep.cache import Cache, default_cache_dir
from ondevice_audit.sweep.compare import SweepComparison, compare_sweeps
from ondevice_audit.sweep.executor import SweepResult, SweepStatus, run_sweep
from ondevice_audit.sweep.matrix import (
    FACTORS,
    IMAGE_FACTORS,
    Cell,
    DataSettings,
    Matrix,
    TrainingSettings,
    factors_of,
    load_matrix,
    parse_matrix,
)
from ondevice_audit.sweep.mitigation import MitigationEffect, mitigation_effects
from ondevice_audit.sweep.user_model import UserModel, load_user_model
from ondevice_audit.targets.mcu import DeploymentSettings

__all__ = [
    "FACTORS",
    "IMAGE_FACTORS",
    "Analysis",
    "Cache",
    "Cell",
    "DataSettings",
    "DeploymentSettings",
    "FactorEffect",
    "LevelEffect",
    "Matrix",
    "MitigationEffect",
    "SweepComparison",
    "SweepResult",
    "SweepStatus",
    "TrainingSettings",
    "UserModel",
    "analyse",
    "compare_sweeps",
    "default_cache_dir",
    "factors_of",
    "load_matrix",
    "load_user_model",
    "mitigation_effects",
    "parse_matrix",
    "run_sweep",
]
