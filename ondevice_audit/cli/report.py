"""``ondevice-audit report``: render a saved report, or a sweep folder, as a self-contained HTML page and/or Markdown.

A sweep folder (``runs/NAME``) is rendered from what ``sweep`` wrote: ``sweep.json``, ``summary.json`` (the
analysis and selection) and ``results.csv``; its Markdown is the sweep's own ``summary.md`` with the chart
link pointed at the folder, so it still shows from wherever the file is written.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer

import ondevice_audit.cli._options as opt
from ondevice_audit.cli._app import app
from ondevice_audit.cli._progress import Quiet
from ondevice_audit.errors import UsageError

__all__ = ["report"]

NO_OUTPUT = "nothing to write: give --html FILE, --markdown FILE and/or --charts FOLDER"
CANNOT_WRITE = "cannot write {path}: {error}"
UNREADABLE = "{path}: cannot read it ({error})"


@app.command()
def report(
    source: opt.ReportOrSweep,
    html: Annotated[
        Path | None, typer.Option("--html", help="Write a self-contained HTML page (charts inline, no external links).")
    ] = None,
    markdown: Annotated[Path | None, typer.Option("--markdown", help="Write GitHub-flavoured Markdown.")] = None,
    charts: Annotated[
        Path | None,
        typer.Option(
            "--charts",
            help="Write the report's charts as PNG files into this folder (ATTRIBUTE.png; a detector's "
            "ATTRIBUTE-det.png).",
        ),
    ] = None,
    quiet: Quiet = False,
) -> None:
    """Render a saved report for people: an HTML page with a chart per attribute, or Markdown.

    A sweep folder: cells by RB, metric vs RB with the Pareto front, what drives bias, the recommended cell.
    """
    if html is None and markdown is None and charts is None:
        raise UsageError(NO_OUTPUT)
    from ondevice_audit.report.document import load_report
    from ondevice_audit.report.html import HtmlFormat
    from ondevice_audit.report.markdown import MarkdownFormat

    if source.is_dir():
        if charts is not None:
            raise UsageError("--charts writes a report's charts; a sweep's chart is its folder's plot")
        write_sweep_reports(source, html, markdown)
        return
    document = load_report(source)
    if html is not None:
        _write(html, HtmlFormat().format(document))
    if markdown is not None:
        _write(markdown, MarkdownFormat().format(document))
    if charts is not None:
        from ondevice_audit.report.html import report_charts

        for name, png in report_charts(document).items():
            _write_bytes(charts / name, png)


def write_sweep_reports(folder: Path, html: Path | None, markdown: Path | None) -> None:
    """The HTML page and/or Markdown summary of a finished sweep folder (also used by `demo`)."""
    from ondevice_audit.report.html import sweep_html
    from ondevice_audit.sweep.folder import SweepFolder

    sweep = SweepFolder(folder)
    sweep.require(sweep.state, sweep.summary_json, sweep.results, sweep.summary_md)
    if html is not None:
        state, summary = _json(sweep.state), _json(sweep.summary_json)
        _write(html, sweep_html(state, summary, _csv(sweep.results)))
    if markdown is not None:
        plot = Path(os.path.relpath(sweep.plot, markdown.absolute().parent)).as_posix()
        text = _read(sweep.summary_md).replace(f"]({sweep.plot.name})", f"]({plot})")
        _write(markdown, text)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(UNREADABLE.format(path=path, error=exc)) from None


def _json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(_read(path))
    except json.JSONDecodeError as exc:
        raise UsageError(UNREADABLE.format(path=path, error=exc)) from None


def _csv(path: Path) -> list[dict[str, Any]]:
    """Rows of results.csv; numbers stay text except the sparsity the page shows."""
    rows = list(csv.DictReader(io.StringIO(_read(path), newline="")))
    for row in rows:
        sparsity = row.get("model_sparsity")
        try:
            row["model_sparsity"] = float(sparsity) if sparsity else None
        except ValueError:
            raise UsageError(
                UNREADABLE.format(path=path, error=f"model_sparsity {sparsity!r} is not a number")
            ) from None
    return rows


def _write_bytes(path: Path, data: bytes) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    except OSError as exc:
        raise UsageError(CANNOT_WRITE.format(path=path, error=exc.strerror or exc)) from None


def _write(path: Path, text: str) -> None:
    _write_bytes(path, text.encode("utf-8"))
