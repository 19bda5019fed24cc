"""Gate flags declared once, and the gate run shared by ``gate`` and ``--fail-on-gate``.

``score``, ``audit`` and ``sweep`` take every flag as one ``GateFlags`` and can gate what they just wrote::

    @options_from(go.GATE_OPTIONS)
    def audit(..., gate_flags: go.GateFlags = go.NO_GATE):
        ...
        go.gate_after_report(report, gate_flags)
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ondevice_audit.cli._params import OptionGroup, OptionSpec
from ondevice_audit.cli._progress import errors, is_quiet
from ondevice_audit.errors import ExitCode, UsageError
from ondevice_audit.gate import SMALL_GROUP_N, GateResult, GateSettings, NoReport, evaluate, load_settings
from ondevice_audit.gate.config import parse_max_rb
from ondevice_audit.gate.junit import to_junit
from ondevice_audit.gate.markdown import to_markdown

__all__ = [
    "GATE_OPTIONS",
    "NO_GATE",
    "Baseline",
    "ConfigAlias",
    "FailOnGate",
    "GateConfig",
    "GateFlags",
    "GateMarkdown",
    "Junit",
    "MaxGroupGap",
    "MaxMetricDrop",
    "MaxRb",
    "MarkdownAlias",
    "MaxRbIncrease",
    "MinGroupMetric",
    "MinMetric",
    "RequireMcuFit",
    "UseCiBound",
    "gate_after_report",
    "print_result",
    "run_gate",
]

STEP_SUMMARY_ENV = "GITHUB_STEP_SUMMARY"
CANNOT_WRITE = "cannot write {path}: {error}"

_GATE = "Gate"
MaxRb = Annotated[
    list[str] | None,
    typer.Option(
        "--max-rb",
        metavar="X|ATTR=X",
        rich_help_panel=_GATE,
        help="Fail when RB exceeds X: for every attribute, or with ATTR=X for one (repeatable).",
    ),
]
MaxGroupGap = Annotated[
    float | None,
    typer.Option(
        "--max-group-gap",
        rich_help_panel=_GATE,
        help="Fail when best minus worst group metric (groups in RB) exceeds this.",
    ),
]
MinMetric = Annotated[
    float | None,
    typer.Option("--min-metric", rich_help_panel=_GATE, help="Fail when the overall metric is below this."),
]
MinGroupMetric = Annotated[
    float | None,
    typer.Option("--min-group-metric", rich_help_panel=_GATE, help="Fail when any group in RB is below this metric."),
]
Baseline = Annotated[
    Path | None,
    typer.Option(
        "--baseline",
        rich_help_panel=_GATE,
        help="An earlier report to compare with (--max-rb-increase, --max-metric-drop).",
    ),
]
MaxRbIncrease = Annotated[
    float | None, typer.Option("--max-rb-increase", rich_help_panel=_GATE, help="Fail when RB rose by more than this.")
]
MaxMetricDrop = Annotated[
    float | None,
    typer.Option(
        "--max-metric-drop", rich_help_panel=_GATE, help="Fail when the overall metric got worse by more than this."
    ),
]
UseCiBound = Annotated[
    bool | None,
    typer.Option(
        "--use-ci-bound/--no-use-ci-bound",
        rich_help_panel=_GATE,
        show_default=f"auto: on when a group in RB has < {SMALL_GROUP_N} clips",
        help="Gate the interval bound (RB upper, metric lower) instead of the point estimate.",
    ),
]
GateConfig = Annotated[
    Path | None,
    typer.Option(
        "--gate-config", rich_help_panel=_GATE, help="TOML file with the gate settings (instead of pyproject.toml)."
    ),
]
Junit = Annotated[
    Path | None, typer.Option("--junit", rich_help_panel=_GATE, help="Write the gate result as JUnit XML.")
]
GateMarkdown = Annotated[
    Path | None, typer.Option("--gate-markdown", rich_help_panel=_GATE, help="Write the gate result as Markdown.")
]
RequireMcuFit = Annotated[
    bool | None,
    typer.Option(
        "--require-mcu-fit",
        rich_help_panel=_GATE,
        help="Fail unless the report's MCU budget (audit --board, --mcu-ram, --mcu-flash) fits.",
    ),
]
# The same ideas under the names `gate` used to take: kept working, out of --help (one name per idea).
ConfigAlias = Annotated[Path | None, typer.Option("--config", hidden=True)]
MarkdownAlias = Annotated[Path | None, typer.Option("--markdown", hidden=True)]
FailOnGate = Annotated[
    bool,
    typer.Option(
        "--fail-on-gate", rich_help_panel=_GATE, help="Judge the report with the gate rules; exit 1 on a breach."
    ),
]


@dataclass(frozen=True)
class GateFlags:
    """The gate's flags as given; ``None`` leaves a setting to the gate file (``--gate-config``, pyproject.toml)."""

    fail_on_gate: bool = False
    config: Path | None = None
    max_rb: Sequence[str] | None = None
    max_group_gap: float | None = None
    min_metric: float | None = None
    min_group_metric: float | None = None
    baseline: Path | None = None
    max_rb_increase: float | None = None
    max_metric_drop: float | None = None
    use_ci_bound: bool | None = None
    require_mcu_fit: bool | None = None
    junit: Path | None = None
    markdown: Path | None = None

    def settings(self) -> GateSettings:
        """The rules the flags ask for, over those of the gate file."""
        flags = GateSettings(
            max_rb=parse_max_rb(self.max_rb) if self.max_rb else None,
            max_group_gap=self.max_group_gap,
            min_metric=self.min_metric,
            min_group_metric=self.min_group_metric,
            max_rb_increase=self.max_rb_increase,
            max_metric_drop=self.max_metric_drop,
            baseline=self.baseline,
            use_ci_bound=self.use_ci_bound,
            require_mcu_fit=self.require_mcu_fit or None,
        )
        return load_settings(self.config, flags)


def _flags(gate_config: Path | None = None, gate_markdown: Path | None = None, **flags: Any) -> GateFlags:
    return GateFlags(config=gate_config, markdown=gate_markdown, **flags)


GATE_OPTIONS = OptionGroup(
    "gate_flags",
    [
        OptionSpec("fail_on_gate", FailOnGate, False),
        OptionSpec("gate_config", GateConfig, None),
        OptionSpec("max_rb", MaxRb, None),
        OptionSpec("max_group_gap", MaxGroupGap, None),
        OptionSpec("min_metric", MinMetric, None),
        OptionSpec("min_group_metric", MinGroupMetric, None),
        OptionSpec("baseline", Baseline, None),
        OptionSpec("max_rb_increase", MaxRbIncrease, None),
        OptionSpec("max_metric_drop", MaxMetricDrop, None),
        OptionSpec("use_ci_bound", UseCiBound, None),
        OptionSpec("require_mcu_fit", RequireMcuFit, None),
        OptionSpec("junit", Junit, None),
        OptionSpec("gate_markdown", GateMarkdown, None),
    ],
    _flags,
)
"""``--fail-on-gate`` and the gate's flags, for ``score``, ``audit`` and ``sweep``: ``@options_from(GATE_OPTIONS)``."""
NO_GATE = GateFlags()


def gate_after_report(report: dict[str, Any], flags: GateFlags, *, console: Console = errors) -> int:
    """Gate the report just written; the exit code. Prints to stderr (``errors``: the verdict shows under
    --quiet too) since ``score``/``audit`` own stdout."""
    return run_gate({"report": report}, flags, console=console)


def run_gate(
    reports: Mapping[str, dict[str, Any] | NoReport],
    flags: GateFlags,
    *,
    console: Console,
    only_failures: bool = False,
) -> int:
    """Settings (file, then flags) → rules → outcomes; prints the table, writes the files, returns the exit code.

    ``only_failures`` shortens the printed table to the failing checks (a sweep's many cells); the JUnit and
    Markdown files always hold every check."""
    from ondevice_audit.report.document import load_report

    settings = flags.settings()
    baseline_report = None if settings.baseline is None else load_report(settings.baseline)
    result = evaluate(reports, settings.rules(), baseline_report)
    print_result(console, result, only_failures=only_failures or is_quiet())
    if flags.junit is not None:
        _write(flags.junit, to_junit(result))
    summary = to_markdown(result)
    if flags.markdown is not None:
        _write(flags.markdown, summary)
    step_summary = os.environ.get(STEP_SUMMARY_ENV)
    if step_summary:
        _write(Path(step_summary), summary + "\n", append=True)
    return int(ExitCode.OK if result.passed else ExitCode.GATE_FAILED)


def print_result(console: Console, result: GateResult, *, only_failures: bool = False) -> None:
    """One row per outcome. With several reports, a variant column names each report once at the head of its
    rows, a rule between reports; ``only_failures`` keeps the failing rows and says how many are hidden."""
    variants = list(dict.fromkeys(o.variant for o in result.outcomes))
    shown = [o for o in result.outcomes if not o.passed] if only_failures else list(result.outcomes)
    table = Table(title="gate", title_justify="left")
    columns = ["rule", "attribute", "value", "limit", "bound", "result", "reason"]
    several = len(variants) > 1
    for column in ["variant", *columns] if several else columns:
        table.add_column(column, justify="right" if column in ("value", "limit") else "left")
    previous = None
    for o in shown:
        if several and previous is not None and o.variant != previous:
            table.add_section()
        cells = [escape(o.variant) if o.variant != previous else ""] if several else []
        previous = o.variant
        cells += [
            o.rule.kind.value,
            "(overall)" if o.attribute is None else escape(o.attribute),
            "undefined" if o.value is None else f"{o.value:.4g}",
            f"{o.limit:.4g}",
            o.bound.value,
            "[green]PASS[/green]" if o.passed else "[bold red]FAIL[/bold red]",
            escape(o.reason),
        ]
        table.add_row(*cells)
    if shown:
        console.print(table)
    hidden = len(result.outcomes) - len(shown)
    if hidden:
        console.print(f"{hidden} passing check(s) not shown; --all lists every check")
    reports = f" on {len(variants)} reports" if several else ""
    if result.passed:
        console.print(f"[bold green]gate passed[/bold green]: {len(result.outcomes)} checks{reports}")
    else:
        failed = len({o.variant for o in result.failures})
        on = f" on {failed} of {len(variants)} reports" if several else ""
        console.print(f"[bold red]gate failed[/bold red]: {len(result.failures)} of {len(result.outcomes)} checks{on}")


def _write(path: Path, text: str, append: bool = False) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a" if append else "w", encoding="utf-8") as file:
            file.write(text)
    except OSError as exc:
        raise UsageError(CANNOT_WRITE.format(path=path, error=exc.strerror or exc)) from None
