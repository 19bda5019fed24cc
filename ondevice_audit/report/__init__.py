"""Reports: the versioned JSON document and the formats that render it (table, JSON, Markdown, CSV, HTML).

A new format is a module with a ``ReportFormat`` subclass (``interface.py``), a ``register`` line and a member of
``ReportFormatChoice`` below. Only the chosen format is imported: HTML loads matplotlib, which JSON never needs.
"""

from __future__ import annotations

from enum import StrEnum

from ondevice_audit.registry import Registry
from ondevice_audit.report.interface import ReportFormat

__all__ = ["FORMATS", "ReportFormat", "ReportFormatChoice"]

FORMATS: Registry[type[ReportFormat]] = Registry("report format")
FORMATS.register("table", "ondevice_audit.report.table:TableFormat", summary="rich tables for a terminal or a log")
FORMATS.register("json", "ondevice_audit.report.json:JsonFormat", summary="the versioned report document")
FORMATS.register("markdown", "ondevice_audit.report.markdown:MarkdownFormat", summary="for pull requests")
FORMATS.register("csv", "ondevice_audit.report.csv:CsvFormat", summary="one row per group and metric")
FORMATS.register("html", "ondevice_audit.report.html:HtmlFormat", summary="a self-contained page with plots")


class ReportFormatChoice(StrEnum):
    """The ``--format`` choices: the registered formats."""

    table = "table"
    json = "json"
    markdown = "markdown"
    csv = "csv"
    html = "html"

    def to_format(self, color: bool = False) -> ReportFormat:
        return FORMATS.load(self.value)(color=color)
