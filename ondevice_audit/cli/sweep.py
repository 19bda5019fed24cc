"""``ondevice-audit sweep`` and ``compare``: run a design-choice matrix, and line up two sweeps."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.progress import Progress as RichBar
from rich.table import Table

import ondevice_audit.cli._gate_options as go
import ondevice_audit.cli._options as opt
from ondevice_audit._extras import require_extra
from ondevice_audit.cli._app import app
from ondevice_audit.cli._params import OptionGroup, OptionSpec, options_from
from ondevice_audit.cli._progress import Quiet, RichProgress, stderr, stdout
from ondevice_audit.cli.targets import SshOption
from ondevice_audit.errors import ExitCode, PipelineError
from ondevice_audit.outputs import check_output, check_output_folder, write_text
from ondevice_audit.targets.mcu import DeploymentSettings

if TYPE_CHECKING:  # the sweep package pulls in pandas and the training stack: imported when a command runs
    from ondevice_audit.progress import Advance
    from ondevice_audit.sweep import SweepResult, SweepStatus

DEFAULT_MAX_CELLS = 256
"""Cells a matrix may have without --yes (or a larger ``max_cells`` in the matrix)."""
CELLS_FAILED = "{failed} of {total} cells failed; their errors are in {out}/cells/<id>/error.txt"


class SweepDisplay(RichProgress):
    """One live bar for the whole sweep whose text says how many cells are done, cached, running and failed,
    and the time left; on a non-terminal (CI logs) one line per finished cell instead."""

    def __init__(self, console: Console = stderr, quiet: bool = False):
        super().__init__(console, quiet)
        self._bar: RichBar | None = None
        self._task: TaskID | None = None
        self._printed: str | None = None

    @contextmanager
    def task(self, description: str, total: int | None = None) -> Iterator[Advance]:
        if self.quiet or not self.console.is_terminal:
            with super().task(description, total) as advance:
                yield advance
            return
        columns = [BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("{task.description}")]
        with RichBar(*columns, console=self.console, transient=False) as bar:
            task_id = bar.add_task(description, total=total)
            self._bar, self._task = bar, task_id
            yield lambda n=1: bar.advance(task_id, n)
        self._bar = self._task = None

    def status(self, status: SweepStatus) -> None:
        left = "-" if status.seconds_left is None else _duration(status.seconds_left)
        text = (
            f"done {status.done} (cached {status.cached}) · running {status.running} · failed {status.failed} · "
            f"left ~{left}"
        )
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, description=text)
        elif not self.quiet and status.last and status.last != self._printed:
            self._printed = status.last
            self.console.print(f"[dim][{status.done + status.failed}/{status.total}] {status.last} · {text}[/dim]")


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(int(round(seconds)), 60)
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


def _execution(jobs: int, executor: str, address: str | None, cache: Path | None) -> dict[str, Any]:
    return {"jobs": jobs, "executor": executor, "address": address, "cache_dir": cache}


_EXECUTION_OPTIONS = OptionGroup(
    "execution",
    [
        OptionSpec("jobs", Annotated[int, typer.Option("--jobs", "-j", min=1, help="Independent tasks run at once.")], 1),
        OptionSpec("executor", Annotated[str, typer.Option(
            help="Where tasks run: local (--jobs processes on this machine) or ray (Ray tasks; "
            "pip install 'ondevice-audit[ray]').")], "local"),
        OptionSpec("address", Annotated[str | None, typer.Option(
            help="Ray cluster to use (auto, HOST:PORT, ray://HOST:PORT) instead of a local Ray instance; on several "
            "machines the dataset and --cache must be on a filesystem every node shares.")], None),
        OptionSpec("cache", Annotated[Path | None, typer.Option(
            help="Cache of features, models and files, shared by sweeps. [default: ~/.cache/ondevice-audit/sweep]")],
            None),
    ],
    _execution,
)  # fmt: skip
"""Where and how a sweep's tasks run, as ``run_sweep`` keywords."""


@app.command()
@options_from(opt.FRONTEND_OPTIONS)
@options_from(go.GATE_OPTIONS)
@options_from(opt.MCU_OPTIONS)
@options_from(_EXECUTION_OPTIONS)
def sweep(
    matrix: Annotated[Path, typer.Option("--matrix", "-m", help="Matrix TOML: every list is a factor.")],
    out: Annotated[Path, typer.Option("--out", help="Sweep folder: cells/, results.csv, summary.md, plot.")],
    model: Annotated[
        Path | None,
        typer.Option(help="Your trained model (.keras, .h5, .tflite, .onnx) as the base; overrides the matrix's."),
    ] = None,
    labels: opt.Labels = None,
    label_map: opt.LabelMapOption = None,
    model_output: opt.ModelOutput = None,
    frontend: opt.FrontendPlugin = None,
    trust_model: opt.TrustModel = False,
    ssh_option: SshOption = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue a sweep in --out (after a crash or interruption).")
    ] = False,
    within: Annotated[
        float, typer.Option(min=0.0, help="Pick the least biased cell within this % of the best metric.")
    ] = 1.0,
    quiet: Quiet = False,
    yes: Annotated[
        bool,
        typer.Option(
            "--yes", help=f"Run a matrix of more than {DEFAULT_MAX_CELLS} cells (or its max_cells) without asking."
        ),
    ] = False,
    frontend_choice: opt.FrontendChoice = opt.NO_FRONTEND,
    gate_flags: go.GateFlags = go.NO_GATE,
    mcu_budget: DeploymentSettings | None = None,
    execution: dict[str, Any] | None = None,
) -> None:
    """Train, prune, quantize and export every combination in MATRIX, audit each on held-out speakers, and
    tell which design choice drives reliability bias.

    Work is shared between cells (features per front-end, a base model per front-end x architecture x
    seed, ...) and cached by content, so a rerun or a [bold]--resume[/bold] only does what is missing.
    A budget ([bold]--board[/bold], [bold]--mcu-ram[/bold], [bold]--mcu-flash[/bold], overriding the matrix's
    [deployment] table) adds arena_bytes, flash_bytes, fits_mcu and mcu_reason per cell.
    [bold]--executor ray[/bold] runs the same tasks as Ray tasks (a local instance, or the cluster at
    [bold]--address[/bold]), with the same cache and results.
    [bold]--model[/bold] makes your trained model (Keras, TFLite or ONNX) the base instead of a recipe, with a
    baseline cell (the model as given) every other cell is compared with. Its front-end and labels come from its
    metadata, or [bold]--features[/bold] (and its settings) and [bold]--labels[/bold], or [bold]--frontend[/bold].
    """
    require_extra("train", "ondevice-audit sweep")
    from ondevice_audit.sweep import load_matrix, run_sweep

    started = time.perf_counter()
    own_frontend = frontend_choice.spec()
    parsed = load_matrix(matrix, model=model, labels=labels, trust_model=trust_model, frontend_plugin=frontend,
                         frontend_spec=own_frontend, label_map=opt.label_map(label_map),
                         output=model_output)  # fmt: skip
    parsed = dataclasses.replace(parsed, ssh_options=tuple(ssh_option or ()))
    if mcu_budget is not None and mcu_budget.budget() is not None:  # a bad board or size is refused here
        parsed = dataclasses.replace(parsed, deployment=mcu_budget)
    display = SweepDisplay(quiet=quiet)
    inputs = {"matrix": matrix, "model": model, "labels file": labels, "manifest": parsed.data.manifest}
    check_output_folder(out, "--out", inputs)
    opt.check_outputs(None, gate_flags, inputs)
    result = run_sweep(
        parsed,
        out,
        resume=resume,
        within=within,
        progress=display,
        on_status=display.status,
        max_cells=None if yes else DEFAULT_MAX_CELLS,
        **(execution or {}),
    )
    if not quiet:
        print_summary(stdout(), result, time.perf_counter() - started)
    if not result.parquet:
        display.note("results.parquet not written: it needs pyarrow (pip install pyarrow)")
    raise typer.Exit(_exit_code(result, gate_flags))


def _exit_code(result: SweepResult, gate_flags: go.GateFlags) -> int:
    """0, or 1 when ``--fail-on-gate`` judges a cell failing; failed cells are a pipeline failure (3), which
    outranks the gate's verdict: those cells were never judged on data."""
    gate = int(ExitCode.OK)
    if gate_flags.fail_on_gate:
        from ondevice_audit.cli.gate import load_reports

        gate = go.run_gate(load_reports(result.out), gate_flags, console=stderr, only_failures=True)
    failed = int((result.results["status"] == "failed").sum())
    if failed:
        every = "every cell failed: " if failed == len(result.results) else ""
        raise PipelineError(every + CELLS_FAILED.format(failed=failed, total=len(result.results), out=result.out))
    return gate


def _number(value: object, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "-"
    return f"{value:.{digits}g}" if isinstance(value, float) else str(value)


def _change(value: float | None, ci: tuple[float, float] | None) -> str:
    if value is None:
        return "-"
    return f"{value:+.3g}" + (f" [{ci[0]:+.3g}, {ci[1]:+.3g}]" if ci else "")


def print_summary(console: Console, result: SweepResult, seconds: float) -> None:
    import pandas as pd

    analysis = result.analysis
    metric = analysis.metric
    table = Table(title=f"Cells by RB ({analysis.ok} of {analysis.cells} finished)")
    table.add_column("cell", no_wrap=True)
    for factor in analysis.varied:
        table.add_column(factor.split(".")[-1])
    fits = analysis.budget is not None
    baseline = "flip_rate" in analysis.ranked.columns  # a user model's sweep: each cell against it as given
    against = [f"Δ{metric}", "ΔRB", "flips", "forgot"] if baseline else []
    for column in (metric, "RB [CI]", "KiB", "ms", *(["fits MCU"] if fits else []), *against):
        table.add_column(column, justify="right")
    for _, row in analysis.ranked.iterrows():
        interval = f"[{_number(row['rb_ci_low'], 2)}, {_number(row['rb_ci_high'], 2)}]"
        table.add_row(
            str(row["cell"]),
            *(_number(row[factor]) for factor in analysis.varied),
            _number(row[metric]),
            f"{_number(row['rb'])} {interval}",
            _number(row["size_bytes"] / 1024, 4),
            _number(row["latency_ms"], 2),
            *([("yes" if pd.notna(row["fits_mcu"]) and bool(row["fits_mcu"]) else "no")] if fits else []),
            *([_number(row["metric_delta"]), _number(row["rb_delta"]), _number(row["flip_rate"], 2),
               _number(row["forgotten"])] if baseline else []),
        )  # fmt: skip
    console.print(table)
    if baseline:
        console.print("[dim]Δ, flips (flip rate) and forgot (clips right on the baseline, wrong here): against the "
                      "baseline cell, the model as given.[/dim]")  # fmt: skip
    for layers in analysis.not_pruned:
        console.print(f"not pruned: {layers}", highlight=False)
    if analysis.effects:
        effects = Table(title="Which design choice drives bias (RB per level)")
        for column in ("factor", "mean RB per level", "spread", "F-test p", "MI"):
            effects.add_column(column)
        for e in analysis.effects:
            levels = ", ".join(f"{lv.level}: {lv.mean_rb:.3g}" for lv in e.levels)
            noise = {None: "", True: " (below noise)", False: " (above noise)"}[e.below_noise]
            effects.add_row(
                e.factor, levels, f"{e.spread:.3g}{noise}", _number(e.p_value), _number(e.mutual_information)
            )
        console.print(effects)
    if analysis.mitigation:
        changes = Table(title="What each mitigation changes, against none (otherwise-identical cells)")
        for column in ("mitigation", "pairs", "RB change [CI]", f"{metric} change [CI]"):
            changes.add_column(column)
        for m in analysis.mitigation:
            changes.add_row(m.level, str(len(m.pairs)), _change(m.rb_change, m.rb_ci),
                            _change(m.metric_change, m.metric_ci))  # fmt: skip
        console.print(changes)
        console.print(f"[dim]Intervals: {analysis.mitigation[0].resampling} over the test split.[/dim]")
    floor = "unknown (needs two or more seeds)" if analysis.noise_floor is None else f"{analysis.noise_floor:.3g}"
    console.print(f"Seed-to-seed noise floor of RB: {floor}")
    if analysis.budget is not None:
        console.print(f"Selection among the {analysis.fitting} cell(s) that fit {analysis.budget}:")
    console.print(
        f"Most accurate: {analysis.most_accurate or '-'} · least biased: {analysis.least_biased or '-'} · "
        f"least biased within {analysis.within:g} % of the best {metric}: {analysis.least_biased_within or '-'}"
    )
    console.print(f"Pareto front ({metric}, RB, size, latency): {', '.join(analysis.pareto) or '-'}")
    computed = sum(result.cache["misses"].values())
    hits = sum(result.cache["hits"].values())
    console.print(
        f"{computed} task(s) computed, {hits} from the cache, in {seconds:.1f} s. "
        f"Written to {result.out}: results.csv, summary.md, cells/"
    )


@app.command()
def compare(
    a: Annotated[Path, typer.Argument(help="A sweep folder or a report JSON (the baseline).")],
    b: Annotated[Path, typer.Argument(help="Another sweep folder, or another report JSON.")],
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Also write the pairs as CSV.")] = None,
    allow_different_data: Annotated[
        bool,
        typer.Option(
            "--allow-different-data", help="Compare two reports per group even when they scored different data."
        ),
    ] = False,
    quiet: Quiet = False,
) -> None:
    """What changed from A to B, B minus A: two sweeps cell by cell (matched on the factor levels they share),
    or two reports per group (metric, RB, size, latency) of the same data."""
    check_output(output, "--output", {"A": a, "B": b})
    if a.is_file() or b.is_file():
        _compare_reports(a, b, output, allow_different_data)
        return
    from ondevice_audit.sweep import compare_sweeps

    comparison = compare_sweeps(a, b)
    console = stdout()
    table = Table(title=f"{b} minus {a}: {comparison.metric} and RB over {comparison.bias_attribute}")
    columns = [str(column) for column in comparison.table.columns]
    for column in columns:
        table.add_column(column, justify="right" if column.endswith(("_a", "_b", "_delta")) else "left")
    for record in comparison.table.itertuples(index=False):
        table.add_row(
            *(
                f"{v:+.4g}" if name.endswith("_delta") and v == v else _number(v, 4)
                for name, v in zip(columns, record, strict=True)
            )
        )
    console.print(table)
    delta_metric = comparison.table[f"{comparison.metric}_delta"].mean()
    delta_rb = comparison.table["rb_delta"].mean()
    console.print(
        f"{len(comparison.table)} matched cell(s) on {', '.join(comparison.matched_on) or '-'}; mean change "
        f"{comparison.metric} {delta_metric:+.4g}, RB {delta_rb:+.4g}. Only in A: {comparison.only_a}, "
        f"only in B: {comparison.only_b}."
    )
    for factor, (level_a, level_b) in comparison.compared.items():
        console.print(f"compared: {factor} {level_a} -> {level_b}")
    for change in comparison.settings:
        console.print(f"[yellow]setting changed: {change}[/yellow]", highlight=False)
    if output is not None:
        _write_csv(output, comparison.table)


def _write_csv(path: Path, frame: Any) -> None:
    """A table as CSV, every text cell guarded against spreadsheet formulas (group names come from the data)."""
    from ondevice_audit.report.csv import safe_cell

    guarded = frame.apply(lambda column: column.map(lambda v: safe_cell(v) if isinstance(v, str) else v))
    write_text(path, guarded.to_csv(index=False))


def _compare_reports(a: Path, b: Path, output: Path | None, allow_different_data: bool) -> None:
    from ondevice_audit.report.compare import compare_reports
    from ondevice_audit.report.document import load_report

    comparison = compare_reports(load_report(a), load_report(b), allow_different_data=allow_different_data)
    for difference in comparison.data_differences:
        stderr.print(f"[yellow]warning: different data: {escape(difference)}[/yellow]", highlight=False)
    console = stdout()
    for title, frame in (
        (f"{comparison.metric} per group, {b.name} minus {a.name}", comparison.groups),
        ("reliability bias", comparison.bias),
        ("model", comparison.model),
    ):
        table = Table(title=title)
        for column in frame.columns:
            table.add_column(str(column), justify="left" if column in ("attribute", "group", "quantity") else "right")
        for record in frame.itertuples(index=False):
            table.add_row(*(escape(str(v)) if isinstance(v, str) else _number(v, 4) for v in record))
        console.print(table)
    if output is not None:
        _write_csv(output, comparison.groups)

