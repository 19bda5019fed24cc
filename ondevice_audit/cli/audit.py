"""``ondevice-audit audit``: run a model over a labelled dataset, then score per group."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from ondevice_audit.audit import ModelOptions, audit_model
from ondevice_audit.cli import _options as opt
from ondevice_audit.cli import app
from ondevice_audit.cli._progress import RichProgress
from ondevice_audit.errors import UsageError
from ondevice_audit.frontend import AudioFrontendSpec, FrontendSpec, ImageFrontendSpec
from ondevice_audit.report import ReportFormatChoice
from ondevice_audit.runtimes import RUNTIMES

_FRONTEND = "Front-end (only for models without ondevice-audit metadata)"


class Features(StrEnum):
    mfcc = "mfcc"
    logmel = "logmel"
    raw = "raw"
    image = "image"


def _image_size(text: str) -> tuple[int, int]:
    height, _, width = text.lower().partition("x")
    if not (height.isdigit() and width.isdigit()):
        raise UsageError(f"--image-size {text!r} must look like 96x96")
    return int(height), int(width)


@app.command()
def audit(
    model: Annotated[Path, typer.Argument(help=".tflite, .onnx, .keras, .h5 or a SavedModel folder.")],
    data: Annotated[Path, typer.Option("--data", "-d", help="Manifest CSV: path, label, group columns, speaker.")],
    group: opt.Group,
    runtime: Annotated[
        str | None, typer.Option(help=f"Override the runtime: {', '.join(RUNTIMES)} (default: by model format).")
    ] = None,
    metric: opt.Metric = "mcc",
    negative_labels: opt.NegativeLabels = "_unknown_,_silence_",
    min_group_size: opt.MinGroupSize = 30,
    bootstrap: opt.Bootstrap = 1000,
    permutations: opt.Permutations = 1000,
    seed: opt.Seed = 0,
    confidence: opt.Confidence = 0.95,
    labels: Annotated[
        Path | None, typer.Option(help="Class names, one per line in output order (models without metadata).")
    ] = None,
    frontend: Annotated[
        str | None,
        typer.Option(
            help="Your own front-end: package.module:callable mapping a file path to the model input.",
            rich_help_panel=_FRONTEND,
        ),
    ] = None,  # fmt: skip
    features: Annotated[Features | None, typer.Option(rich_help_panel=_FRONTEND)] = None,
    sample_rate: Annotated[int, typer.Option(rich_help_panel=_FRONTEND)] = 16000,
    clip_seconds: Annotated[float, typer.Option(rich_help_panel=_FRONTEND)] = 1.0,
    n_mels: Annotated[int, typer.Option(rich_help_panel=_FRONTEND)] = 40,
    n_mfcc: Annotated[int, typer.Option(rich_help_panel=_FRONTEND)] = 10,
    frame_length_ms: Annotated[float, typer.Option(rich_help_panel=_FRONTEND)] = 40.0,
    frame_step: Annotated[
        float, typer.Option(help="Hop as a fraction of the frame length.", rich_help_panel=_FRONTEND)
    ] = 0.5,
    window: Annotated[str, typer.Option(help="hann or hamming.", rich_help_panel=_FRONTEND)] = "hann",
    image_size: Annotated[str, typer.Option(help="HEIGHTxWIDTH.", rich_help_panel=_FRONTEND)] = "32x32",
    color: Annotated[str, typer.Option(help="rgb or grayscale.", rich_help_panel=_FRONTEND)] = "rgb",
    scale: Annotated[str, typer.Option(help="unit, symmetric or none.", rich_help_panel=_FRONTEND)] = "unit",
    trust_model: Annotated[
        bool, typer.Option(help="Allow Keras models that run stored Python code (Lambda layers).")
    ] = False,
    batch_size: Annotated[int, typer.Option(min=1, help="Inference batch size.")] = 64,
    strict: Annotated[bool, typer.Option(help="Exit 1 when any file failed (missing, corrupt, NaN output).")] = False,
    fmt: opt.Format = ReportFormatChoice.table,
    output: opt.Output = None,
) -> None:
    """Audit a model on a labelled dataset: per-group metrics, reliability bias, model facts.

    Models exported by ondevice-audit carry their front-end and labels; others take --features (and its
    settings), --labels, or --frontend with your own Python callable.
    """
    spec: FrontendSpec | None = None
    if features is Features.image:
        height, width = _image_size(image_size)
        spec = ImageFrontendSpec(height=height, width=width, color=color, scale=scale)  # type: ignore[arg-type]
    elif features is not None:
        spec = AudioFrontendSpec(
            kind=features.value,  # type: ignore[arg-type]
            sample_rate=sample_rate,
            clip_seconds=clip_seconds,
            n_mels=n_mels,
            n_mfcc=n_mfcc,
            frame_length_ms=frame_length_ms,
            frame_step=frame_step,
            window=window,  # type: ignore[arg-type]
        )
    options = opt.scoring_options(group, metric, negative_labels, min_group_size, bootstrap, permutations, seed,
                                  confidence)  # fmt: skip
    model_options = ModelOptions(
        runtime=runtime,
        frontend=spec,
        frontend_plugin=frontend,
        labels_file=labels,
        trust_model=trust_model,
        batch_size=batch_size,
    )
    report = audit_model(model, data, options, model_options, progress=RichProgress())
    opt.emit_report(report, fmt, output)
    opt.finish(report, strict)
