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

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import typer

from ondevice_audit.cli import _gate_options as go
from ondevice_audit.cli import app
from ondevice_audit.cli._progress import Quiet, stdout
from ondevice_audit.errors import UsageError
from ondevice_audit.gate import NoReport

__all__ = ["gate"]

NOT_A_SWEEP = "{path} is a folder but not a sweep (no sweep.json): pass a report.json or a sweep folder runs/NAME"
"""The name tests/cli/test_gate_cli.py still uses for ``NOT_A_SWEEP``."""
BAD_STATE = "{path}: not a sweep state file ({error})"
CELL_FAILED = "cell failed: {error}"
CELL_UNFINISHED = "cell not finished: {folder} holds neither report.json nor error.txt"
EMPTY_ERROR = "(error.txt is empty)"


@app.command()
def gate(
    report: Annotated[
        Path,
        typer.Argument(
            metavar="REPORT.json|SWEEP", help="A report.json written by score or audit, or a sweep folder runs/NAME."
        ),
    ],
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
    code = go.run_gate(
        load_reports(report),
        console=stdout(),
        config=config or config_alias,
        max_rb=max_rb,
        max_group_gap=max_group_gap,
        min_metric=min_metric,
        min_group_metric=min_group_metric,
        baseline=baseline,
        max_rb_increase=max_rb_increase,
        max_metric_drop=max_metric_drop,
        use_ci_bound=use_ci_bound,
        require_mcu_fit=require_mcu_fit,
        junit=junit,
        markdown=markdown or markdown_alias,
        only_failures=report.is_dir() and not show_all,
    )
    raise typer.Exit(code)


def load_reports(path: Path) -> Mapping[str, dict[str, Any] | NoReport]:
    """Reports to judge by variant name: one file is one variant named after its stem, a sweep one per cell."""
    from ondevice_audit.report.document import load_report
    from ondevice_audit.sweep.executor import SWEEP_FILE

    if not path.is_dir():
        return {path.stem: load_report(path)}
    state = path / SWEEP_FILE
    if not state.is_file():
        raise UsageError(NOT_A_SWEEP.format(path=path))
    try:
        cells = [str(cell["id"]) for cell in json.loads(state.read_text(encoding="utf-8"))["cells"]]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise UsageError(BAD_STATE.format(path=state, error=exc)) from None
    odd = next((cell for cell in cells if cell in ("", ".", "..") or Path(cell).name != cell), None)
    if odd is not None:
        raise UsageError(BAD_STATE.format(path=state, error=f"cell id {odd!r} is not a folder name"))
    return {cell: _load_cell(path / "cells" / cell) for cell in cells}


def _load_cell(folder: Path) -> dict[str, Any] | NoReport:
    """The cell's report, or why it has none: the first paragraph of error.txt holds the sweep's message."""
    from ondevice_audit.report.document import load_report

    if (folder / "report.json").is_file():
        return load_report(folder / "report.json")
    error = folder / "error.txt"
    if not error.is_file():
        return NoReport(CELL_UNFINISHED.format(folder=folder))
    message = " ".join(error.read_text(encoding="utf-8", errors="replace").split("\n\n", 1)[0].split())
    return NoReport(CELL_FAILED.format(error=message or EMPTY_ERROR))
