"""The report document itself, as indented JSON."""

from __future__ import annotations

from typing import Any

from ondevice_audit.report.document import to_json
from ondevice_audit.report.interface import ReportFormat

__all__ = ["JsonFormat"]


class JsonFormat(ReportFormat):
    def format(self, report: dict[str, Any]) -> str:
        return to_json(report)
