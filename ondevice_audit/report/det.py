"""Detection error tradeoff (DET) charts of a detector's report: per group, FRR against FAR on normal-deviate
axes (the standard for detectors: straight lines for Gaussian scores), with the one operating point marked.

With clip durations known, a second panel plots FRR against false accepts per hour, the unit wake-word
engineers budget in. Deterministic bytes, as every chart of the HTML report.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from matplotlib import style
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from scipy.stats import norm

__all__ = ["det_chart_png"]

_LIMITS = (1e-3, 0.99)
_TICKS = (0.001, 0.01, 0.05, 0.2, 0.5, 0.8, 0.95)


def _deviate(values: list[float]) -> np.ndarray:
    return norm.ppf(np.clip(np.asarray(values, dtype=float), *_LIMITS))


def det_chart_png(report: dict[str, Any], attribute_name: str) -> bytes:
    groups = next(a["groups"] for a in report["detection"]["attributes"] if a["name"] == attribute_name)
    per_hour = all(g.get("fa_per_hour") for g in groups)
    with style.context("default"):
        figure = Figure(figsize=(9.5 if per_hour else 5.2, 4.2), dpi=100, layout="constrained")
        FigureCanvasAgg(figure)
        axes = figure.subplots(1, 2 if per_hour else 1, squeeze=False)[0]
        for group in groups:
            far, frr = (list(v) for v in zip(*group["det"], strict=True)) if group["det"] else ([], [])
            label = f"{_plain(group['name'])} (EER {group['eer']:.3f})" if group["eer"] is not None else _plain(
                group["name"]
            )
            line = axes[0].plot(_deviate(far), _deviate(frr), label=label)[0]
            point = group.get("operating_point")
            if point is not None:
                axes[0].plot(*_deviate(list(point)), "o", color=line.get_color())
            if per_hour:
                axes[1].plot(np.maximum(group["fa_per_hour"], 1e-2), _deviate(frr), color=line.get_color())
        _axes(axes[0], "false acceptance rate", log=False)
        if per_hour:
            _axes(axes[1], "false accepts per hour", log=True)
        axes[0].legend(fontsize=8, loc="upper right")
        figure.suptitle(_plain(f"DET by {attribute_name}; dots: the operating point"), fontsize=10)
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def _axes(axes: Any, xlabel: str, log: bool) -> None:
    ticks = _deviate(list(_TICKS))
    labels = [f"{t:.1%}".replace(".0%", "%") for t in _TICKS]
    axes.set_yticks(ticks, labels)
    axes.set_ylim(ticks[0], ticks[-1])
    if log:
        axes.set_xscale("log")
    else:
        axes.set_xticks(ticks, labels)
        axes.set_xlim(ticks[0], ticks[-1])
    axes.set_xlabel(xlabel)
    axes.set_ylabel("false rejection rate")
    axes.grid(alpha=0.3)


def _plain(text: str) -> str:
    return text.replace("$", r"\$")
