"""Output formats for a report document: each is a ``ReportFormat`` subclass in a module of its own, registered
in ``ondevice_audit/report/__init__.py``.

Every value that comes from the data (group and attribute names, labels, paths) is escaped for the target
format: rich markup, Markdown, CSV formulas, HTML.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

__all__ = ["ReportFormat", "fmt_interval", "fmt_number", "mcu_of", "mcu_rows"]


class ReportFormat(ABC):
    def __init__(self, color: bool = False):
        """``color``: the output goes to a terminal that shows colour (only the table uses it)."""
        self.color = color

    @abstractmethod
    def format(self, report: dict[str, Any]) -> str:
        """The whole report as text."""


def fmt_number(value: float | None, digits: int = 3) -> str:
    return "undefined" if value is None else f"{value:.{digits}f}"


def fmt_interval(ci: list[float] | None, digits: int = 3) -> str:
    return "" if ci is None else f"[{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]"


def mcu_rows(report: dict[str, Any]) -> list[tuple[str, str]]:
    """The MCU budget verdict of ``audit --board``/``--mcu-ram``/``--mcu-flash`` as (item, value) rows, shared by
    every format so none leaves it out; empty without a budget. Sizes in exact bytes: nothing to round away."""
    mcu = mcu_of(report)
    if not mcu:
        return []
    budget = mcu["budget"]

    def size(used: int | None, limit: int | None, total: int | None, memory: str) -> str:
        text = "TFLM cannot run the model" if used is None else f"{used:,} bytes"
        if limit is None:
            return f"{text} ({memory} not checked)"
        return f"{text} of {limit:,} allowed ({total or 0:,} bytes {memory} less the firmware's headroom)"

    return [
        ("board", budget["label"]),
        ("fits", "yes" if mcu["ok"] else "NO"),
        ("tensor arena (RAM)", size(mcu["arena_bytes"], mcu["ram_limit_bytes"], budget["ram_bytes"], "RAM")),
        ("model (flash)", size(mcu["flash_bytes"], mcu["flash_limit_bytes"], budget["flash_bytes"], "flash")),
        ("verdict", mcu["reason"]),
    ]


def mcu_of(report: dict[str, Any]) -> dict[str, Any] | None:
    """The model's MCU fit (``model.mcu``), None for predictions scored elsewhere or an audit without a budget."""
    return (report.get("model") or {}).get("mcu")
