"""What the gate checks and what it found: rules in, one outcome per rule × variant × attribute out.

A *variant* is one report under test (a file's stem, or one cell of a sweep), so the same rules can judge
many reports at once and every output format (table, JUnit, Markdown) lists the same outcomes. A sweep cell
that failed has no report: it is a ``NoReport`` variant, and every rule fails for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from ondevice_audit.errors import UsageError

__all__ = ["Bound", "GateConfigError", "GateResult", "NoReport", "Rule", "RuleKind", "RuleOutcome"]


class RuleKind(StrEnum):
    MAX_RB = "max_rb"
    MAX_GROUP_GAP = "max_group_gap"
    MIN_METRIC = "min_metric"
    MIN_GROUP_METRIC = "min_group_metric"
    MAX_RB_INCREASE = "max_rb_increase"
    MAX_METRIC_DROP = "max_metric_drop"
    REQUIRE_MCU_FIT = "require_mcu_fit"

    @property
    def per_attribute(self) -> bool:
        """Attribute rules give one outcome per attribute; the others judge the report once."""
        return self not in (RuleKind.MIN_METRIC, RuleKind.MAX_METRIC_DROP, RuleKind.REQUIRE_MCU_FIT)

    @property
    def needs_baseline(self) -> bool:
        return self in (RuleKind.MAX_RB_INCREASE, RuleKind.MAX_METRIC_DROP)


class Bound(StrEnum):
    """Which estimate a rule compared with its limit."""

    POINT = "point"
    CI_UPPER = "CI upper"
    CI_LOWER = "CI lower"


class GateConfigError(UsageError):
    """Bad gate settings (file, keys or flags): the user's to fix, exit 2."""


@dataclass(frozen=True)
class Rule:
    kind: RuleKind
    attribute: str | None
    """The attribute judged; None for every attribute (or for an overall rule)."""
    limit: float
    use_ci_bound: bool | None = None
    """Gate on the interval bound instead of the point estimate; None decides from the data size."""

    @property
    def label(self) -> str:
        return self.kind.value if self.attribute is None else f"{self.kind.value}[{self.attribute}]"


@dataclass(frozen=True)
class NoReport:
    """A variant with nothing to judge (a sweep cell that failed): the gate fails closed on it."""

    reason: str


@dataclass(frozen=True)
class RuleOutcome:
    rule: Rule
    variant: str
    attribute: str | None
    """The attribute this outcome is about; None for overall rules."""
    value: float | None
    """What was compared with the limit; None when it could not be computed (the rule then fails)."""
    limit: float
    passed: bool
    reason: str
    bound: Bound

    @property
    def name(self) -> str:
        """Stable test name, e.g. ``max_rb gender`` (JUnit testcase, table rows)."""
        return self.rule.kind.value if self.attribute is None else f"{self.rule.kind.value} {self.attribute}"


@dataclass(frozen=True)
class GateResult:
    outcomes: tuple[RuleOutcome, ...]

    @property
    def passed(self) -> bool:
        return all(o.passed for o in self.outcomes)

    @property
    def failures(self) -> tuple[RuleOutcome, ...]:
        return tuple(o for o in self.outcomes if not o.passed)
