"""What changed between two reports of the same kind of audit: per-group metric, RB, size and latency.

Groups and attributes are matched by name; one present in only one report is listed with the other side
empty, never dropped, so a group that disappeared is visible.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from ondevice_audit.errors import UsageError

__all__ = ["ReportComparison", "compare_reports"]


@dataclass
class ReportComparison:
    metric: str
    groups: pd.DataFrame
    """attribute, group, n_a, n_b, metric_a, metric_b, delta."""
    bias: pd.DataFrame
    """attribute, rb_a, rb_b, delta, worst_a, worst_b."""
    model: pd.DataFrame
    """quantity (size_bytes, ms_per_sample, overall metric), a, b, delta."""


def _delta(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else b - a


def compare_reports(a: dict[str, Any], b: dict[str, Any]) -> ReportComparison:
    """B minus A for every group, attribute and model fact the two reports share."""
    metric = a["metric"]["name"]
    if b["metric"]["name"] != metric:
        raise UsageError(f"the reports use different metrics ({metric} vs {b['metric']['name']}); compare like with like")
    group_rows, bias_rows = [], []
    attributes_a = {x["name"]: x for x in a["attributes"]}
    attributes_b = {x["name"]: x for x in b["attributes"]}
    for name in [*attributes_a, *(n for n in attributes_b if n not in attributes_a)]:
        left, right = attributes_a.get(name), attributes_b.get(name)
        groups_a = {g["name"]: g for g in (left or {}).get("groups", [])}
        groups_b = {g["name"]: g for g in (right or {}).get("groups", [])}
        for group in [*groups_a, *(g for g in groups_b if g not in groups_a)]:
            ga, gb = groups_a.get(group), groups_b.get(group)
            value_a = ga["metrics"].get(metric) if ga else None
            value_b = gb["metrics"].get(metric) if gb else None
            group_rows.append(
                {"attribute": name, "group": group, "n_a": ga["n"] if ga else None, "n_b": gb["n"] if gb else None,
                 "metric_a": value_a, "metric_b": value_b, "delta": _delta(value_a, value_b)}  # fmt: skip
            )
        rb_a = left["rb"]["value"] if left else None
        rb_b = right["rb"]["value"] if right else None
        bias_rows.append(
            {"attribute": name, "rb_a": rb_a, "rb_b": rb_b, "delta": _delta(rb_a, rb_b),
             "worst_a": left["worst_group"] if left else None, "worst_b": right["worst_group"] if right else None}  # fmt: skip
        )
    facts = []
    for quantity, pick in (
        (f"overall {metric}", lambda r: r["overall"]["metrics"].get(metric)),
        ("size_bytes", lambda r: (r.get("model") or {}).get("size_bytes")),
        ("ms_per_sample", lambda r: _milliseconds((r.get("model") or {}).get("seconds_per_sample"))),
    ):
        value_a, value_b = pick(a), pick(b)
        facts.append({"quantity": quantity, "a": value_a, "b": value_b, "delta": _delta(value_a, value_b)})
    return ReportComparison(metric, pd.DataFrame(group_rows), pd.DataFrame(bias_rows), pd.DataFrame(facts))


def _milliseconds(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000
