"""Reports: the versioned JSON document and the formats that render it (table, JSON, Markdown, CSV, HTML)."""

from ondevice_audit.report.interface import ReportFormat, ReportFormatChoice

__all__ = ["ReportFormat", "ReportFormatChoice"]
