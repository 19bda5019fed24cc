"""``ondevice-audit gate``: exit 1 when a report breaks a limit on reliability bias or a metric.

The result table goes to standard output: it is what this command produces, so ``gate ... | tee`` keeps
it, while errors stay on stderr. The exit code is the verdict (0 pass, 1 a rule failed, 2 bad input).

A sweep folder (``runs/NAME``, written by ``sweep``) gates every cell's ``report.json``, each cell a variant
named by its id, in the sweep's cell order, so the table lists each cell's checks together; it prints only
the failing checks (and how many passed) unless ``--all``, so it stays readable over many cells. A cell that failed
(``error.txt``, no report) or never finished fails every rule with its error as the reason: a gate must not
pass a sweep because its worst cells crashed.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

import ondevice_audit.cli._gate_options as go
import ondevice_audit.cli._options as opt
from ondevice_audit.cli._app import app
from ondevice_audit.cli._progress import Quiet, stdout
from ondevice_audit.gate import NoReport

if TYPE_CHECKING:
    from ondevice_audit.sweep.folder import CellFolder

__all__ = ["gate"]

CELL_FAILED = "cell failed: {error}"
CELL_UNFINISHED = "cell not finished: {folder} holds neither report.json nor error.txt"
EMPTY_ERROR = "(error.txt is empty)"


@app.command()
def gate(
    report: opt.ReportOrSweep,
    config: go.GateConfig = None,
    max_rb: go.MaxRb = None,
    max_group_gap: go.MaxGroupGap = None,
    min_metric: go.MinMetric = None,
    min_group_metric: go.MinGroupMetric = None,
    baseline: go.Baseline = None,
    max_rb_increase: go.MaxRbIncrease = None,
    max_metric_drop: go.MaxMetricDrop = None,
    use_ci_bound: go.UseCiBound = None,
    require_mcu_fit: go.RequireMcuFit = None,
    junit: go.Junit = None,
    markdown: go.GateMarkdown = None,
    config_alias: go.ConfigAlias = None,
    markdown_alias: go.MarkdownAlias = None,
    show_all: Annotated[
        bool, typer.Option("--all", help="With a sweep folder, print every check, not only the failing ones.")
    ] = False,
    quiet: Quiet = False,
) -> None:
    """Judge a report against limits; exit 0 when every rule passes, 1 when one fails, 2 on bad input.

    Limits come from the [bold]\\[tool.ondevice-audit.gate][/bold] table in the nearest pyproject.toml (or --config);
    flags replace the file's value for their key. With $GITHUB_STEP_SUMMARY set, the result is appended to it.
    A sweep folder gates every cell (a failed cell fails every rule) and prints only the failing checks unless
    --all; --junit and --gate-markdown always hold every check.
    """
    flags = go.GateFlags(
        fail_on_gate=True, config=config or config_alias, max_rb=max_rb, max_group_gap=max_group_gap,
        min_metric=min_metric, min_group_metric=min_group_metric, baseline=baseline, max_rb_increase=max_rb_increase,
        max_metric_drop=max_metric_drop, use_ci_bound=use_ci_bound, require_mcu_fit=require_mcu_fit, junit=junit,
        markdown=markdown or markdown_alias,
    )  # fmt: skip
    code = go.run_gate(load_reports(report), flags, console=stdout(), only_failures=report.is_dir() and not show_all)
    raise typer.Exit(code)


def load_reports(path: Path) -> Mapping[str, dict[str, Any] | NoReport]:
    """Reports to judge by variant name: one file is one variant named after its stem, a sweep one per cell."""
    from ondevice_audit.report.document import load_report
    from ondevice_audit.sweep.folder import SweepFolder

    if not path.is_dir():
        return {path.stem: load_report(path)}
    sweep = SweepFolder(path)
    return {cell: _load_cell(sweep.cell(cell)) for cell in sweep.cell_ids()}


def _load_cell(folder: CellFolder) -> dict[str, Any] | NoReport:
    """The cell's report, or why it has none: the first paragraph of error.txt holds the sweep's message."""
    from ondevice_audit.report.document import load_report

    if folder.report.is_file():
        return load_report(folder.report)
    error = folder.error
    if not error.is_file():
        return NoReport(CELL_UNFINISHED.format(folder=folder.path))
    message = " ".join(error.read_text(encoding="utf-8", errors="replace").split("\n\n", 1)[0].split())
    return NoReport(CELL_FAILED.format(error=message or EMPTY_ERROR))
