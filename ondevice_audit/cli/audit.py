"""``ondevice-audit audit``: run a model over a labelled dataset, then score per group."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

import ondevice_audit.cli._gate_options as go
import ondevice_audit.cli._options as opt
from ondevice_audit.cli._app import app
from ondevice_audit.cli._params import options_from
from ondevice_audit.cli._progress import Quiet, RichProgress
from ondevice_audit.cli.targets import TARGET_OPTIONS
from ondevice_audit.report import ReportFormatChoice
from ondevice_audit.runtimes import RUNTIMES
from ondevice_audit.scoring import ScoreOptions
from ondevice_audit.targets.runner_names import runner_runtimes

if TYPE_CHECKING:
    from ondevice_audit.audit import TargetOptions
    from ondevice_audit.targets.mcu import DeploymentSettings



_RUNTIME_HELP = (
    f"Override the runtime: {', '.join(RUNTIMES)} (default: by model format; litert is LiteRT's optimized kernels "
    "with XNNPACK, litert-builtin the same kernels without a delegate, litert-ref the reference kernels TFLM's "
    "share); repeat to compare runtimes. Through the device runner: "
    f"{', '.join(r for r in runner_runtimes() if r not in RUNTIMES)} too."
)


@app.command()
@options_from(opt.SCORING_OPTIONS)
@options_from(opt.FRONTEND_OPTIONS)
@options_from(go.GATE_OPTIONS)
@options_from(TARGET_OPTIONS)
@options_from(opt.MCU_OPTIONS)
@options_from(opt.AUDIT_TASK_OPTIONS)
def audit(
    model: Annotated[Path, typer.Argument(help=".tflite, .onnx, .keras, .h5 or a SavedModel folder.")],
    data: Annotated[Path, typer.Option("--data", "-d", help="Manifest CSV: path, label, group columns, speaker.")],
    split_file: Annotated[
        Path | None,
        typer.Option(help="Score only the rows this file assigns to --split (train writes split.csv)."),
    ] = None,
    split: Annotated[str, typer.Option(help="Which split of --split-file to audit.")] = "test",
    runtime: Annotated[list[str] | None, typer.Option(help=_RUNTIME_HELP)] = None,
    threads: opt.Threads = None,
    graph_optimization: opt.GraphOptimizationLevel = None,
    labels: opt.Labels = None,
    label_map: opt.LabelMapOption = None,
    model_output: opt.ModelOutput = None,
    frontend: opt.FrontendPlugin = None,
    trust_model: opt.TrustModel = False,
    batch_size: Annotated[int, typer.Option(min=1, help="Inference batch size.")] = 64,
    max_samples_per_group: Annotated[
        int | None,
        typer.Option(min=1, help="Audit a seeded stratified subsample (quick checks on slow runtimes such as tflm)."),
    ] = None,
    strict: Annotated[bool, typer.Option(help="Exit 1 when any file failed (missing, corrupt, NaN output).")] = False,
    fmt: opt.Format = ReportFormatChoice.table,
    output: opt.ReportFile = None,
    frontend_choice: opt.FrontendChoice = opt.NO_FRONTEND,
    gate_flags: go.GateFlags = go.NO_GATE,
    score_options: ScoreOptions = opt.SCORING,
    target_options: TargetOptions | None = None,
    mcu_budget: DeploymentSettings | None = None,
    task_choice: opt.TaskChoice = opt.NO_TASK,
    quiet: Quiet = False,
) -> None:
    """Audit a model on a labelled dataset: per-group metrics, reliability bias, model facts.

    Models exported by ondevice-audit carry their front-end and labels; others take --features (and its
    settings), --labels, or --frontend with your own Python callable.

    With --target (repeatable), several --runtime, or --reference, the model also runs there and the report
    compares the runs per group: the metric on each, flip rate and forgotten clips against the first run, the
    paired change in RB, latency and peak memory.
    """
    from ondevice_audit.audit import ModelOptions, audit_model

    assert target_options is not None  # TARGET_OPTIONS always passes one
    inputs = {"model": model, "manifest": data, "split file": split_file, "labels file": labels,
              "reference model": target_options.reference}  # fmt: skip
    opt.check_outputs(output, gate_flags, inputs)
    options = dataclasses.replace(score_options, split_file=split_file, split=split if split_file else None,
                                  max_samples_per_group=max_samples_per_group)  # fmt: skip
    runtimes = tuple(runtime or ())
    # a model's metadata may say it is a detector: model_io checks the detector settings against it
    model_options = ModelOptions(
        runtime=runtimes[0] if len(runtimes) == 1 else None, frontend=frontend_choice.spec(), frontend_plugin=frontend,
        labels_file=labels, label_map=opt.label_map(label_map), trust_model=trust_model, batch_size=batch_size,
        mcu_budget=mcu_budget.budget() if mcu_budget else None, task=task_choice.task, output=model_output,
        detector=task_choice.detector, threads=threads,
        graph_optimization=None if graph_optimization is None else str(graph_optimization.value),
    )  # fmt: skip
    target_options = dataclasses.replace(target_options, runtimes=runtimes if len(runtimes) > 1 else ())
    report = audit_model(model, data, options, model_options, target_options, progress=RichProgress())
    opt.emit_report(report, fmt, output)
    opt.finish(report, strict)
    if gate_flags.fail_on_gate:
        raise typer.Exit(go.gate_after_report(report, gate_flags))
