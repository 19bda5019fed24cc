"""The CI gate: judge reports against limits on reliability bias and metrics, exit non-zero on a breach."""

from ondevice_audit.gate.config import GateSettings, load_settings
from ondevice_audit.gate.interface import Bound, GateConfigError, GateResult, NoReport, Rule, RuleKind, RuleOutcome
from ondevice_audit.gate.rules import SMALL_GROUP_N, evaluate

__all__ = [
    "SMALL_GROUP_N",
    "Bound",
    "GateConfigError",
    "GateResult",
    "GateSettings",
    "NoReport",
    "Rule",
    "RuleKind",
    "RuleOutcome",
    "evaluate",
    "load_settings",
]
