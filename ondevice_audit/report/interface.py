"""Output formats for a report document. A new format is a module with a ``ReportFormat`` subclass and a
member of ``ReportFormatChoice``.

Every value that comes from the data (group and attribute names, labels, paths) is escaped for the target
format: rich markup, Markdown, CSV formulas, HTML.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from enum import StrEnum
from typing import Any, assert_never

__all__ = ["ReportFormat", "ReportFormatChoice", "fmt_interval", "fmt_number"]


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
