"""What changed between two reports of the same kind of audit: per-group metric, RB, size and latency.

A per-group delta means something only between reports of the same clips: two models, runtimes or settings on
one dataset. So the reports' data is compared first (the manifest's hash, the split, the clip count overall and
per group, the groups of each attribute) and reports on different data are refused, unless the caller allows
it; the differences are then listed with the comparison. Groups and attributes are matched by name; one present
in only one report is listed with the other side empty, never dropped, so a group that disappeared is visible.
"""

from __future__ import annotations

from dataclasses import dataclass, field
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
    data_differences: list[str] = field(default_factory=list)
    """How the two reports' data differ (empty: the same clips); only with ``allow_different_data``."""


def _delta(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else b - a


DIFFERENT_DATA = (
    "the reports were scored on different data ({differences}): per-group deltas would compare different clips; "
    "compare reports of the same data, or pass --allow-different-data to compare them anyway"
)
_LISTED = 3


def data_differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """How the data of two reports differ, in words; empty when they scored the same clips."""
    differences = []
    manifests = [{i["sha256"] for i in r["inputs"] if i["role"] == "manifest"} for r in (a, b)]
    if all(manifests) and manifests[0] != manifests[1]:
        differences.append("different manifests (sha256 differs)")
    for key in ("split", "split_file", "max_samples_per_group"):
        if a["settings"].get(key) != b["settings"].get(key):
            differences.append(f"{key} {a['settings'].get(key)} vs {b['settings'].get(key)}")
    if a["overall"]["n"] != b["overall"]["n"]:
        differences.append(f"{a['overall']['n']} vs {b['overall']['n']} clips")
    attributes_b = {x["name"]: x for x in b["attributes"]}
    for attribute in a["attributes"]:
        other = attributes_b.get(attribute["name"])
        if other is None:
            continue
        sizes_a = {g["name"]: g["n"] for g in attribute["groups"]}
        sizes_b = {g["name"]: g["n"] for g in other["groups"]}
        if set(sizes_a) != set(sizes_b):
            only = sorted(set(sizes_a) ^ set(sizes_b))
            differences.append(f"{attribute['name']} groups differ ({', '.join(only[:_LISTED])} in one report only)")
        else:
            resized = [f"{name} {n} vs {sizes_b[name]}" for name, n in sizes_a.items() if n != sizes_b[name]]
            if resized:
                differences.append(f"{attribute['name']} clips per group differ ({', '.join(resized[:_LISTED])})")
    return differences


def compare_reports(a: dict[str, Any], b: dict[str, Any], *, allow_different_data: bool = False) -> ReportComparison:
    """B minus A for every group, attribute and model fact the two reports share; a ``UsageError`` when they
    were scored on different data, unless ``allow_different_data``."""
    metric = a["metric"]["name"]
    if b["metric"]["name"] != metric:
        raise UsageError(f"the reports use different metrics ({metric} vs {b['metric']['name']}); compare like with like")
    differences = data_differences(a, b)
    if differences and not allow_different_data:
        raise UsageError(DIFFERENT_DATA.format(differences="; ".join(differences)))
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
    return ReportComparison(metric, pd.DataFrame(group_rows), pd.DataFrame(bias_rows), pd.DataFrame(facts), differences)


def _milliseconds(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000
