"""How a model from anywhere is read: what it is for (task), its classes, its front-end, which output, streaming.

Models exported by this tool carry their front-end, class names and task in their metadata, so an audit needs
no flags. A model from elsewhere takes them from the command line (``--features``, ``--labels``, ``--task``,
``--output``); whatever is missing or ambiguous is a one-line error saying which flag settles it, never a
guess: a single-output model is not audited as a classifier, a model with several outputs is not read at
output 0 unasked, and a streaming detector is run a window at a time, its state reset between clips.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ondevice_audit._files import model_format
from ondevice_audit.errors import UsageError
from ondevice_audit.export.metadata import ModelMetadata
from ondevice_audit.frontend import AudioFrontendSpec, Frontend, FrontendSpec, MicroFrontendSpec, build_frontend
from ondevice_audit.label_map import LabelMap
from ondevice_audit.runtimes import LoadedModel, RuntimeOptions, load_runtime
from ondevice_audit.runtimes.streaming import DetectorOutput, StreamSettings
from ondevice_audit.targets.mcu import MCUBudget

if TYPE_CHECKING:  # the tasks load pandas and the metrics: imported when a model is read, not for --help
    from ondevice_audit.metrics.detection import OperatingPoint
    from ondevice_audit.tasks import ClassifierTask, DetectorTask

__all__ = [
    "DEFAULT_HOP_MS",
    "MAX_PAD_MS",
    "DetectorOptions",
    "ModelOptions",
    "ReadModel",
    "check_inputs",
    "read_model",
    "resolve_frontend",
    "resolve_labels",
]


DEFAULT_HOP_MS = 100.0
"""Between windows of a stateless model, when ``--hop-ms`` is not given."""
MAX_PAD_MS = 10_000.0
"""The most silence ``--pad-ms`` puts on each side of a clip: a model's state settles in well under a second,
and every clip's features grow with it (a mistyped 1e9 would ask for terabytes)."""


@dataclass(frozen=True)
class DetectorOptions:
    """How a detector is scored (``--task detect``) and streamed."""

    positive_label: str | None = None
    """The label of the phrase's clips; every other clip is a negative."""
    threshold: float | None = None
    at_far: float | None = None
    at_fa_per_hour: float | None = None
    output_is_logit: bool = False
    stream: bool | None = None
    """Feed each clip a window at a time; None: when the model keeps state, or takes fewer frames than a clip."""
    smooth: int = 1
    pad_ms: float = 0.0
    hop_ms: float | None = None
    """Between windows of a stateless model run over a longer clip; None: ``DEFAULT_HOP_MS``. A stateful model's
    windows follow one another (its state carries the past), so a hop given for one is refused, not ignored."""

    def point(self) -> OperatingPoint:
        from ondevice_audit.metrics.detection import OperatingPoint

        return OperatingPoint.of(self.threshold, self.at_far, self.at_fa_per_hour)


@dataclass(frozen=True)
class ModelOptions:
    """How a model is run: which runtime, and how files become its inputs when its metadata does not say."""

    runtime: str | None = None
    frontend: FrontendSpec | None = None
    """Overrides the front-end stored in the model's metadata."""
    frontend_plugin: str | None = None
    """``path/to/file.py:callable`` or ``package.module:callable``: the user's own file -> input function."""
    labels_file: Path | None = None
    label_map: LabelMap | None = None
    """Model class -> data label (``--label-map``), for a classifier whose classes the data names otherwise."""
    trust_model: bool = False
    batch_size: int = 64
    mcu_budget: MCUBudget | None = None
    """Check a .tflite model against a microcontroller's RAM/flash (TFLM arena and file size)."""
    task: str | None = None
    """``classify`` or ``detect``; None: the model's metadata says (classify when it does not)."""
    output: str | None = None
    """The output to score, by name or index, for a model with several."""
    detector: DetectorOptions = field(default_factory=DetectorOptions)
    threads: int | None = None
    """Threads every runtime computes with (``--threads``); None: each runtime's default."""
    graph_optimization: str | None = None
    """ONNX Runtime's graph optimization level (``--graph-optimization``); None: ``all``."""

    def runtime_options(self, stream: StreamSettings | None = None) -> RuntimeOptions:
        """How every run opens the model: which output, threads, graph optimization, streaming."""
        return RuntimeOptions(output=self.output, stream=stream, threads=self.threads,
                              graph_optimization=self.graph_optimization)  # fmt: skip


def resolve_frontend(metadata: ModelMetadata | None, options: ModelOptions) -> Frontend:
    """The user's plug-in, else an explicit spec, else the model's own metadata."""
    if options.frontend_plugin:
        from ondevice_audit.frontend.plugin import PluginFrontend

        return PluginFrontend(options.frontend_plugin)
    spec = options.frontend or (metadata.frontend if metadata else None)
    if spec is None:
        raise UsageError(
            "the model carries no front-end settings: pass --features (and its settings) or --frontend "
            "path/to/file.py:callable"
        )
    return build_frontend(spec)


def resolve_labels(metadata: ModelMetadata | None, options: ModelOptions) -> list[str] | None:
    """The class names: ``--labels``, else the metadata's; None when neither names them."""
    if options.labels_file:
        if not options.labels_file.is_file():
            raise UsageError(f"labels file not found: {options.labels_file}; check the path")
        labels = [line.strip() for line in options.labels_file.read_text().splitlines() if line.strip()]
        if not labels:
            raise UsageError(f"{options.labels_file}: no labels; write one class name per line, in output order")
        return labels
    if metadata and metadata.labels:
        return list(metadata.labels)
    return None


@dataclass(frozen=True)
class ReadModel:
    """Everything an audit needs to know of a model before it runs it."""

    task: ClassifierTask | DetectorTask
    frontend: Frontend
    runtime_options: RuntimeOptions
    notes: tuple[str, ...] = ()
    """What was decided for the user (streaming chosen from the model), to state in the report."""
    stream: dict[str, object] | None = None


def read_model(path: Path, metadata: ModelMetadata | None, options: ModelOptions) -> ReadModel:
    """Task, classes, front-end, output and streaming of ``path``, as its metadata and ``options`` say."""
    from ondevice_audit.tasks import TASKS, ClassifierTask, single_output_refusal

    task_name = options.task or (str(metadata.extra.get("task")) if metadata and metadata.extra.get("task") else None)
    if task_name is not None and task_name not in TASKS:
        raise UsageError(f"--task {task_name!r}: choose {' or '.join(TASKS)}")
    labels = resolve_labels(metadata, options)
    if (task_name or "classify") == "classify":
        _refuse_detector_options(options)
        if labels is None:
            if _probe(path, options).output_shape[-1:] == [1]:
                raise single_output_refusal(path.name)
            raise UsageError("the model carries no label names: pass --labels FILE (one class name per line, "
                             "in output order)")  # fmt: skip
        frontend = resolve_frontend(metadata, options)
        return ReadModel(ClassifierTask(tuple(labels), options.label_map), frontend, options.runtime_options())
    return _read_detector(path, options, labels, resolve_frontend(metadata, options), metadata)


def _refuse_detector_options(options: ModelOptions) -> None:
    given = options.detector != DetectorOptions()
    if given:
        raise UsageError("--positive-label, --threshold, --at-far, --stream and their settings are for detectors: "
                         "add --task detect")  # fmt: skip


def _refuse_label_map(options: ModelOptions) -> None:
    if options.label_map is not None:
        raise UsageError("--label-map maps a classifier's classes onto data labels; a detector scores one phrase "
                         "(--positive-label names its clips)")  # fmt: skip


def _read_detector(
    path: Path, options: ModelOptions, labels: list[str] | None, frontend: Frontend, metadata: ModelMetadata | None
) -> ReadModel:
    from ondevice_audit.tasks import DetectorTask

    _refuse_label_map(options)
    detector = options.detector
    # a model trained as a detector names its phrase; a --task detect on the command line names it there too
    recorded = metadata.extra.get("positive_label") if metadata and options.task is None else None
    positive = detector.positive_label or (str(recorded) if recorded else None)
    if not positive:
        raise UsageError("--task detect needs --positive-label LABEL: the label of the clips that say the phrase")
    probe = _probe(path, options)
    column = 0
    width = probe.output_shape[-1] if probe.output_shape else None
    if width == 2:
        if labels is None or positive not in labels:
            raise UsageError("the model's output has two columns (a two-class softmax): name its classes with "
                             "--labels FILE so the positive one is known")  # fmt: skip
        column = labels.index(positive)
    elif width not in (1, None):
        raise UsageError(f"the model's output has {width} columns, not one probability: choose the detector's output "
                         "with --output NAME|INDEX, or audit it as a classifier (--task classify)")  # fmt: skip
    output = DetectorOutput(column, detector.output_is_logit)
    frontend, stream, notes, described = _streaming(path, probe, frontend, detector, output)
    clip = getattr(getattr(frontend, "spec", None), "clip_seconds", None)
    seconds = None if clip is None else clip + 2 * detector.pad_ms / 1000
    task = DetectorTask(positive, detector.point(), output, seconds)
    return ReadModel(task, frontend, options.runtime_options(stream), notes, described)


def _probe(path: Path, options: ModelOptions) -> LoadedModel:
    """The model's inputs and outputs, loaded here on its format's default runtime."""
    runtime = load_runtime(path, None, RuntimeOptions(trust_model=options.trust_model, output=options.output))
    try:
        return runtime.describe()
    finally:
        runtime.close()


def _streaming(
    path: Path, probe: LoadedModel, frontend: Frontend, detector: DetectorOptions, output: DetectorOutput
) -> tuple[Frontend, StreamSettings | None, tuple[str, ...], dict[str, object] | None]:
    """Whether and how to stream: asked, or because the model keeps state or takes fewer frames than a clip."""
    spec = getattr(frontend, "spec", None)
    stateful = model_format(path) == "tflite" and _stateful(path)
    window = probe.input_shape[1] if len(probe.input_shape) > 1 else None
    frames = spec.input_shape[0] if spec is not None else None
    stream, why = detector.stream, "asked (--stream)"
    if stream is None:
        stream = stateful or (window is not None and frames is not None and window < frames)
        why = "the model keeps state between calls (resource variables)" if stateful else (
            f"the model takes {window} frames and a clip gives {frames}")  # fmt: skip
    if not stream:
        if detector.pad_ms or detector.smooth != 1 or detector.hop_ms is not None:
            raise UsageError("--pad-ms, --smooth and --hop-ms apply to streaming detectors: add --stream")
        return frontend, None, (), None
    if not isinstance(spec, AudioFrontendSpec | MicroFrontendSpec):
        raise UsageError("--stream needs one of the built-in audio front-ends (--features), which can pad the clips")
    padded = dataclasses.replace(spec, pad_ms=detector.pad_ms)
    if window is None or window > padded.input_shape[0]:
        raise UsageError(f"--stream: the model takes windows of {window} frames, but a clip with its padding gives "
                         f"{padded.input_shape[0]}; raise --pad-ms or check --features")  # fmt: skip
    hop = _hop_frames(detector.hop_ms, _step_ms(padded), stateful, path)
    settings = StreamSettings(output, detector.smooth, None if stateful else hop, stateful)
    described = {"chosen": why, "stateful": stateful, "window_frames": window, "hop_frames": window if stateful
                 else hop, "smooth": detector.smooth, "pad_ms": detector.pad_ms}  # fmt: skip
    return build_frontend(padded), settings, (f"streaming: {why}",), described


def _hop_frames(hop_ms: float | None, step_ms: float, stateful: bool, path: Path) -> int:
    """``--hop-ms`` in feature frames; refused where it would be ignored (a stateful model) or rounded to no
    hop at all (shorter than one frame), rather than silently run otherwise than asked."""
    if hop_ms is not None and stateful:
        raise UsageError(f"--hop-ms: {path.name} keeps state between calls, so its windows follow one another (the "
                         "state carries the past); leave --hop-ms out")  # fmt: skip
    frames = round((DEFAULT_HOP_MS if hop_ms is None else hop_ms) / step_ms)
    if frames < 1:
        raise UsageError(f"--hop-ms {hop_ms:g} is shorter than one feature frame ({step_ms:g} ms); give at least "
                         f"{step_ms:g}")  # fmt: skip
    return frames


def _stateful(path: Path) -> bool:
    from ondevice_audit.runtimes.tflite_graph import is_stateful

    return is_stateful(path)


def _step_ms(spec: AudioFrontendSpec | MicroFrontendSpec) -> float:
    if isinstance(spec, MicroFrontendSpec):
        return spec.step_ms
    return spec.hop_length * 1000 / spec.sample_rate


def check_inputs(expected: Sequence[int | None], frontend: Frontend) -> None:
    """The front-end's inputs fit the model's per-sample input shape (trailing axes of 1 aside)."""
    spec = getattr(frontend, "spec", None)
    if spec is None:
        return
    produced = _squeezed(tuple(spec.input_shape))
    wanted = _squeezed(tuple(expected))
    fits = len(produced) == len(wanted) and all(e is None or e == p for e, p in zip(wanted, produced, strict=True))
    if not fits:
        raise UsageError(
            f"the front-end makes inputs of shape {list(spec.input_shape)} but the model takes "
            f"{[e if e is not None else '?' for e in expected]} ({frontend.description})"
        )


def _squeezed(shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
    while len(shape) > 1 and shape[-1] == 1:
        shape = shape[:-1]
    return shape
