"""Each rule kind on hand-made reports (valid against the schema), with exact values and reasons."""

from __future__ import annotations

from typing import Any

import pytest

from ondevice_audit.errors import UsageError
from ondevice_audit.gate import SMALL_GROUP_N, Bound, GateConfigError, Rule, RuleKind, evaluate
from ondevice_audit.gate import rules as gate_rules
from ondevice_audit.report.document import validate

UNDEFINED = "fewer than two groups have at least 30 clips"


def group(
    name: str, value: float | None, n: int = 500, ci: tuple[float, float] | None = None, in_rb: bool = True
) -> dict[str, Any]:
    return {
        "name": name,
        "n": n,
        "n_speakers": None,
        "metrics": {"accuracy": value},
        "ci": None if ci is None else list(ci),
        "log_ratio": None,
        "in_rb": in_rb,
    }


def attribute(
    name: str, groups: list[dict[str, Any]], rb: float | None = 0.1, rb_ci: tuple[float, float] | None = None
) -> dict[str, Any]:
    return {
        "name": name,
        "columns": [name],
        "resampling": "clips (no speaker column)",
        "worst_group": None,
        "rb": {
            "value": rb,
            "ci": None if rb_ci is None else list(rb_ci),
            "p_value": None,
            "undefined_reason": UNDEFINED if rb is None else None,
        },
        "groups": groups,
    }


def report(
    *attributes: dict[str, Any],
    overall: float | None = 0.8,
    overall_ci: tuple[float, float] | None = (0.75, 0.85),
    n: int = 1000,
    metric: str = "accuracy",
    higher_is_better: bool = True,
) -> dict[str, Any]:
    document = {
        "schema_version": "1.0",
        "tool": {"name": "ondevice-audit", "version": "0.1.0"},
        "command": "score",
        "inputs": [],
        "settings": {
            "metric": metric,
            "groups": [a["name"] for a in attributes],
            "min_group_size": 30,
            "bootstrap": 1000,
            "permutations": 0,
            "seed": 0,
            "confidence": 0.95,
        },
        "metric": {"name": metric, "description": "test metric", "higher_is_better": higher_is_better},
        "model": None,
        "samples": {"total": n, "scored": n, "failed": 0, "failures": []},
        "overall": {
            "n": n,
            "n_speakers": None,
            "metrics": {metric: overall},
            "ci": None if overall_ci is None else list(overall_ci),
        },
        "attributes": list(attributes),
        "warnings": [],
    }
    for a in attributes:
        for g in a["groups"]:
            g["metrics"] = {metric: g["metrics"]["accuracy"]}
    validate(document)
    return document


def two_groups(
    name: str, rb: float | None = 0.1, rb_ci: tuple[float, float] | None = None, n: int = 500
) -> dict[str, Any]:
    return attribute(name, [group("a", 0.85, n, (0.8, 0.9)), group("b", 0.75, n, (0.7, 0.78))], rb, rb_ci)


def judge(document: dict[str, Any], *rules: Rule, baseline: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
    result = evaluate({"run": document}, rules, baseline)
    return [(o.rule.kind, o.attribute, o.value, o.passed, o.bound) for o in result.outcomes]


def test_max_rb_for_every_attribute_passes_and_fails_per_attribute() -> None:
    document = report(two_groups("gender", rb=0.1), two_groups("accent", rb=0.4))
    outcomes = judge(document, Rule(RuleKind.MAX_RB, None, 0.3, use_ci_bound=False))
    assert outcomes == [
        (RuleKind.MAX_RB, "gender", 0.1, True, Bound.POINT),
        (RuleKind.MAX_RB, "accent", 0.4, False, Bound.POINT),
    ]


def test_max_rb_for_one_attribute_replaces_the_rule_for_all_there() -> None:
    document = report(two_groups("gender", rb=0.1), two_groups("accent", rb=0.4))
    rules = (Rule(RuleKind.MAX_RB, None, 0.3, False), Rule(RuleKind.MAX_RB, "accent", 0.5, False))
    result = evaluate({"run": document}, rules)
    assert [(o.rule.label, o.attribute, o.limit, o.passed) for o in result.outcomes] == [
        ("max_rb", "gender", 0.3, True),
        ("max_rb[accent]", "accent", 0.5, True),
    ]
    assert result.passed


def test_undefined_rb_fails_with_its_reason() -> None:
    document = report(two_groups("gender", rb=None))
    [outcome] = evaluate({"run": document}, [Rule(RuleKind.MAX_RB, None, 10.0, False)]).outcomes
    assert (outcome.value, outcome.passed, outcome.reason) == (None, False, f"RB undefined: {UNDEFINED}")


def test_use_ci_bound_gates_the_upper_bound_of_rb() -> None:
    document = report(two_groups("gender", rb=0.1, rb_ci=(0.05, 0.35)))
    assert judge(document, Rule(RuleKind.MAX_RB, None, 0.3, use_ci_bound=True)) == [
        (RuleKind.MAX_RB, "gender", 0.35, False, Bound.CI_UPPER)
    ]
    assert judge(document, Rule(RuleKind.MAX_RB, None, 0.3, use_ci_bound=False)) == [
        (RuleKind.MAX_RB, "gender", 0.1, True, Bound.POINT)
    ]
    [outcome] = evaluate({"run": document}, [Rule(RuleKind.MAX_RB, None, 0.3, True)]).outcomes
    assert outcome.reason == "RB 0.1, 95% upper bound 0.35 > 0.3"


@pytest.mark.parametrize(
    ("n", "bound", "value"), [(SMALL_GROUP_N - 1, Bound.CI_UPPER, 0.35), (SMALL_GROUP_N, Bound.POINT, 0.1)]
)
def test_auto_uses_the_bound_when_a_group_in_rb_is_small(n: int, bound: Bound, value: float) -> None:
    document = report(two_groups("gender", rb=0.1, rb_ci=(0.05, 0.35), n=n))
    assert judge(document, Rule(RuleKind.MAX_RB, None, 0.3)) == [(RuleKind.MAX_RB, "gender", value, value < 0.3, bound)]


def test_auto_ignores_small_groups_left_out_of_rb() -> None:
    groups = [group("a", 0.85, 500), group("b", 0.75, 500), group("tiny", 0.2, 5, in_rb=False)]
    document = report(attribute("gender", groups, rb=0.1, rb_ci=(0.05, 0.35)))
    assert judge(document, Rule(RuleKind.MAX_RB, None, 0.3)) == [(RuleKind.MAX_RB, "gender", 0.1, True, Bound.POINT)]


def test_bound_without_an_interval_fails_closed() -> None:
    document = report(two_groups("gender", rb=0.1, rb_ci=None, n=50))
    [outcome] = evaluate({"run": document}, [Rule(RuleKind.MAX_RB, None, 0.3)]).outcomes
    assert (outcome.passed, outcome.bound, outcome.reason) == (
        False,
        Bound.CI_UPPER,
        gate_rules.NO_INTERVAL.format(what="RB"),
    )


def test_max_group_gap_uses_groups_in_rb_only() -> None:
    groups = [group("a", 0.9), group("b", 0.8), group("tiny", 0.1, 5, in_rb=False)]
    document = report(attribute("gender", groups))
    [outcome] = evaluate({"run": document}, [Rule(RuleKind.MAX_GROUP_GAP, None, 0.15)]).outcomes
    assert outcome.value == pytest.approx(0.1)
    assert (outcome.passed, outcome.bound) == (True, Bound.POINT)
    assert outcome.reason == "accuracy gap 0.1 (a 0.9 − b 0.8) ≤ 0.15"
    [outcome] = evaluate({"run": document}, [Rule(RuleKind.MAX_GROUP_GAP, None, 0.05)]).outcomes
    assert not outcome.passed


def test_max_group_gap_needs_two_groups_in_rb() -> None:
    document = report(attribute("gender", [group("a", 0.9), group("b", 0.1, 5, in_rb=False)], rb=None))
    [outcome] = evaluate({"run": document}, [Rule(RuleKind.MAX_GROUP_GAP, None, 1.0)]).outcomes
    assert (outcome.passed, outcome.reason) == (False, gate_rules.TOO_FEW_GROUPS)


def test_min_metric_overall_point_and_lower_bound() -> None:
    document = report(two_groups("gender"), overall=0.8, overall_ci=(0.75, 0.85))
    assert judge(document, Rule(RuleKind.MIN_METRIC, None, 0.78, False)) == [
        (RuleKind.MIN_METRIC, None, 0.8, True, Bound.POINT)
    ]
    assert judge(document, Rule(RuleKind.MIN_METRIC, None, 0.78, True)) == [
        (RuleKind.MIN_METRIC, None, 0.75, False, Bound.CI_LOWER)
    ]
    small = report(two_groups("gender"), overall=0.8, overall_ci=(0.75, 0.85), n=200)
    assert judge(small, Rule(RuleKind.MIN_METRIC, None, 0.78)) == [
        (RuleKind.MIN_METRIC, None, 0.75, False, Bound.CI_LOWER)
    ]


def test_min_group_metric_judges_the_worst_group_in_rb() -> None:
    groups = [group("a", 0.85, ci=(0.8, 0.9)), group("b", 0.75, ci=(0.6, 0.8)), group("tiny", 0.1, 5, in_rb=False)]
    document = report(attribute("gender", groups))
    assert judge(document, Rule(RuleKind.MIN_GROUP_METRIC, None, 0.7, False)) == [
        (RuleKind.MIN_GROUP_METRIC, "gender", 0.75, True, Bound.POINT)
    ]
    [outcome] = evaluate({"run": document}, [Rule(RuleKind.MIN_GROUP_METRIC, None, 0.7, True)]).outcomes
    assert (outcome.value, outcome.passed, outcome.bound) == (0.6, False, Bound.CI_LOWER)
    assert outcome.reason == "worst group b: accuracy 0.75, 95% lower bound 0.6 < 0.7"


def test_min_metric_on_an_error_rate_is_a_usage_error() -> None:
    document = report(two_groups("gender"), metric="frr", higher_is_better=False)
    with pytest.raises(UsageError) as error:
        evaluate({"run": document}, [Rule(RuleKind.MIN_METRIC, None, 0.5)])
    assert str(error.value) == gate_rules.LOWER_IS_BETTER.format(rule="min_metric", metric="frr")


def test_max_metric_caps_an_error_rate_at_the_point_or_the_upper_bound() -> None:
    document = report(two_groups("gender"), overall=0.08, overall_ci=(0.05, 0.12), metric="frr",
                      higher_is_better=False)  # fmt: skip
    assert judge(document, Rule(RuleKind.MAX_METRIC, None, 0.1, False)) == [
        (RuleKind.MAX_METRIC, None, 0.08, True, Bound.POINT)
    ]
    assert judge(document, Rule(RuleKind.MAX_METRIC, None, 0.1, True)) == [
        (RuleKind.MAX_METRIC, None, 0.12, False, Bound.CI_UPPER)
    ]


def test_max_group_metric_judges_the_highest_error_rate_in_rb() -> None:
    groups = [group("a", 0.05, ci=(0.02, 0.09)), group("b", 0.15, ci=(0.1, 0.22)), group("tiny", 0.9, 5, in_rb=False)]
    document = report(attribute("gender", groups), metric="far", higher_is_better=False)
    assert judge(document, Rule(RuleKind.MAX_GROUP_METRIC, None, 0.2, False)) == [
        (RuleKind.MAX_GROUP_METRIC, "gender", 0.15, True, Bound.POINT)
    ]
    [outcome] = evaluate({"run": document}, [Rule(RuleKind.MAX_GROUP_METRIC, None, 0.2, True)]).outcomes
    assert (outcome.value, outcome.passed, outcome.bound) == (0.22, False, Bound.CI_UPPER)
    assert outcome.reason == "worst group b: far 0.15, 95% upper bound 0.22 > 0.2"


def test_max_metric_on_a_higher_is_better_metric_is_a_usage_error() -> None:
    document = report(two_groups("gender"))
    with pytest.raises(UsageError) as error:
        evaluate({"run": document}, [Rule(RuleKind.MAX_GROUP_METRIC, None, 0.5)])
    assert str(error.value) == gate_rules.HIGHER_IS_BETTER.format(rule="max_group_metric", metric="accuracy")


def test_unknown_attribute_is_a_usage_error() -> None:
    document = report(two_groups("gender"))
    with pytest.raises(UsageError) as error:
        evaluate({"run": document}, [Rule(RuleKind.MAX_RB, "accent", 0.3)])
    assert (
        str(error.value)
        == "run: rule max_rb[accent] names attribute 'accent', which the report does not have (it has: gender)"
    )


def test_max_rb_increase_against_a_baseline() -> None:
    now = report(two_groups("gender", rb=0.4))
    before = report(two_groups("gender", rb=0.1))
    [outcome] = evaluate({"run": now}, [Rule(RuleKind.MAX_RB_INCREASE, None, 0.2)], before).outcomes
    assert outcome.value == pytest.approx(0.3)
    assert (outcome.passed, outcome.attribute, outcome.bound) == (False, "gender", Bound.POINT)
    assert evaluate({"run": now}, [Rule(RuleKind.MAX_RB_INCREASE, None, 0.35)], before).passed


def test_max_rb_increase_fails_when_the_baseline_rb_is_undefined() -> None:
    now = report(two_groups("gender", rb=0.1))
    before = report(two_groups("gender", rb=None))
    [outcome] = evaluate({"run": now}, [Rule(RuleKind.MAX_RB_INCREASE, None, 1.0)], before).outcomes
    assert (outcome.passed, outcome.reason) == (False, f"baseline RB undefined: {UNDEFINED}")


@pytest.mark.parametrize(
    ("metric", "higher_is_better", "before", "now", "drop"),
    [("accuracy", True, 0.9, 0.8, 0.1), ("frr", False, 0.1, 0.15, 0.05), ("frr", False, 0.2, 0.1, -0.1)],
)
def test_max_metric_drop_is_a_change_for_the_worse(
    metric: str, higher_is_better: bool, before: float, now: float, drop: float
) -> None:
    current = report(two_groups("gender"), overall=now, metric=metric, higher_is_better=higher_is_better)
    baseline = report(two_groups("gender"), overall=before, metric=metric, higher_is_better=higher_is_better)
    [outcome] = evaluate({"run": current}, [Rule(RuleKind.MAX_METRIC_DROP, None, 0.07)], baseline).outcomes
    assert outcome.value == pytest.approx(drop)
    assert outcome.passed is (drop <= 0.07)


def test_baseline_rules_need_a_baseline() -> None:
    with pytest.raises(GateConfigError) as error:
        evaluate({"run": report(two_groups("gender"))}, [Rule(RuleKind.MAX_METRIC_DROP, None, 0.1)])
    assert (
        str(error.value) == 'max_metric_drop needs a baseline report: --baseline OTHER.json or baseline = "OTHER.json"'
    )


def test_baseline_on_another_metric_is_a_usage_error() -> None:
    now = report(two_groups("gender"))
    before = report(two_groups("gender"), metric="mcc")
    with pytest.raises(UsageError) as error:
        evaluate({"run": now}, [Rule(RuleKind.MAX_METRIC_DROP, None, 0.1)], before)
    assert str(error.value) == "the baseline is scored on mcc, run on accuracy: compare reports on the same metric"


def test_baseline_without_the_attribute_is_a_usage_error() -> None:
    now = report(two_groups("gender"), two_groups("accent"))
    before = report(two_groups("gender"))
    with pytest.raises(UsageError) as error:
        evaluate({"run": now}, [Rule(RuleKind.MAX_RB_INCREASE, None, 0.1)], before)
    assert str(error.value) == "attribute 'accent' of run is not in the baseline report (it has: gender)"


def test_result_passes_only_when_every_outcome_passes() -> None:
    document = report(two_groups("gender", rb=0.1), two_groups("accent", rb=0.4))
    result = evaluate(
        {"run": document}, [Rule(RuleKind.MAX_RB, None, 0.3, False), Rule(RuleKind.MIN_METRIC, None, 0.5, False)]
    )
    assert not result.passed
    assert [(o.rule.kind, o.attribute) for o in result.failures] == [(RuleKind.MAX_RB, "accent")]
