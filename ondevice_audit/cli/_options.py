"""Options shared by several commands, declared once (``Annotated`` aliases) and turned into library options."""

from __future__ import annotations

import dataclasses
import os
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
from ondevice_audit.cli._progress import errors, is_quiet, stderr
from ondevice_audit.errors import ExitCode, UsageError
from ondevice_audit.frontend import AudioFrontendSpec, ImageFrontendSpec, MicroFrontendSpec
from ondevice_audit.label_map import LabelMap
from ondevice_audit.metrics.definitions import DETECTION_METRICS, METRICS
from ondevice_audit.model_io import DEFAULT_HOP_MS, MAX_PAD_MS, DetectorOptions
from ondevice_audit.outputs import check_output, write_text
from ondevice_audit.report import ReportFormatChoice
from ondevice_audit.runtimes import GRAPH_OPTIMIZATIONS
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
    str | None,
    typer.Option(
        help=f"Metric RB is computed on. Classifiers: {', '.join(METRICS)} (default mcc); detectors: "
        f"{', '.join(DETECTION_METRICS)} (default tpr).",
        rich_help_panel=_SCORING,
        show_default=False,
    ),
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
    Path | None,
    typer.Option("--report-file", "-o", "--output", help="Write the report here instead of standard output."),
]
ReportFile = Annotated[
    Path | None, typer.Option("--report-file", "-o", help="Write the report here instead of standard output.")
]
"""``audit``'s: there ``--output`` names the model output to score (a model with several)."""


def _scoring(
    group: list[str],
    metric: str | None,
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
        metric=None if metric is None else metric.lower(),
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
        OptionSpec("metric", Metric, None),
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


DETECTOR_PANEL = "Detectors (wake words)"


@dataclass(frozen=True)
class TaskChoice:
    """``--task`` and the detector settings, as given."""

    task: str | None
    detector: DetectorOptions

    def detector_or_none(self) -> DetectorOptions | None:
        """For scores (no model to say its task): the detector settings when the task is ``detect``; a
        one-line error when they are given without it."""
        if self.task == "detect":
            return self.detector
        if self.task not in (None, "classify"):
            raise UsageError(f"--task {self.task!r}: choose classify or detect")
        if dataclasses.replace(self.detector, threshold=None) != DetectorOptions():
            raise UsageError("--positive-label, --at-far, --at-fa-per-hour and --stream are for detectors: "
                             "add --task detect")  # fmt: skip
        return None


def _detector_option(help: str, *flags: str, **extra: Any) -> Any:
    return typer.Option(*flags, help=help, rich_help_panel=DETECTOR_PANEL, **extra)


def _task(task: str | None, positive_label: str | None, threshold: float | None, at_far: float | None,
          at_fa_per_hour: float | None, output_is_logit: bool, **stream: Any) -> TaskChoice:  # fmt: skip
    return TaskChoice(task, DetectorOptions(positive_label, threshold, at_far, at_fa_per_hour, output_is_logit,
                                            **stream))  # fmt: skip


_TASK_OPTIONS = [
    OptionSpec("task", Annotated[str | None, _detector_option(
        "classify (one output per class) or detect (one phrase's probability); default: the model's metadata, "
        "else classify.")], None),
    OptionSpec("positive_label", Annotated[str | None, _detector_option(
        "detect: the label of the clips that say the phrase; every other clip is a negative.")], None),
    OptionSpec("threshold", Annotated[float | None, _detector_option(
        "detect: accept a clip when its probability is at least this (default 0.5); score: the cutoff of a "
        "1/0 score column.")], None),
    OptionSpec("at_far", Annotated[float | None, _detector_option(
        "detect: the threshold at which this share of the population's negatives is accepted, for every group.")], None),
    OptionSpec("at_fa_per_hour", Annotated[float | None, _detector_option(
        "detect: the threshold with this many false accepts per hour of the population's negative audio.")], None),
    OptionSpec("output_is_logit", Annotated[bool, _detector_option(
        "detect: the output is a logit; a sigmoid makes it a probability.", "--output-is-logit")], False),
]  # fmt: skip
_STREAM = OptionSpec("stream", Annotated[bool | None, _detector_option(
    "detect: feed each clip a window of frames at a time, state kept between calls and reset between clips "
    "(default: when the model keeps state or takes fewer frames than a clip); on a --target too, where the "
    "device makes the calls; explain refuses streaming models.", "--stream/--no-stream")], None)  # fmt: skip
_STREAM_OPTIONS = [
    _STREAM,
    OptionSpec("smooth", Annotated[int, _detector_option(
        "detect, streaming: average the last N calls' probabilities, as wake-word engines do.", min=1)], 1),
    OptionSpec("pad_ms", Annotated[float, _detector_option(
        f"detect, streaming: silence before and after each clip, for the model's state to settle (at most "
        f"{MAX_PAD_MS:g}).", min=0.0, max=MAX_PAD_MS)], 0.0),
    OptionSpec("hop_ms", Annotated[float | None, _detector_option(
        f"detect, streaming a stateless model: time between windows (default {DEFAULT_HOP_MS:g}).", min=0.0)], None),
]  # fmt: skip
TASK_OPTIONS = OptionGroup("task_choice", _TASK_OPTIONS, _task)
"""``--task`` and how a detector is scored, for ``score``: one ``TaskChoice``."""
AUDIT_TASK_OPTIONS = OptionGroup("task_choice", [*_TASK_OPTIONS, *_STREAM_OPTIONS], _task)
"""The same with streaming, for ``audit``."""
EXPLAIN_TASK_OPTIONS = OptionGroup("task_choice", [*_TASK_OPTIONS, _STREAM], _task)
"""For ``explain``, which explains stateless models: ``--stream`` is there to be refused in one line."""
NO_TASK = TaskChoice(None, DetectorOptions())


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
    outputs = {"--report-file": output, "--junit": gate_flags.junit, "--gate-markdown": gate_flags.markdown}
    for option, path in outputs.items():
        check_output(path, option, inputs, outputs)


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
        write_text(output, text)


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
ModelOutput = Annotated[
    str | None,
    typer.Option("--output", metavar="NAME|INDEX",
                 help="The model output to score, by name or index, when it has several (recorded in the report)."),
]  # fmt: skip
LabelMapOption = Annotated[
    str | None,
    typer.Option("--label-map", metavar="MODEL=DATA[,...]|FILE",
                 help="Count the model's classes as the data's labels: MODEL=DATA pairs (several classes may map onto "
                 "one label, e.g. left=_unknown_,right=_unknown_), or a CSV file with the header model_class,data_label. "
                 "Unnamed classes keep their names; recorded in the report."),
]  # fmt: skip


def label_map(value: str | None) -> LabelMap | None:
    """``--label-map`` parsed (a one-line error for a malformed one)."""
    return None if value is None else LabelMap.parse(value)
# an Enum built from the runtime's list (declared once there); mypy only follows Enums written as classes
GraphOptimization = StrEnum("GraphOptimization", {level: level for level in GRAPH_OPTIMIZATIONS})  # type: ignore[misc]
Threads = Annotated[
    int | None,
    typer.Option(min=1, help="Threads the runtime computes with (default: LiteRT 1, ONNX Runtime one per usable CPU, "
                 "TensorFlow its own; TFLM is single-threaded). Every report states the count that ran."),
]  # fmt: skip
GraphOptimizationLevel = Annotated[
    GraphOptimization | None,
    typer.Option("--graph-optimization", help="ONNX Runtime's graph optimization level, recorded in the report "
                 "(default: all, ONNX Runtime's own).", case_sensitive=False, show_default=False),
]  # fmt: skip


# The front-end: `audit` and `sweep --model` (a model without metadata), `train` (what the model will hear).
FRONTEND_PANEL = "Front-end"
FrontendPlugin = Annotated[
    str | None,
    typer.Option(help="Your own front-end, a callable mapping a file path to the model input: path/to/file.py:callable "
                 "(loaded from that file; no PYTHONPATH needed) or package.module:callable (found on PYTHONPATH). Its "
                 "import output is hidden unless --debug; its file's sha256 is recorded in the report.",
                 rich_help_panel=FRONTEND_PANEL),
]  # fmt: skip


class FrontendKind(StrEnum):
    mfcc = "mfcc"
    logmel = "logmel"
    raw = "raw"
    micro = "micro"
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
            return ImageFrontendSpec(height=int(height), width=int(width), color=self.color, scale=self.scale)  # type: ignore[arg-type]  # Typer checked the choices
        cls = MicroFrontendSpec if kind is FrontendKind.micro else AudioFrontendSpec
        own = {f.name for f in dataclasses.fields(cls)}
        settings = {name: value for name, value in self.audio.items() if name in own}
        return cls(**settings) if cls is MicroFrontendSpec else cls(kind=kind.value, **settings)  # type: ignore[arg-type]  # Typer checked the choices


def _audio_options() -> list[OptionSpec]:
    """One option per audio front-end field that declares one (its metadata), default and help from there; the
    MFCC/log-mel and the micro front-end share ``--sample-rate`` and ``--clip-seconds``."""
    options: list[OptionSpec] = []
    for cls in (AudioFrontendSpec, MicroFrontendSpec):
        known = {option.name for option in options}
        options += [option for option in _spec_options(cls) if option.name not in known]
    return options


def _spec_options(cls: type) -> list[OptionSpec]:
    hints = typing.get_type_hints(cls)
    options = []
    for spec_field in dataclasses.fields(cls):
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
