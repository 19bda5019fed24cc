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
        from ondevice_audit.report import csv, html, json, markdown, table

        if self is ReportFormatChoice.table:
            return table.TableFormat(color=color)
        if self is ReportFormatChoice.json:
            return json.JsonFormat()
        if self is ReportFormatChoice.markdown:
            return markdown.MarkdownFormat()
        if self is ReportFormatChoice.csv:
            return csv.CsvFormat()
        if self is ReportFormatChoice.html:
            return html.HtmlFormat()
        assert_never(self)


def fmt_number(value: float | None, digits: int = 3) -> str:
    return "undefined" if value is None else f"{value:.{digits}f}"


def fmt_interval(ci: list[float] | None, digits: int = 3) -> str:
    return "" if ci is None else f"[{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]"
