"""``ondevice-audit gate``: exit 1 when a report breaks a limit on reliability bias or a metric.

The result table goes to standard output: it is what this command produces, so ``gate ... | tee`` keeps
it, while errors stay on stderr. The exit code is the verdict (0 pass, 1 a rule failed, 2 bad input).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from ondevice_audit.cli import _gate_options as go
from ondevice_audit.cli import app
from ondevice_audit.errors import UsageError
from ondevice_audit.report.document import load_report

__all__ = ["gate"]

SWEEP_NOT_SUPPORTED = (
    "{path} is a folder: gating a sweep (runs/NAME/cells/*/report.json) is not supported yet; pass one report.json"
)


@app.command()
def gate(
    report: Annotated[Path, typer.Argument(help="A report.json written by score or audit.")],
    config: Annotated[
        Path | None, typer.Option("--config", help="TOML file with the gate settings (instead of pyproject.toml).")
    ] = None,
    max_rb: go.MaxRb = None,
    max_group_gap: go.MaxGroupGap = None,
    min_metric: go.MinMetric = None,
    min_group_metric: go.MinGroupMetric = None,
    baseline: go.Baseline = None,
    max_rb_increase: go.MaxRbIncrease = None,
    max_metric_drop: go.MaxMetricDrop = None,
    use_ci_bound: go.UseCiBound = None,
    junit: go.Junit = None,
    markdown: Annotated[Path | None, typer.Option("--markdown", help="Write the gate result as Markdown.")] = None,
) -> None:
    """Judge a report against limits; exit 0 when every rule passes, 1 when one fails, 2 on bad input.

    Limits come from the [bold]\\[tool.ondevice-audit.gate][/bold] table in the nearest pyproject.toml (or --config);
    flags replace the file's value for their key. With $GITHUB_STEP_SUMMARY set, the result is appended to it.
    """
    code = go.run_gate(
        _load_reports(report),
        console=Console(),
        config=config,
        max_rb=max_rb,
        max_group_gap=max_group_gap,
        min_metric=min_metric,
        min_group_metric=min_group_metric,
        baseline=baseline,
        max_rb_increase=max_rb_increase,
        max_metric_drop=max_metric_drop,
        use_ci_bound=use_ci_bound,
        junit=junit,
        markdown=markdown,
    )
    raise typer.Exit(code)


def _load_reports(path: Path) -> dict[str, dict[str, Any]]:
    """Reports to judge by variant name; one file is one variant named after its stem."""
    if path.is_dir():
        raise UsageError(SWEEP_NOT_SUPPORTED.format(path=path))
    return {path.stem: load_report(path)}
