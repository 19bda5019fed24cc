"""Options shared by several commands, declared once (``Annotated`` aliases) and turned into library options."""

from __future__ import annotations

import os
import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ondevice_audit.cli._progress import errors, is_quiet, stderr
from ondevice_audit.errors import ExitCode, UsageError
from ondevice_audit.frontend import AudioFrontendSpec, ImageFrontendSpec
from ondevice_audit.metrics import METRICS
from ondevice_audit.report import ReportFormatChoice

if TYPE_CHECKING:
    from ondevice_audit.audit import ScoreOptions
    from ondevice_audit.frontend import FrontendSpec

__all__ = ["FrontendKind", "audio_spec", "emit_report", "finish", "model_frontend_spec", "scoring_options"]

_SCORING = "Scoring"
Group = Annotated[
    list[str],
    typer.Option("--group", "-g", help="Group column (repeatable; two or more also give their intersection).",
                 rich_help_panel=_SCORING),
]  # fmt: skip
Metric = Annotated[
    str,
    typer.Option(help=f"Metric RB is computed on: {', '.join(METRICS)}.", rich_help_panel=_SCORING),
]
NegativeLabels = Annotated[
    str,
    typer.Option(help="Comma-separated classes that are not keywords, for FRR/FAR.", rich_help_panel=_SCORING),
]
MinGroupSize = Annotated[
    int, typer.Option(min=0, help="Smaller groups are shown but left out of RB.", rich_help_panel=_SCORING)
]
Bootstrap = Annotated[
    int, typer.Option(min=0, help="Bootstrap resamples for intervals (0: off).", rich_help_panel=_SCORING)
]
Permutations = Annotated[
    int, typer.Option(min=0, help="Permutations for the RB p-value (0: off).", rich_help_panel=_SCORING)
]
Seed = Annotated[int, typer.Option(help="Seed for resampling; same seed, same numbers.", rich_help_panel=_SCORING)]
Confidence = Annotated[float, typer.Option(help="Confidence level of intervals.", rich_help_panel=_SCORING)]
Format = Annotated[ReportFormatChoice, typer.Option("--format", "-f", help="Report format.", case_sensitive=False)]
Output = Annotated[
    Path | None, typer.Option("--output", "-o", help="Write the report here instead of standard output.")
]


def scoring_options(
    groups: list[str],
    metric: str,
    negative_labels: str,
    min_group_size: int,
    bootstrap: int,
    permutations: int,
    seed: int,
    confidence: float,
) -> ScoreOptions:
    from ondevice_audit.audit import ScoreOptions

    return ScoreOptions(
        groups=tuple(groups),
        metric=metric.lower(),
        negative_labels=tuple(x.strip() for x in negative_labels.split(",") if x.strip()),
        min_group_size=min_group_size,
        bootstrap=bootstrap,
        permutations=permutations,
        seed=seed,
        confidence=confidence,
    )


def emit_report(report: dict[str, Any], fmt: ReportFormatChoice, output: Path | None) -> None:
    """The report to ``output`` or stdout (colour only on a terminal without ``NO_COLOR``); under ``--quiet`` a
    table on stdout is cut to its verdict lines."""
    color = output is None and sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    if output is None and fmt is ReportFormatChoice.table and is_quiet():
        from ondevice_audit.report.table import verdict_lines

        text = "".join(line + "\n" for line in verdict_lines(report))
    else:
        text = fmt.to_format(color=color).format(report)
    if output is None:
        sys.stdout.write(text)
    else:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text)


def finish(report: dict[str, Any], strict: bool) -> None:
    """Tell where failures went; with ``--strict`` any failed sample fails the run (exit 1)."""
    failed = report["samples"]["failed"]
    if failed:
        stderr.print(f"[yellow]{failed} of {report['samples']['total']} samples could not be scored[/yellow]")
        if strict:
            errors.print("[bold red]error:[/bold red] failed samples with --strict")
            raise typer.Exit(int(ExitCode.GATE_FAILED))


# How a model from elsewhere is read, shared by `audit` and `sweep --model`.
Labels = Annotated[
    Path | None, typer.Option(help="Class names, one per line in output order (models without metadata).")
]
TrustModel = Annotated[bool, typer.Option(help="Allow Keras models that run stored Python code (Lambda layers).")]


# Audio front-end settings, shared by `train` (what the model will hear) and `audit` (for models without metadata).
_FRONTEND = "Front-end"
FrontendPlugin = Annotated[
    str | None,
    typer.Option(help="Your own front-end: package.module:callable mapping a file path to the model input.",
                 rich_help_panel=_FRONTEND),
]  # fmt: skip
SampleRate = Annotated[int, typer.Option(rich_help_panel=_FRONTEND)]
ClipSeconds = Annotated[float, typer.Option(rich_help_panel=_FRONTEND)]
NMels = Annotated[int, typer.Option(rich_help_panel=_FRONTEND)]
NMfcc = Annotated[int, typer.Option(rich_help_panel=_FRONTEND)]
FrameLengthMs = Annotated[float, typer.Option(rich_help_panel=_FRONTEND)]
FrameStep = Annotated[float, typer.Option(help="Hop as a fraction of the frame length.", rich_help_panel=_FRONTEND)]
Window = Annotated[str, typer.Option(help="hann or hamming.", rich_help_panel=_FRONTEND)]


class FrontendKind(StrEnum):
    mfcc = "mfcc"
    logmel = "logmel"
    raw = "raw"
    image = "image"


# A model's own front-end when it carries no ondevice-audit metadata (`audit`, `sweep --model`).
Features = Annotated[
    FrontendKind | None,
    typer.Option(help="The model's front-end, for a model without metadata (then its settings below).",
                 rich_help_panel=_FRONTEND),
]  # fmt: skip
ImageSize = Annotated[str, typer.Option(help="HEIGHTxWIDTH.", rich_help_panel=_FRONTEND)]
Color = Annotated[str, typer.Option(help="rgb or grayscale.", rich_help_panel=_FRONTEND)]
Scale = Annotated[str, typer.Option(help="unit, symmetric or none.", rich_help_panel=_FRONTEND)]


def audio_spec(
    kind: str,
    sample_rate: int,
    clip_seconds: float,
    n_mels: int,
    n_mfcc: int,
    frame_length_ms: float,
    frame_step: float,
    window: str,
) -> AudioFrontendSpec:
    return AudioFrontendSpec(
        kind=kind,  # type: ignore[arg-type]
        sample_rate=sample_rate,
        clip_seconds=clip_seconds,
        n_mels=n_mels,
        n_mfcc=n_mfcc,
        frame_length_ms=frame_length_ms,
        frame_step=frame_step,
        window=window,  # type: ignore[arg-type]
    )


def model_frontend_spec(
    features: FrontendKind | None,
    sample_rate: int,
    clip_seconds: float,
    n_mels: int,
    n_mfcc: int,
    frame_length_ms: float,
    frame_step: float,
    window: str,
    image_size: str,
    color: str,
    scale: str,
) -> FrontendSpec | None:
    """The front-end ``--features`` and its settings describe; None without ``--features`` (the model's metadata
    then says)."""
    if features is None:
        return None
    if features is FrontendKind.image:
        height, _, width = image_size.lower().partition("x")
        if not (height.isdigit() and width.isdigit()):
            raise UsageError(f"--image-size {image_size!r} must look like 96x96")
        return ImageFrontendSpec(height=int(height), width=int(width), color=color, scale=scale)  # type: ignore[arg-type]
    return audio_spec(features.value, sample_rate, clip_seconds, n_mels, n_mfcc, frame_length_ms, frame_step, window)
