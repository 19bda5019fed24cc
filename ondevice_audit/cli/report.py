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
from ondevice_audit.outputs import SAME_OUTPUT, check_output, check_output_folder, same_file, write_bytes, write_text

__all__ = ["report"]

NO_OUTPUT = "nothing to write: give --html FILE, --markdown FILE and/or --charts FOLDER"
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
    outputs = {"--html": html, "--markdown": markdown}
    inputs = _inputs(source)
    for option, path in outputs.items():
        check_output(path, option, inputs, outputs)
    from ondevice_audit.report.document import load_report
    from ondevice_audit.report.html import HtmlFormat
    from ondevice_audit.report.markdown import MarkdownFormat

    if source.is_dir():
        if charts is not None:
            raise UsageError("--charts writes a report's charts; a sweep's chart is its folder's plot")
        write_sweep_reports(source, html, markdown)
        return
    document = load_report(source)
    pictures = {} if charts is None else _charts(document, source, charts, inputs, outputs)
    if html is not None:
        write_text(html, HtmlFormat().format(document))
    if markdown is not None:
        write_text(markdown, MarkdownFormat().format(document))
    if charts is not None:
        for name, png in pictures.items():
            write_bytes(charts / name, png)


def _charts(
    document: dict[str, Any], source: Path, folder: Path, inputs: dict[str, Path], outputs: dict[str, Path | None]
) -> dict[str, bytes]:
    """The PNG files ``--charts`` will write, checked before anything is written: a report with nothing to draw,
    a folder that cannot take them, a chart file that is an input or another output (``--html`` in the folder
    would be overwritten by a chart of the same name)."""
    from ondevice_audit.report.html import report_charts

    pictures = report_charts(document)
    if not pictures:
        raise UsageError(f"--charts: {source} has no chart to draw (no attribute with groups); leave --charts out")
    inside = [folder, *folder.parents]  # an output file there leaves no folder to write the charts in
    for option, path in outputs.items():
        clash = next((folder / name for name in pictures if path is not None and same_file(folder / name, path)), None)
        clash = clash or next((at for at in inside if path is not None and same_file(at, path)), None)
        if clash is not None:
            raise UsageError(SAME_OUTPUT.format(option="--charts", other=option, path=clash))
    check_output_folder(folder, "--charts", inputs, pictures)
    return pictures


def write_sweep_reports(folder: Path, html: Path | None, markdown: Path | None) -> None:
    """The HTML page and/or Markdown summary of a finished sweep folder (also used by `demo`)."""
    from ondevice_audit.report.html import sweep_html
    from ondevice_audit.sweep.folder import SweepFolder

    sweep = SweepFolder(folder)
    sweep.require(sweep.state, sweep.summary_json, sweep.results, sweep.summary_md)
    if html is not None:
        state, summary = _json(sweep.state), _json(sweep.summary_json)
        write_text(html, sweep_html(state, summary, _csv(sweep.results)))
    if markdown is not None:
        plot = Path(os.path.relpath(sweep.plot, markdown.absolute().parent)).as_posix()
        text = _read(sweep.summary_md).replace(f"]({sweep.plot.name})", f"]({plot})")
        write_text(markdown, text)


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


def _inputs(source: Path) -> dict[str, Path]:
    """What ``report`` reads: the report, or a sweep folder's files (every cell's report among them)."""
    if not source.is_dir():
        return {"report": source}
    from ondevice_audit.sweep.folder import SweepFolder

    sweep = SweepFolder(source)
    files = {name: getattr(sweep, name) for name in ("state", "results", "summary_json", "summary_md", "plot")}
    return {f"sweep's {path.name}": path for path in files.values()}
