"""Options shared by several commands, declared once (``Annotated`` aliases) and turned into library options."""

from __future__ import annotations

import dataclasses
import sys
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ondevice_audit.cli._gate_options import GateFlags
from ondevice_audit.cli._params import MAX_SEED, OptionGroup, OptionSpec
from ondevice_audit.cli._progress import stderr
from ondevice_audit.errors import ExitCode, UsageError
from ondevice_audit.frontend import AudioFrontendSpec, ImageFrontendSpec
from ondevice_audit.metrics import METRICS
from ondevice_audit.outputs import check_output, write_text
from ondevice_audit.report import ReportFormatChoice
from ondevice_audit.scoring import ScoreOptions
from ondevice_audit.targets.mcu import DeploymentSettings

if TYPE_CHECKING:
    from ondevice_audit.frontend import FrontendSpec

__all__ = [
    "FRONTEND_OPTIONS",
    "FrontendChoice",
    "FrontendKind",
    "check_outputs",
    "emit_report",
    "finish",
]

_SCORING = "Scoring"
SCORING = ScoreOptions()
"""The scoring defaults, declared once in ``ScoreOptions`` (``metrics/defaults.py``)."""
NEGATIVE_LABELS = ",".join(SCORING.negative_labels)
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
Seed = Annotated[
    int,
    typer.Option(min=0, max=MAX_SEED, help="Seed for resampling; same seed, same numbers.", rich_help_panel=_SCORING),
]
Confidence = Annotated[float, typer.Option(help="Confidence level of intervals.", rich_help_panel=_SCORING)]
MaxGroups = Annotated[
    int,
    typer.Option(
        min=2, help="Refuse an attribute with more groups (usually an id column given as -g).", rich_help_panel=_SCORING
    ),
]
Format = Annotated[ReportFormatChoice, typer.Option("--format", "-f", help="Report format.", case_sensitive=False)]
ReportOrSweep = Annotated[
    Path,
    typer.Argument(
        metavar="REPORT.json|SWEEP", help="A report.json written by score or audit, or a sweep folder runs/NAME."
    ),
]
Output = Annotated[
    Path | None, typer.Option("--output", "-o", help="Write the report here instead of standard output.")
]


def _scoring(
    group: list[str],
    metric: str,
    negative_labels: str,
    min_group_size: int,
    bootstrap: int,
    permutations: int,
    seed: int,
    confidence: float,
    max_groups: int,
) -> ScoreOptions:
    return ScoreOptions(
        groups=tuple(group),
        metric=metric.lower(),
        negative_labels=tuple(x.strip() for x in negative_labels.split(",") if x.strip()),
        min_group_size=min_group_size,
        bootstrap=bootstrap,
        permutations=permutations,
        seed=seed,
        confidence=confidence,
        max_groups=max_groups,
    )


SCORING_OPTIONS = OptionGroup(
    "score_options",
    [
        OptionSpec("group", Group, ...),
        OptionSpec("metric", Metric, SCORING.metric),
        OptionSpec("negative_labels", NegativeLabels, NEGATIVE_LABELS),
        OptionSpec("min_group_size", MinGroupSize, SCORING.min_group_size),
        OptionSpec("bootstrap", Bootstrap, SCORING.bootstrap),
        OptionSpec("permutations", Permutations, SCORING.permutations),
        OptionSpec("seed", Seed, SCORING.seed),
        OptionSpec("confidence", Confidence, SCORING.confidence),
        OptionSpec("max_groups", MaxGroups, SCORING.max_groups),
    ],
    _scoring,
)
"""The scoring options of ``score`` and ``audit``, as one ``ScoreOptions``: ``@options_from(SCORING_OPTIONS)``."""


MCU_PANEL = "Microcontroller budget (TFLM arena and flash of a .tflite model)"


def _mcu(help: str) -> Any:
    return Annotated[str | None, typer.Option(help=help, rich_help_panel=MCU_PANEL)]


MCU_OPTIONS = OptionGroup(
    "mcu_budget",
    [
        OptionSpec("board", _mcu("A board's budget: nano33ble, esp32s3, pico, stm32f746disco."), None),
        OptionSpec("mcu_ram", _mcu("RAM budget, e.g. 256KiB (overrides the board's)."), None),
        OptionSpec("mcu_flash", _mcu("Flash budget, e.g. 1MiB (overrides the board's)."), None),
    ],
    DeploymentSettings,
)
"""``--board``/``--mcu-ram``/``--mcu-flash`` as one ``DeploymentSettings`` (its ``budget()`` is None without them)."""


def check_outputs(output: Path | None, gate_flags: GateFlags, inputs: Mapping[str, Path | None]) -> None:
    """Before any work: the report and gate files may be written, and none of them is an input or another's."""
    inputs = {**inputs, "gate baseline": gate_flags.baseline, "gate configuration": gate_flags.config}
    outputs = {"--output": output, "--junit": gate_flags.junit, "--gate-markdown": gate_flags.markdown}
    for option, path in outputs.items():
        check_output(path, option, inputs, outputs)


def emit_report(report: dict[str, Any], fmt: ReportFormatChoice, output: Path | None) -> None:
    """The report to ``output`` or stdout (colour only on a terminal)."""
    color = output is None and sys.stdout.isatty()
    text = fmt.to_format(color=color).format(report)
    if output is None:
        sys.stdout.write(text)
    else:
        write_text(output, text)


def finish(report: dict[str, Any], strict: bool) -> None:
    """Tell where failures went; with ``--strict`` any failed sample fails the run (exit 1)."""
    failed = report["samples"]["failed"]
    if failed:
        stderr.print(f"[yellow]{failed} of {report['samples']['total']} samples could not be scored[/yellow]")
        if strict:
            stderr.print("[bold red]error:[/bold red] failed samples with --strict")
            raise typer.Exit(int(ExitCode.GATE_FAILED))


# How a model from elsewhere is read, shared by `audit` and `sweep --model`.
Labels = Annotated[
    Path | None, typer.Option(help="Class names, one per line in output order (models without metadata).")
]
TrustModel = Annotated[bool, typer.Option(help="Allow Keras models that run stored Python code (Lambda layers).")]


# The front-end: `audit` and `sweep --model` (a model without metadata), `train` (what the model will hear).
FRONTEND_PANEL = "Front-end"
FrontendPlugin = Annotated[
    str | None,
    typer.Option(help="Your own front-end: package.module:callable mapping a file path to the model input.",
                 rich_help_panel=FRONTEND_PANEL),
]  # fmt: skip


class FrontendKind(StrEnum):
    mfcc = "mfcc"
    logmel = "logmel"
    raw = "raw"
    image = "image"


_IMAGE = ImageFrontendSpec()


@dataclass(frozen=True)
class FrontendChoice:
    """``--features`` and the settings of its front-end, as given on the command line."""

    kind: FrontendKind | None
    audio: dict[str, Any]
    """``AudioFrontendSpec`` fields by name."""
    image_size: str
    color: str
    scale: str

    def spec(self, default_kind: FrontendKind | None = None) -> FrontendSpec | None:
        """The front-end these options describe; None without ``--features`` and ``default_kind`` (a model's
        metadata then says)."""
        kind = self.kind or default_kind
        if kind is None:
            return None
        if kind is FrontendKind.image:
            height, _, width = self.image_size.lower().partition("x")
            if not (height.isdigit() and width.isdigit()):
                raise UsageError(f"--image-size {self.image_size!r} must look like 96x96")
            return ImageFrontendSpec(height=int(height), width=int(width), color=self.color, scale=self.scale)  # type: ignore[arg-type]
        return AudioFrontendSpec(kind=kind.value, **self.audio)  # type: ignore[arg-type]


def _audio_options() -> list[OptionSpec]:
    """One option per ``AudioFrontendSpec`` field that declares one (its metadata), default and help from there."""
    hints = typing.get_type_hints(AudioFrontendSpec)
    options = []
    for spec_field in dataclasses.fields(AudioFrontendSpec):
        if "option" not in spec_field.metadata:
            continue
        kind = hints[spec_field.name]
        kind = str if typing.get_origin(kind) is typing.Literal else kind
        option = typer.Option(help=spec_field.metadata["option"], rich_help_panel=FRONTEND_PANEL)
        options.append(OptionSpec(spec_field.name, Annotated[kind, option], spec_field.default))
    return options


def _choice(
    features: FrontendKind | None,
    image_size: str = f"{_IMAGE.height}x{_IMAGE.width}",
    color: str = _IMAGE.color,
    scale: str = _IMAGE.scale,
    **audio: Any,
) -> FrontendChoice:
    return FrontendChoice(features, audio, image_size, color, scale)


def _panel(help: str) -> Any:
    return typer.Option(help=help, rich_help_panel=FRONTEND_PANEL)


_FEATURES = OptionSpec(
    "features",
    Annotated[
        FrontendKind | None,
        _panel("The front-end (then its settings below); audit: for a model without metadata; train: default mfcc."),
    ],
    None,
)
_IMAGE_OPTIONS = (
    OptionSpec("image_size", Annotated[str, _panel("HEIGHTxWIDTH.")], f"{_IMAGE.height}x{_IMAGE.width}"),
    OptionSpec("color", Annotated[str, _panel("rgb or grayscale.")], _IMAGE.color),
    OptionSpec("scale", Annotated[str, _panel("unit, symmetric or none.")], _IMAGE.scale),
)
FRONTEND_OPTIONS = OptionGroup("frontend_choice", [_FEATURES, *_audio_options(), *_IMAGE_OPTIONS], _choice)
"""The front-end options of ``audit`` and ``sweep``: ``@options_from(FRONTEND_OPTIONS)``."""
AUDIO_FRONTEND_OPTIONS = OptionGroup("frontend_choice", [_FEATURES, *_audio_options()], _choice)
"""The same without the image settings, for ``train`` (which trains audio models)."""
NO_FRONTEND = FrontendChoice(None, {}, f"{_IMAGE.height}x{_IMAGE.width}", _IMAGE.color, _IMAGE.scale)
"""The value a command's ``frontend_choice`` parameter is declared with (the decorator always passes one)."""
