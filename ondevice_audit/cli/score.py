"""``ondevice-audit score``: per-group metrics and RB of predictions made anywhere."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

import ondevice_audit.cli._gate_options as go
import ondevice_audit.cli._options as opt
from ondevice_audit.cli._app import app
from ondevice_audit.cli._params import options_from
from ondevice_audit.cli._progress import Quiet, RichProgress
from ondevice_audit.report import ReportFormatChoice
from ondevice_audit.scoring import ScoreOptions


@app.command()
@options_from(opt.SCORING_OPTIONS)
@options_from(go.GATE_OPTIONS)
@options_from(opt.TASK_OPTIONS)
def score(
    predictions: Annotated[Path, typer.Argument(help="CSV with label, prediction (or score columns), group columns.")],
    strict: Annotated[bool, typer.Option(help="Exit 1 when any row could not be scored.")] = False,
    label_map: opt.LabelMapOption = None,
    fmt: opt.Format = ReportFormatChoice.table,
    output: opt.Output = None,
    score_options: ScoreOptions = opt.SCORING,
    gate_flags: go.GateFlags = go.NO_GATE,
    task_choice: opt.TaskChoice = opt.NO_TASK,
    quiet: Quiet = False,
) -> None:
    """Score predictions made anywhere (a device farm, another tool): per-group metrics and reliability bias.

    Layouts: a [bold]prediction[/bold] column; one [bold]score_<label>[/bold] column per class (argmax); or a
    binary [bold]score[/bold] column with --threshold. An optional [bold]speaker[/bold] column makes the
    bootstrap resample speakers instead of clips. [bold]--label-map[/bold] counts predicted classes named the
    model's way as the data's labels.
    """
    from ondevice_audit.audit import score_predictions

    opt.check_outputs(output, gate_flags, {"predictions file": predictions})
    detector = task_choice.detector_or_none()
    threshold = task_choice.detector.threshold
    report = score_predictions(predictions, score_options, 0.5 if threshold is None else threshold, RichProgress(),
                               detector, opt.label_map(label_map))  # fmt: skip
    opt.emit_report(report, fmt, output)
    opt.finish(report, strict)
    if gate_flags.fail_on_gate:
        raise typer.Exit(go.gate_after_report(report, gate_flags))
