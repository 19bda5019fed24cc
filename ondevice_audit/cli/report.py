"""``ondevice-audit report``: render a saved report as a self-contained HTML page and/or Markdown."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ondevice_audit.cli import app
from ondevice_audit.errors import UsageError
from ondevice_audit.report.document import load_report
from ondevice_audit.report.html import HtmlFormat
from ondevice_audit.report.markdown import MarkdownFormat

__all__ = ["report"]

NO_OUTPUT = "nothing to write: give --html FILE and/or --markdown FILE"
CANNOT_WRITE = "cannot write {path}: {error}"


@app.command()
def report(
    source: Annotated[Path, typer.Argument(metavar="REPORT.json", help="A report.json written by score or audit.")],
    html: Annotated[
        Path | None, typer.Option("--html", help="Write a self-contained HTML page (charts inline, no external links).")
    ] = None,
    markdown: Annotated[Path | None, typer.Option("--markdown", help="Write GitHub-flavoured Markdown.")] = None,
) -> None:
    """Render a saved report for people: an HTML page with a chart per attribute, or Markdown."""
    if html is None and markdown is None:
        raise UsageError(NO_OUTPUT)
    document = load_report(source)
    if html is not None:
        _write(html, HtmlFormat().format(document))
    if markdown is not None:
        _write(markdown, MarkdownFormat().format(document))


def _write(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UsageError(CANNOT_WRITE.format(path=path, error=exc.strerror or exc)) from None
