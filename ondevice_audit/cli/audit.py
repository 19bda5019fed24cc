"""``ondevice-audit audit``: run a model over a labelled dataset, then score per group."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated

import typer

from ondevice_audit.cli import _gate_options as go
from ondevice_audit.cli import _options as opt
from ondevice_audit.cli import app
from ondevice_audit.cli._progress import Quiet, RichProgress
from ondevice_audit.cli.targets import SshOption, WorkDir
from ondevice_audit.frontend import CHUNK_FILES
from ondevice_audit.report import ReportFormatChoice
from ondevice_audit.runtimes import RUNTIMES
from ondevice_audit.targets import TARGET_HELP, device_runner

_MCU = "Microcontroller budget (TFLM arena and flash of a .tflite model)"
_TARGETS = "Targets"


@app.command()
def audit(
    model: Annotated[Path, typer.Argument(help=".tflite, .onnx, .keras, .h5 or a SavedModel folder.")],
    data: Annotated[Path, typer.Option("--data", "-d", help="Manifest CSV: path, label, group columns, speaker.")],
    group: opt.Group,
    split_file: Annotated[
        Path | None,
        typer.Option(help="Score only the rows this file assigns to --split (train writes split.csv)."),
    ] = None,
    split: Annotated[str, typer.Option(help="Which split of --split-file to audit.")] = "test",
    runtime: Annotated[
        list[str] | None,
        typer.Option(
            help=f"Override the runtime: {', '.join(RUNTIMES)} (default: by model format); repeat to compare "
            f"runtimes. Through the device runner: {', '.join(r for r in device_runner.RUNTIMES if r not in RUNTIMES)} too."
        ),
    ] = None,
    metric: opt.Metric = "mcc",
    negative_labels: opt.NegativeLabels = "_unknown_,_silence_",
    min_group_size: opt.MinGroupSize = 30,
    bootstrap: opt.Bootstrap = 1000,
    permutations: opt.Permutations = 1000,
    seed: opt.Seed = 0,
    confidence: opt.Confidence = 0.95,
    labels: opt.Labels = None,
    frontend: opt.FrontendPlugin = None,
    features: opt.Features = None,
    sample_rate: opt.SampleRate = 16000,
    clip_seconds: opt.ClipSeconds = 1.0,
    n_mels: opt.NMels = 40,
    n_mfcc: opt.NMfcc = 10,
    frame_length_ms: opt.FrameLengthMs = 40.0,
    frame_step: opt.FrameStep = 0.5,
    window: opt.Window = "hann",
    image_size: opt.ImageSize = "32x32",
    color: opt.Color = "rgb",
    scale: opt.Scale = "unit",
    trust_model: opt.TrustModel = False,
    batch_size: Annotated[int, typer.Option(min=1, help="Inference batch size.")] = 64,
    board: Annotated[
        str | None,
        typer.Option(
            help="Check the model against a board: nano33ble, esp32s3, pico, stm32f746disco.", rich_help_panel=_MCU
        ),
    ] = None,  # fmt: skip
    mcu_ram: Annotated[str | None, typer.Option(help="RAM budget, e.g. 256KiB.", rich_help_panel=_MCU)] = None,
    mcu_flash: Annotated[str | None, typer.Option(help="Flash budget, e.g. 1MiB.", rich_help_panel=_MCU)] = None,
    max_samples_per_group: Annotated[
        int | None,
        typer.Option(min=1, help="Audit a seeded stratified subsample (quick checks on slow runtimes such as tflm)."),
    ] = None,
    strict: Annotated[bool, typer.Option(help="Exit 1 when any file failed (missing, corrupt, NaN output).")] = False,
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
    require_mcu_fit: go.RequireMcuFit = None,
    junit: go.Junit = None,
    gate_markdown: go.GateMarkdown = None,
    target: Annotated[
        list[str] | None,
        typer.Option(
            help=f"Where the model runs (repeatable; the first is the reference): {TARGET_HELP}.",
            rich_help_panel=_TARGETS,
        ),
    ] = None,
    reference: Annotated[
        Path | None,
        typer.Option(
            help="A base model (e.g. float32) to compare with: per group, clips it gets right and the "
            "audited model gets wrong.",
            rich_help_panel=_TARGETS,
        ),
    ] = None,
    ssh_option: SshOption = None,
    work_dir: WorkDir = None,
    target_batch: Annotated[
        int,
        typer.Option(
            min=1, help="Samples per batch sent to a target: the unit of retry and resume.", rich_help_panel=_TARGETS
        ),
    ] = CHUNK_FILES,
    retries: Annotated[
        int,
        typer.Option(
            min=0, help="Retries of a batch after a dropped connection (with backoff).", rich_help_panel=_TARGETS
        ),
    ] = 3,
    quiet: Quiet = False,
) -> None:
    """Audit a model on a labelled dataset: per-group metrics, reliability bias, model facts.

    Models exported by ondevice-audit carry their front-end and labels; others take --features (and its
    settings), --labels, or --frontend with your own Python callable.

    With --target (repeatable), several --runtime, or --reference, the model also runs there and the report
    compares the runs per group: the metric on each, flip rate and forgotten clips against the first run, the
    paired change in RB, latency and peak memory.
    """
    from ondevice_audit.audit import ModelOptions, TargetOptions, audit_model, audit_on_targets
    from ondevice_audit.targets.mcu import resolve_budget

    spec = opt.model_frontend_spec(
        features, sample_rate, clip_seconds, n_mels, n_mfcc, frame_length_ms, frame_step, window, image_size, color, scale
    )  # fmt: skip
    options = dataclasses.replace(
        opt.scoring_options(group, metric, negative_labels, min_group_size, bootstrap, permutations, seed, confidence),
        split_file=split_file,
        split=split if split_file else None,
        max_samples_per_group=max_samples_per_group,
    )
    runtimes = tuple(runtime or ())
    model_options = ModelOptions(
        runtime=runtimes[0] if len(runtimes) == 1 else None,
        frontend=spec,
        frontend_plugin=frontend,
        labels_file=labels,
        trust_model=trust_model,
        batch_size=batch_size,
        mcu_budget=resolve_budget(board, mcu_ram, mcu_flash),
    )
    if target or reference or len(runtimes) > 1:
        target_options = TargetOptions(
            targets=tuple(target or ("local",)),
            runtimes=runtimes,
            reference=reference,
            ssh_options=tuple(ssh_option or ()),
            work_dir=work_dir,
            batch_files=target_batch,
            retries=retries,
        )
        report = audit_on_targets(model, data, options, model_options, target_options, progress=RichProgress())
    else:
        report = audit_model(model, data, options, model_options, progress=RichProgress())
    opt.emit_report(report, fmt, output)
    opt.finish(report, strict)
    if fail_on_gate:
        raise typer.Exit(
            go.gate_after_report(
                report, config=gate_config, max_rb=max_rb, max_group_gap=max_group_gap, min_metric=min_metric,
                min_group_metric=min_group_metric, baseline=baseline, max_rb_increase=max_rb_increase,
                max_metric_drop=max_metric_drop, use_ci_bound=use_ci_bound, require_mcu_fit=require_mcu_fit,
                junit=junit, markdown=gate_markdown,
            )
        )  # fmt: skip
