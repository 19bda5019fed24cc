"""Output formats for a report document. A new format is a module with a ``ReportFormat`` subclass and a
member of ``ReportFormatChoice``.

Every value that comes from the data (group and attribute names, labels, paths) is escaped for the target
format: rich markup, Markdown, CSV formulas, HTML.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from enum import StrEnum
from typing import Any, assert_never

__all__ = ["ReportFormat", "ReportFormatChoice", "fmt_interval", "fmt_number", "mcu_of", "mcu_rows"]


class ReportFormat(ABC):
    @abstractmethod
    def format(self, report: dict[str, Any]) -> str:
        """The whole report as text."""


class ReportFormatChoice(StrEnum):
    table = "table"
    json = "json"
    markdown = "markdown"
    csv = "csv"
    html = "html"

    def to_format(self, color: bool = False) -> ReportFormat:
        # Only the chosen format is imported: html loads matplotlib (~0.6 s), which a JSON report never needs.
        if self is ReportFormatChoice.table:
            from ondevice_audit.report.table import TableFormat

            return TableFormat(color=color)
        if self is ReportFormatChoice.json:
            from ondevice_audit.report.json import JsonFormat

            return JsonFormat()
        if self is ReportFormatChoice.markdown:
            from ondevice_audit.report.markdown import MarkdownFormat

            return MarkdownFormat()
        if self is ReportFormatChoice.csv:
            from ondevice_audit.report.csv import CsvFormat

            return CsvFormat()
        if self is ReportFormatChoice.html:
            from ondevice_audit.report.html import HtmlFormat

            return HtmlFormat()
        assert_never(self)


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
