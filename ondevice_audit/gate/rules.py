"""Judge reports against gate rules.

Every rule fails *closed*: a value that cannot be computed (undefined RB, undefined metric, missing
interval) fails the rule with the reason, because a CI gate that passes on missing evidence hides bias;
so does a variant with no report at all (a sweep cell that failed), once per rule.

Interval bounds (``use_ci_bound``). RB and the metric are estimates; on small groups the point estimate
can sit well inside a limit by luck. With ``use_ci_bound`` on, ``max_rb`` compares the *upper* bound of
RB's bootstrap interval and ``min_metric``/``min_group_metric`` the *lower* bound of the metric's
interval. Left on ``auto`` (``Rule.use_ci_bound is None``), the bound is used when the data judged is
small: an attribute rule when any of the attribute's groups in RB has fewer than ``SMALL_GROUP_N`` clips,
an overall rule when the whole report has fewer. ``max_group_gap``, ``max_rb_increase`` and
``max_metric_drop`` compare point estimates: they judge a difference, and a report holds no interval for
a difference.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, assert_never

from ondevice_audit.errors import UsageError
from ondevice_audit.gate.interface import (
    Bound,
    GateConfigError,
    GateResult,
    NoReport,
    Rule,
    RuleKind,
    RuleOutcome,
)

__all__ = ["SMALL_GROUP_N", "evaluate", "uses_ci_bound"]

SMALL_GROUP_N = 300
"""Below this many clips a proportion's 95 % interval is several points wide, too wide to trust a point."""

RB_UNDEFINED = "RB undefined: {reason}"
BASELINE_RB_UNDEFINED = "baseline RB undefined: {reason}"
NO_INTERVAL = (
    "no interval for {what} in the report (bootstrap off, or undefined in over 10 % of resamples); "
    "rerun with --bootstrap or gate the point estimate with --no-use-ci-bound"
)
METRIC_UNDEFINED = "{metric} undefined for {where}"
NO_GROUPS_IN_RB = "no group is in RB (every group is below min_group_size)"
TOO_FEW_GROUPS = "fewer than two groups in RB"
UNKNOWN_ATTRIBUTE = (
    "{variant}: rule {rule} names attribute {attribute!r}, which the report does not have (it has: {known})"
)
NOT_IN_BASELINE = "attribute {attribute!r} of {variant} is not in the baseline report (it has: {known})"
METRIC_MISMATCH = "the baseline is scored on {baseline}, {variant} on {metric}: compare reports on the same metric"
NEEDS_BASELINE = '{rule} needs a baseline report: --baseline OTHER.json or baseline = "OTHER.json"'
NO_MCU_SECTION = (
    "the report has no MCU budget: audit a .tflite model with --board or --mcu-ram/--mcu-flash (needs the mcu extra)"
)
LOWER_IS_BETTER = (
    "{rule} needs a higher-is-better metric; {metric} is an error rate: gate it with max_group_gap, max_rb "
    "or max_metric_drop"
)


def evaluate(
    reports: Mapping[str, dict[str, Any] | NoReport],
    rules: Sequence[Rule],
    baseline: dict[str, Any] | None = None,
) -> GateResult:
    """Judge every report (by variant name) against every rule, variant by variant so each one's outcomes
    stay together; a ``NoReport`` variant fails every rule once. Input mismatches raise ``UsageError``."""
    judged = {variant: report for variant, report in reports.items() if not isinstance(report, NoReport)}
    _check(judged, rules, baseline)
    outcomes: list[RuleOutcome] = []
    for variant, report in reports.items():
        for rule in rules:
            if isinstance(report, NoReport):
                outcomes.append(_no_report(rule, variant, report))
            elif rule.kind.per_attribute:
                for attribute in _attributes_for(rule, report, rules):
                    outcomes.append(_judge(rule, variant, report, attribute, baseline))
            else:
                outcomes.append(_judge(rule, variant, report, None, baseline))
    return GateResult(tuple(outcomes))


def uses_ci_bound(rule: Rule, sizes: Sequence[int]) -> bool:
    """The rule's own choice, or on ``auto`` whether any of ``sizes`` (clips per judged group) is small."""
    if rule.use_ci_bound is not None:
        return rule.use_ci_bound
    return any(n < SMALL_GROUP_N for n in sizes)


def _check(reports: Mapping[str, dict[str, Any]], rules: Sequence[Rule], baseline: dict[str, Any] | None) -> None:
    for rule in rules:
        if rule.kind.needs_baseline and baseline is None:
            raise GateConfigError(NEEDS_BASELINE.format(rule=rule.label))
        for variant, report in reports.items():
            names = [a["name"] for a in report["attributes"]]
            if rule.attribute is not None and rule.attribute not in names:
                known = ", ".join(names) or "none"
                raise UsageError(
                    UNKNOWN_ATTRIBUTE.format(variant=variant, rule=rule.label, attribute=rule.attribute, known=known)
                )
            metric = report["metric"]
            if rule.kind in (RuleKind.MIN_METRIC, RuleKind.MIN_GROUP_METRIC) and not metric["higher_is_better"]:
                raise UsageError(LOWER_IS_BETTER.format(rule=rule.kind.value, metric=metric["name"]))
            if rule.kind.needs_baseline and baseline is not None:
                _check_baseline(rule, variant, report, baseline, rules)


def _check_baseline(
    rule: Rule, variant: str, report: dict[str, Any], baseline: dict[str, Any], rules: Sequence[Rule]
) -> None:
    if baseline["metric"]["name"] != report["metric"]["name"]:
        raise UsageError(
            METRIC_MISMATCH.format(
                baseline=baseline["metric"]["name"], variant=variant, metric=report["metric"]["name"]
            )
        )
    if rule.kind.per_attribute:
        known = [a["name"] for a in baseline["attributes"]]
        for attribute in _attributes_for(rule, report, rules):
            if attribute["name"] not in known:
                raise UsageError(
                    NOT_IN_BASELINE.format(
                        attribute=attribute["name"], variant=variant, known=", ".join(known) or "none"
                    )
                )


def _attributes_for(rule: Rule, report: dict[str, Any], rules: Sequence[Rule]) -> list[dict[str, Any]]:
    """A rule for one attribute applies to it alone; a rule for all skips attributes that have their own."""
    if rule.attribute is not None:
        return [a for a in report["attributes"] if a["name"] == rule.attribute]
    own = {r.attribute for r in rules if r.kind is rule.kind and r.attribute is not None}
    return [a for a in report["attributes"] if a["name"] not in own]


def _judge(
    rule: Rule, variant: str, report: dict[str, Any], attribute: dict[str, Any] | None, baseline: dict[str, Any] | None
) -> RuleOutcome:
    match rule.kind:
        case RuleKind.MAX_RB:
            value, reason, bound = _rb(rule, report, attribute)
        case RuleKind.MAX_GROUP_GAP:
            value, reason, bound = _group_gap(report, attribute)
        case RuleKind.MIN_METRIC:
            value, reason, bound = _overall_metric(rule, report)
        case RuleKind.MIN_GROUP_METRIC:
            value, reason, bound = _worst_group_metric(rule, report, attribute)
        case RuleKind.MAX_RB_INCREASE:
            value, reason, bound = _rb_increase(attribute, baseline)
        case RuleKind.MAX_METRIC_DROP:
            value, reason, bound = _metric_drop(report, baseline)
        case RuleKind.REQUIRE_MCU_FIT:
            value, reason, bound = _mcu_fit(report)
        case _:
            assert_never(rule.kind)
    at_most = rule.kind not in (RuleKind.MIN_METRIC, RuleKind.MIN_GROUP_METRIC, RuleKind.REQUIRE_MCU_FIT)
    passed = value is not None and (value <= rule.limit if at_most else value >= rule.limit)
    if value is not None and rule.kind is not RuleKind.REQUIRE_MCU_FIT:
        op = ("≤" if passed else ">") if at_most else ("≥" if passed else "<")
        reason = f"{reason} {op} {_fmt(rule.limit)}"
    name = None if attribute is None else attribute["name"]
    return RuleOutcome(rule, variant, name, value, rule.limit, passed, reason, bound)


def _no_report(rule: Rule, variant: str, missing: NoReport) -> RuleOutcome:
    return RuleOutcome(rule, variant, rule.attribute, None, rule.limit, False, missing.reason, Bound.POINT)


_Judged = tuple[float | None, str, Bound]


def _in_rb(attribute: dict[str, Any]) -> list[dict[str, Any]]:
    return [g for g in attribute["groups"] if g["in_rb"]]


def _rb(rule: Rule, report: dict[str, Any], attribute: dict[str, Any] | None) -> _Judged:
    assert attribute is not None
    rb = attribute["rb"]
    if not uses_ci_bound(rule, [g["n"] for g in _in_rb(attribute)]):
        if rb["value"] is None:
            return None, RB_UNDEFINED.format(reason=rb["undefined_reason"]), Bound.POINT
        return rb["value"], f"RB {_fmt(rb['value'])}", Bound.POINT
    if rb["value"] is None:
        return None, RB_UNDEFINED.format(reason=rb["undefined_reason"]), Bound.CI_UPPER
    if rb["ci"] is None:
        return None, NO_INTERVAL.format(what="RB"), Bound.CI_UPPER
    return rb["ci"][1], f"RB {_fmt(rb['value'])}, {_confidence(report)} upper bound {_fmt(rb['ci'][1])}", Bound.CI_UPPER


def _group_gap(report: dict[str, Any], attribute: dict[str, Any] | None) -> _Judged:
    assert attribute is not None
    metric = report["metric"]["name"]
    groups = _in_rb(attribute)
    if len(groups) < 2:
        return None, TOO_FEW_GROUPS, Bound.POINT
    undefined = [g["name"] for g in groups if g["metrics"].get(metric) is None]
    if undefined:
        return None, METRIC_UNDEFINED.format(metric=metric, where="group(s) " + ", ".join(undefined)), Bound.POINT
    low = min(groups, key=lambda g: g["metrics"][metric])
    high = max(groups, key=lambda g: g["metrics"][metric])
    gap = high["metrics"][metric] - low["metrics"][metric]
    text = (
        f"{metric} gap {_fmt(gap)} ({high['name']} {_fmt(high['metrics'][metric])} − "
        f"{low['name']} {_fmt(low['metrics'][metric])})"
    )
    return gap, text, Bound.POINT


def _overall_metric(rule: Rule, report: dict[str, Any]) -> _Judged:
    metric = report["metric"]["name"]
    overall = report["overall"]
    value = overall["metrics"].get(metric)
    if not uses_ci_bound(rule, [overall["n"]]):
        if value is None:
            return None, METRIC_UNDEFINED.format(metric=metric, where="all clips"), Bound.POINT
        return value, f"{metric} {_fmt(value)}", Bound.POINT
    if overall["ci"] is None:
        return None, NO_INTERVAL.format(what=f"overall {metric}"), Bound.CI_LOWER
    low = overall["ci"][0]
    return low, f"{metric} {_fmt(value)}, {_confidence(report)} lower bound {_fmt(low)}", Bound.CI_LOWER


def _worst_group_metric(rule: Rule, report: dict[str, Any], attribute: dict[str, Any] | None) -> _Judged:
    assert attribute is not None
    metric = report["metric"]["name"]
    groups = _in_rb(attribute)
    if not groups:
        return None, NO_GROUPS_IN_RB, Bound.POINT
    lower = uses_ci_bound(rule, [g["n"] for g in groups])
    bound = Bound.CI_LOWER if lower else Bound.POINT
    undefined = [g["name"] for g in groups if g["metrics"].get(metric) is None]
    if undefined:
        return None, METRIC_UNDEFINED.format(metric=metric, where="group(s) " + ", ".join(undefined)), bound
    if not lower:
        worst = min(groups, key=lambda g: g["metrics"][metric])
        return (
            worst["metrics"][metric],
            f"worst group {worst['name']}: {metric} {_fmt(worst['metrics'][metric])}",
            bound,
        )
    missing = [g["name"] for g in groups if g["ci"] is None]
    if missing:
        return None, NO_INTERVAL.format(what=f"{metric} of group(s) " + ", ".join(missing)), bound
    worst = min(groups, key=lambda g: g["ci"][0])
    text = f"worst group {worst['name']}: {metric} {_fmt(worst['metrics'][metric])}, {_confidence(report)} lower bound {_fmt(worst['ci'][0])}"
    return worst["ci"][0], text, bound


def _rb_increase(attribute: dict[str, Any] | None, baseline: dict[str, Any] | None) -> _Judged:
    assert attribute is not None and baseline is not None
    before = next(a for a in baseline["attributes"] if a["name"] == attribute["name"])["rb"]
    now = attribute["rb"]
    if now["value"] is None:
        return None, RB_UNDEFINED.format(reason=now["undefined_reason"]), Bound.POINT
    if before["value"] is None:
        return None, BASELINE_RB_UNDEFINED.format(reason=before["undefined_reason"]), Bound.POINT
    increase = now["value"] - before["value"]
    return increase, f"RB {_fmt(now['value'])} − baseline {_fmt(before['value'])} = {_fmt(increase)}", Bound.POINT


def _metric_drop(report: dict[str, Any], baseline: dict[str, Any] | None) -> _Judged:
    """A drop is a change for the worse: down for a higher-is-better metric, up for an error rate."""
    assert baseline is not None
    metric = report["metric"]["name"]
    now = report["overall"]["metrics"].get(metric)
    before = baseline["overall"]["metrics"].get(metric)
    if now is None:
        return None, METRIC_UNDEFINED.format(metric=metric, where="all clips"), Bound.POINT
    if before is None:
        return None, METRIC_UNDEFINED.format(metric=metric, where="all clips of the baseline"), Bound.POINT
    drop = before - now if report["metric"]["higher_is_better"] else now - before
    return drop, f"{metric} {_fmt(now)} vs baseline {_fmt(before)}: drop {_fmt(drop)}", Bound.POINT


def _mcu_fit(report: dict[str, Any]) -> _Judged:
    """1 when the model fits the report's MCU budget, 0 when not (the reason says which memory and by how much);
    a report without a budget fails: a fit that was never measured must not pass."""
    mcu = (report.get("model") or {}).get("mcu")
    if not mcu:
        return None, NO_MCU_SECTION, Bound.POINT
    return (1.0 if mcu["ok"] else 0.0), mcu["reason"], Bound.POINT


def _confidence(report: dict[str, Any]) -> str:
    return f"{report['settings']['confidence']:.0%}"


def _fmt(value: float) -> str:
    return f"{value:.4g}"
