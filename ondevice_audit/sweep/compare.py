"""Two sweeps side by side, cell by cell: what changed in the metric and in RB.

Cells are matched on the factor levels the sweeps share. A factor held at one level in each sweep but a
different one (sweep A at 16 kHz, sweep B at 8 kHz) is what is being compared, so it is left out of the
match; every other factor must agree. Settings outside the factors (epochs, data) are listed when they
differ, since they change every cell at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ondevice_audit.errors import UsageError
from ondevice_audit.sweep.folder import SweepFolder

__all__ = ["SweepComparison", "compare_sweeps"]


@dataclass(frozen=True)
class SweepComparison:
    metric: str
    bias_attribute: str
    matched_on: tuple[str, ...]
    compared: dict[str, tuple[Any, Any]]
    """Factors left out of the match: level in A, level in B."""
    settings: list[str]
    """Shared settings that differ, as ``name: A -> B``."""
    table: pd.DataFrame
    """One row per matched pair: the factors that vary, both cell ids, metric and RB in each and B - A."""
    only_a: int
    only_b: int


def _load(folder: Path) -> tuple[dict[str, Any], pd.DataFrame]:
    sweep = SweepFolder(folder)
    sweep.require(sweep.state, sweep.results)
    return sweep.read_state(), pd.read_csv(sweep.results)


def _flatten(settings: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in settings.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def compare_sweeps(a: Path, b: Path) -> SweepComparison:
    state_a, results_a = _load(a)
    state_b, results_b = _load(b)
    if (state_a["metric"], state_a["bias_attribute"]) != (state_b["metric"], state_b["bias_attribute"]):
        raise UsageError(
            f"{a} ranks by RB of {state_a['metric']} over {state_a['bias_attribute']} but {b} by "
            f"{state_b['metric']} over {state_b['bias_attribute']}: their RB values are not comparable"
        )
    metric = state_a["metric"]
    factors = [f for f in state_a["factors"] if f in state_b["factors"] and f in results_a and f in results_b]
    compared = {}
    for factor in factors:
        levels_a, levels_b = set(results_a[factor]), set(results_b[factor])
        if len(levels_a) == 1 and len(levels_b) == 1 and levels_a != levels_b:
            compared[factor] = (next(iter(levels_a)), next(iter(levels_b)))
    keys = [f for f in factors if f not in compared]
    wanted = ["cell", *keys, metric, "rb"]
    merged = results_a.reindex(columns=wanted).merge(
        results_b.reindex(columns=wanted), on=keys, how="outer", suffixes=("_a", "_b"), indicator=True
    )
    pairs = merged[merged["_merge"] == "both"]
    if pairs.empty:
        raise UsageError(f"{a} and {b} have no cells in common (matched on {', '.join(keys) or 'nothing'})")
    varying = [k for k in keys if pairs[k].nunique(dropna=False) >= 2]
    table = pd.DataFrame(
        {
            **{k: pairs[k] for k in varying},
            "cell_a": pairs["cell_a"],
            "cell_b": pairs["cell_b"],
            f"{metric}_a": pairs[f"{metric}_a"],
            f"{metric}_b": pairs[f"{metric}_b"],
            f"{metric}_delta": pairs[f"{metric}_b"] - pairs[f"{metric}_a"],
            "rb_a": pairs["rb_a"],
            "rb_b": pairs["rb_b"],
            "rb_delta": pairs["rb_b"] - pairs["rb_a"],
        }
    ).reset_index(drop=True)
    settings_a = _flatten({k: v for k, v in state_a["settings"].items() if k != "factors"})
    settings_b = _flatten({k: v for k, v in state_b["settings"].items() if k != "factors"})
    changed = [
        f"{name}: {settings_a.get(name)} -> {settings_b.get(name)}"
        for name in sorted(set(settings_a) | set(settings_b))
        if settings_a.get(name) != settings_b.get(name)
    ]
    return SweepComparison(
        metric=metric,
        bias_attribute=state_a["bias_attribute"],
        matched_on=tuple(keys),
        compared=compared,
        settings=changed,
        table=table,
        only_a=int((merged["_merge"] == "left_only").sum()),
        only_b=int((merged["_merge"] == "right_only").sum()),
    )
