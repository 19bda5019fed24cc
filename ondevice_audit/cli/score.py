"""``ondevice-audit score``: per-group metrics and RB of predictions made anywhere."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ondevice_audit.cli import _gate_options as go
from ondevice_audit.cli import _options as opt
from ondevice_audit.cli import app
from ondevice_audit.cli._progress import Quiet, RichProgress
from ondevice_audit.report import ReportFormatChoice


@app.command()
def score(
    predictions: Annotated[Path, typer.Argument(help="CSV with label, prediction (or score columns), group columns.")],
    group: opt.Group,
    metric: opt.Metric = "mcc",
    negative_labels: opt.NegativeLabels = "_unknown_,_silence_",
    threshold: Annotated[float, typer.Option(help="Binary `score` column: positive when score >= threshold.")] = 0.5,
    min_group_size: opt.MinGroupSize = 30,
    bootstrap: opt.Bootstrap = 1000,
    permutations: opt.Permutations = 1000,
    seed: opt.Seed = 0,
    confidence: opt.Confidence = 0.95,
    strict: Annotated[bool, typer.Option(help="Exit 1 when any row could not be scored.")] = False,
    fmt: opt.Format = ReportFormatChoice.table,
    output: opt.Output = None,
    fail_on_gate: go.FailOnGate = False,
    gate_config: go.GateConfig = None,
    max_rb: go.MaxRb = None,
    max_group_gap: go.MaxGroupGap = None,
    min_metric: go.MinMetric = None,
    min_group_metric: go.MinGroupMetric = None,
    baseline: go.Baseline = None,
    max_rb_increase: go.MaxRbIncrease = None,
    max_metric_drop: go.MaxMetricDrop = None,
    use_ci_bound: go.UseCiBound = None,
    junit: go.Junit = None,
    gate_markdown: go.GateMarkdown = None,
    quiet: Quiet = False,
) -> None:
    """Score predictions made anywhere (a device farm, another tool): per-group metrics and reliability bias.

    Layouts: a [bold]prediction[/bold] column; one [bold]score_<label>[/bold] column per class (argmax); or a
    binary [bold]score[/bold] column with --threshold. An optional [bold]speaker[/bold] column makes the
    bootstrap resample speakers instead of clips.
    """
    from ondevice_audit.audit import score_predictions

    options = opt.scoring_options(group, metric, negative_labels, min_group_size, bootstrap, permutations, seed,
                                  confidence)  # fmt: skip
    report = score_predictions(predictions, options, threshold=threshold, progress=RichProgress())
    opt.emit_report(report, fmt, output)
    opt.finish(report, strict)
    if fail_on_gate:
        raise typer.Exit(
            go.gate_after_report(
                report, config=gate_config, max_rb=max_rb, max_group_gap=max_group_gap, min_metric=min_metric,
                min_group_metric=min_group_metric, baseline=baseline, max_rb_increase=max_rb_increase,
                max_metric_drop=max_metric_drop, use_ci_bound=use_ci_bound, junit=junit, markdown=gate_markdown,
            )
        )  # fmt: skip
