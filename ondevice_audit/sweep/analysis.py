"""Which design choice drives bias, and which cell to pick: the analysis of a results table.

Per factor with two or more levels: the mean RB per level, a one-way ANOVA F-test (does RB differ between
levels more than within them?) and the mutual information between the level and RB (any dependence, not
only a shift of the mean). Cells that differ only in their seed give the noise floor: the pooled standard
deviation of RB across seeds. A factor whose level means spread less than that is flagged: its effect is not
distinguishable from retraining with another seed.

Selection: the most accurate cell, the least biased one, and the least biased one within ``within`` percent
(relative) of the best metric; and the Pareto front over (metric, RB, size, latency), the cells no other
cell beats on all four at once. With a microcontroller budget, the selection and the front are chosen among
the cells that fit it (``fits_mcu``): a cell no board can hold is no choice, however good its numbers.

Mitigation: per level, the paired change in RB and metric against the unmitigated twin cells
(``sweep/mitigation.py``).

With a user's model, the ``baseline`` cell (the model as given) is ranked and selectable like any cell, but
left out of the factor effects and the noise floor: its levels (its own format and runtime) are not a choice
the matrix made. The ranking then shows each cell's change against it (``sweep/baseline.py``), and the
layers pruning left dense are listed.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ondevice_audit.metrics.definitions import higher_is_better
from ondevice_audit.sweep.mitigation import MitigationEffect

__all__ = ["Analysis", "FactorEffect", "LevelEffect", "analyse", "noise_floor", "pareto_front"]

_NOISE_FACTOR = "seed"
_COST_COLUMNS = ("size_bytes", "latency_ms")
_BASELINE_COLUMNS = ("metric_delta", "rb_delta", "flip_rate", "forgotten")
_BASELINE_CELL = "baseline"


@dataclass(frozen=True)
class LevelEffect:
    level: Any
    mean_rb: float
    cells: int


@dataclass(frozen=True)
class FactorEffect:
    factor: str
    levels: tuple[LevelEffect, ...]
    spread: float
    """Largest minus smallest level mean."""
    f_statistic: float | None
    p_value: float | None
    """One-way ANOVA; None when there is no within-level variation to compare with (one cell per level)."""
    mutual_information: float | None
    """In nats, between the level and RB (scikit-learn's k-NN estimator, seeded)."""
    below_noise: bool | None
    """Spread smaller than the seed-to-seed noise floor; None when no noise floor is known."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "factor": self.factor,
            "levels": [{"level": _plain(lv.level), "mean_rb": lv.mean_rb, "cells": lv.cells} for lv in self.levels],
            "spread": self.spread,
            "f_statistic": self.f_statistic,
            "p_value": self.p_value,
            "mutual_information": self.mutual_information,
            "below_noise": self.below_noise,
        }


@dataclass(frozen=True)
class Analysis:
    metric: str
    higher_is_better: bool
    within: float
    """Percent of the best metric a cell may give up for less bias."""
    cells: int
    ok: int
    ranked: pd.DataFrame
    """Cells that finished, by RB (undefined RB last): cell, varied factors, metric, RB and CI, size, latency."""
    varied: tuple[str, ...]
    effects: tuple[FactorEffect, ...]
    """Most significant first (smallest p-value)."""
    noise_floor: float | None
    noise_sets: int
    """Groups of otherwise-identical cells (two or more seeds) the noise floor pools."""
    most_accurate: str | None
    least_biased: str | None
    least_biased_within: str | None
    pareto: tuple[str, ...]
    budget: str | None = None
    """The microcontroller budget the selection was restricted to; None: no budget, every cell counts."""
    fitting: int | None = None
    """Finished cells that fit the budget (None without one)."""
    mitigation: tuple[MitigationEffect, ...] = ()
    not_pruned: tuple[str, ...] = ()
    """Each distinct list of layers pruning left dense (``name (Type, N params)``), from the pruned cells."""

    def to_dict(self) -> dict[str, Any]:
        ranked = self.ranked.astype(object).where(self.ranked.notna(), None)
        return {
            "metric": self.metric,
            "higher_is_better": self.higher_is_better,
            "cells": self.cells,
            "ok": self.ok,
            "ranked": [{k: _plain(v) for k, v in row.items()} for row in ranked.to_dict(orient="records")],
            "effects": [effect.to_dict() for effect in self.effects],
            "noise_floor": self.noise_floor,
            "noise_sets": self.noise_sets,
            "selection": {
                "most_accurate": self.most_accurate,
                "least_biased": self.least_biased,
                "least_biased_within": self.least_biased_within,
                "within_percent": self.within,
            },
            "budget": {"label": self.budget, "fitting_cells": self.fitting},
            "pareto": list(self.pareto),
            "mitigation": [effect.to_dict() for effect in self.mitigation],
            "not_pruned": list(self.not_pruned),
        }

    def to_markdown(self, plot: str | None = None) -> str:
        lines = [f"## Cells by RB ({self.ok} of {self.cells} finished)", ""]
        lines += _markdown_table(self.ranked)
        if "flip_rate" in self.ranked.columns:
            lines += ["", "metric_delta, rb_delta, flip_rate and forgotten compare each cell with the baseline "
                      "(the model as given) on the clips both scored; per group in results.csv and each "
                      "cell's report.json (comparison)."]  # fmt: skip
        lines += [f"Not pruned (tfmot cannot prune them; they stay dense): {layers}" for layers in self.not_pruned]
        lines += ["", "## Which design choice drives bias", ""]
        if self.effects:
            lines += [
                "| factor | mean RB per level (cells) | spread | F-test p | MI (nats) | vs noise |",
                "|---|---|---:|---:|---:|---|",
            ]
            for e in self.effects:
                levels = "; ".join(f"{_plain(lv.level)}: {lv.mean_rb:.4g} ({lv.cells})" for lv in e.levels)
                noise = {None: "", True: "below noise", False: "above noise"}[e.below_noise]
                lines.append(
                    f"| {e.factor} | {levels} | {e.spread:.4g} | {_fmt(e.p_value)} | {_fmt(e.mutual_information)} "
                    f"| {noise} |"
                )
        else:
            lines.append("No factor has two or more levels among cells with a defined RB.")
        lines.append("")
        if self.noise_floor is None:
            lines.append("Noise floor: unknown (it needs two or more seeds of otherwise-identical cells).")
        else:
            lines.append(
                f"Noise floor: RB varies by {self.noise_floor:.4g} (pooled standard deviation) across seeds of "
                f"otherwise-identical cells ({self.noise_sets} set(s)); effects with a smaller spread are noise."
            )
        if self.mitigation:
            lines += ["", "## What each mitigation changes (against none, otherwise-identical cells)", ""]
            lines += [
                f"| mitigation | pairs | RB change [CI] | {self.metric} change [CI] | interval |",
                "|---|---:|---|---|---|",
            ]
            for m in self.mitigation:
                lines.append(
                    f"| {m.level} | {len(m.pairs)} | {_change(m.rb_change, m.rb_ci)} | "
                    f"{_change(m.metric_change, m.metric_ci)} | {m.resampling} |"
                )
        lines += ["", "## Selection", ""]
        if self.budget is not None:
            lines += [f"Among the {self.fitting} finished cell(s) that fit {self.budget}.", ""]
        lines += [
            f"- most accurate ({self.metric}): {self.most_accurate or '-'}",
            f"- least biased: {self.least_biased or '-'}",
            f"- least biased within {self.within:g} % of the best {self.metric}: {self.least_biased_within or '-'}",
            f"- Pareto front ({self.metric} {'↑' if self.higher_is_better else '↓'}, RB ↓, size ↓, latency ↓): "
            + (", ".join(self.pareto) or "-"),
        ]
        if plot:
            lines += ["", f"![{self.metric} vs RB per cell]({plot})"]
        return "\n".join(lines) + "\n"

    def plot(self, path: Path, bias_attribute: str) -> None:
        """Metric against RB per cell, coloured by the factor with the most mutual information, Pareto
        cells ringed and labelled. Uses the Agg canvas directly, leaving pyplot's global state alone."""
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        figure = Figure(figsize=(7.5, 5), layout="constrained")
        FigureCanvasAgg(figure)
        axes = figure.add_subplot()
        shown = self.ranked.dropna(subset=[self.metric, "rb"])
        informative = [e for e in self.effects if e.mutual_information is not None and e.factor != _NOISE_FACTOR]
        colour_by = max(informative, key=lambda e: e.mutual_information or 0.0).factor if informative else None
        if colour_by is None:
            axes.scatter(shown[self.metric], shown["rb"], color="tab:blue")
        else:
            for level, group in shown.groupby(colour_by, sort=True):
                axes.scatter(group[self.metric], group["rb"], label=f"{colour_by} = {_plain(level)}")
            axes.legend(fontsize="small")
        front = shown[shown["cell"].isin(self.pareto)]
        axes.scatter(front[self.metric], front["rb"], s=160, facecolors="none", edgecolors="black", label="Pareto")
        for (x, y), group in front.groupby([self.metric, "rb"], sort=True):  # one label per point, however many cells
            label = ", ".join(str(cell).split("-")[0] for cell in group["cell"])
            axes.annotate(label, (x, y), textcoords="offset points", xytext=(6, 4), fontsize="small")
        axes.set_xlabel(f"{self.metric} on the test split ({'higher' if self.higher_is_better else 'lower'} is better)")
        axes.set_ylabel(f"RB over {bias_attribute} (lower is less biased)")
        axes.set_title(f"{len(shown)} cells; ringed: Pareto front over metric, RB, size, latency")
        axes.grid(alpha=0.3)
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, dpi=120)


def _plain(value: Any) -> Any:
    """numpy scalars to Python ones, so JSON and Markdown show 16000, not np.int64(16000)."""
    return value.item() if isinstance(value, np.generic) else value


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def _change(value: float | None, ci: tuple[float, float] | None) -> str:
    """``+0.012 [-0.030, +0.051]``: a change and its interval."""
    if value is None:
        return "-"
    return f"{value:+.4g}" + (f" [{ci[0]:+.4g}, {ci[1]:+.4g}]" if ci else "")


def _markdown_table(frame: pd.DataFrame) -> list[str]:
    if frame.empty:
        return ["(no finished cell)"]
    header = "| " + " | ".join(map(str, frame.columns)) + " |"
    rows = [header, "|" + "---|" * len(frame.columns)]
    for record in frame.itertuples(index=False):
        cells = ["-" if pd.isna(v) else (f"{v:.4g}" if isinstance(v, float) else str(_plain(v))) for v in record]
        rows.append("| " + " | ".join(cells) + " |")
    return rows


def _finite(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def noise_floor(frame: pd.DataFrame, factors: Sequence[str]) -> tuple[float | None, int]:
    """Pooled standard deviation of RB across seeds of otherwise-identical cells, and how many such sets."""
    if _NOISE_FACTOR not in frame.columns or frame[_NOISE_FACTOR].nunique() < 2:
        return None, 0
    others = [f for f in factors if f != _NOISE_FACTOR and f in frame.columns]
    groups = frame.groupby(others, dropna=False)["rb"] if others else [(None, frame["rb"])]
    variances = [float(values.var(ddof=1)) for _, values in groups if len(values) >= 2]
    if not variances:
        return None, 0
    return math.sqrt(float(np.mean(variances))), len(variances)


def pareto_front(frame: pd.DataFrame, metric: str, higher_is_better: bool) -> list[str]:
    """Cells no other cell matches or beats on metric, RB, size and latency while beating it on one."""
    columns = [metric, "rb", *_COST_COLUMNS]
    usable = frame.dropna(subset=columns)
    # Every objective as "lower is better".
    costs = usable[columns].to_numpy(dtype=float) * np.array([-1.0 if higher_is_better else 1.0, 1, 1, 1])
    front = []
    for i in range(len(costs)):
        dominated = np.any(np.all(costs <= costs[i], axis=1) & np.any(costs < costs[i], axis=1))
        if not dominated:
            front.append(str(usable["cell"].iloc[i]))
    return front


def _effect(factor: str, frame: pd.DataFrame, floor: float | None) -> FactorEffect:
    from scipy.stats import f_oneway
    from sklearn.feature_selection import mutual_info_regression

    grouped = [(level, values.to_numpy(float)) for level, values in frame.groupby(factor, sort=True)["rb"]]
    levels = tuple(LevelEffect(level, float(values.mean()), len(values)) for level, values in grouped)
    means = [lv.mean_rb for lv in levels]
    spread = max(means) - min(means)
    f_statistic = p_value = None
    if len(frame) > len(grouped):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # constant input: scipy warns and returns NaN, reported as None
            test = f_oneway(*(values for _, values in grouped))
        f_statistic, p_value = _finite(test.statistic), _finite(test.pvalue)
    information = None
    if any(len(values) >= 2 for _, values in grouped):
        codes = pd.factorize(frame[factor], sort=True)[0].reshape(-1, 1)
        mi = mutual_info_regression(codes, frame["rb"].to_numpy(float), discrete_features=True, random_state=0)
        information = float(mi[0])
    below = None if floor is None else bool(spread < floor)
    return FactorEffect(factor, levels, spread, f_statistic, p_value, information, below)


def analyse(
    results: pd.DataFrame,
    factors: Sequence[str],
    metric: str,
    within: float = 1.0,
    *,
    budget: str | None = None,
    mitigation: Sequence[MitigationEffect] = (),
) -> Analysis:
    """Analyse a results table (one row per cell: ``cell``, ``status``, factor columns, ``metric``, ``rb``,
    ``size_bytes``, ``latency_ms``); ``within`` is in percent of the best metric. With ``budget`` (its label)
    the selection and Pareto front only consider rows whose ``fits_mcu`` is true."""
    higher = higher_is_better(metric)
    ok = results[results["status"] == "ok"] if "status" in results.columns else results
    chosen = ok[ok["cell"] != _BASELINE_CELL] if "cell" in ok.columns else ok
    present = [f for f in factors if f in ok.columns]
    varied = tuple(f for f in present if chosen[f].nunique(dropna=False) >= 2)
    shown = ["cell", *varied, metric, "rb", "rb_ci_low", "rb_ci_high", *_COST_COLUMNS]
    shown += ["fits_mcu"] if budget is not None else []
    shown += [c for c in _BASELINE_COLUMNS if c in ok.columns]
    ranked = ok.reindex(columns=shown).sort_values(["rb", "cell"], na_position="last", kind="stable")
    ranked = ranked.reset_index(drop=True)

    biased = ok.dropna(subset=["rb"]) if "rb" in ok.columns else ok.iloc[0:0]
    compared = chosen.dropna(subset=["rb"]) if "rb" in chosen.columns else chosen.iloc[0:0]
    floor, sets = noise_floor(compared, present)
    effects = [_effect(f, compared, floor) for f in present if compared[f].nunique(dropna=False) >= 2]
    effects.sort(key=lambda e: (e.p_value is None, e.p_value if e.p_value is not None else 0.0, e.factor))

    candidates = ok
    if budget is not None:
        fitting = ok["fits_mcu"].astype(object).eq(True) if "fits_mcu" in ok.columns else pd.Series(False, ok.index)
        candidates = ok[fitting]
        biased = biased[biased["cell"].isin(candidates["cell"])]
    scored = candidates.dropna(subset=[metric]) if metric in candidates.columns else candidates.iloc[0:0]
    sign = -1.0 if higher else 1.0
    most_accurate = least_biased = least_within = None
    if not scored.empty:
        best_order = scored.assign(_key=sign * scored[metric]).sort_values(["_key", "cell"], kind="stable")
        most_accurate = str(best_order["cell"].iloc[0])
        best = float(best_order[metric].iloc[0])
        tolerance = abs(best) * within / 100
        close = scored[(sign * (scored[metric] - best)) <= tolerance + 1e-12].dropna(subset=["rb"])
        if not close.empty:
            pick = close.assign(_key=sign * close[metric]).sort_values(["rb", "_key", "cell"], kind="stable")
            least_within = str(pick["cell"].iloc[0])
    if not biased.empty:
        pick = biased.assign(_key=sign * biased[metric]).sort_values(["rb", "_key", "cell"], kind="stable")
        least_biased = str(pick["cell"].iloc[0])
    needed = [metric, "rb", *_COST_COLUMNS]
    pareto = pareto_front(candidates, metric, higher) if all(c in candidates.columns for c in needed) else []
    return Analysis(
        metric=metric,
        higher_is_better=higher,
        within=within,
        cells=len(results),
        ok=len(ok),
        ranked=ranked,
        varied=varied,
        effects=tuple(effects),
        noise_floor=floor,
        noise_sets=sets,
        most_accurate=most_accurate,
        least_biased=least_biased,
        least_biased_within=least_within,
        pareto=tuple(pareto),
        budget=budget,
        fitting=len(candidates) if budget is not None else None,
        mitigation=tuple(mitigation),
        not_pruned=tuple(dict.fromkeys(str(v) for v in ok.get("not_pruned", pd.Series(dtype=object)).dropna() if v)),
    )
