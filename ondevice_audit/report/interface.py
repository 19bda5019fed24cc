"""Output formats for a report document: each is a ``ReportFormat`` subclass in a module of its own, registered
in ``ondevice_audit/report/__init__.py``.

Every value that comes from the data (group and attribute names, labels, paths) is escaped for the target
format: rich markup, Markdown, CSV formulas, HTML.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

__all__ = ["ReportFormat", "fmt_interval", "fmt_number"]


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
