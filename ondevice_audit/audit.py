"""The two core jobs: score predictions made elsewhere, and audit a model on a labelled dataset.

Both end the same way: the task (``tasks.py``: a classifier's classes, or a detector's phrase at one threshold)
turns outputs into a frame over labels, group columns and speakers (``GroupMetricFrame`` or ``DetectionFrame``),
turned into the versioned report (``report/document.py``). ``audit_model`` reads the model (``model_io.py``:
its task, labels, front-end, output and whether to stream it), then runs the
model through ``targets/runs.py``, the one path that runs a model over a dataset: files go through the
front-end in chunks (so memory stays flat however large the dataset) and each chunk through every run asked
for: the model on the ``local`` target by default, on several targets or runtimes, and a reference model. With
more than one run the report adds their comparison.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ondevice_audit._files import model_format, sha256_of, size_of
from ondevice_audit.data import LabelledFiles, read_manifest, read_predictions, select_split
from ondevice_audit.data.predictions import Predictions, read_detector_scores
from ondevice_audit.errors import UsageError
from ondevice_audit.export.metadata import ModelMetadata, read_metadata
from ondevice_audit.frontend import CHUNK_FILES, AudioFrontendSpec, Frontend, MicroFrontendSpec
from ondevice_audit.frontend.interface import InputFacts
from ondevice_audit.label_map import LabelMap
from ondevice_audit.metrics import GroupMetricFrame
from ondevice_audit.metrics.detection import DetectionFrame
from ondevice_audit.metrics.disparity import DisparityFrame
from ondevice_audit.model_io import DetectorOptions, ModelOptions, ReadModel, check_inputs, read_model
from ondevice_audit.progress import NullProgress, Progress
from ondevice_audit.report.document import build_report
from ondevice_audit.runtimes import LoadedModel
from ondevice_audit.runtimes.streaming import DetectorOutput
from ondevice_audit.scoring import ScoreOptions, check_label_spellings, frame_warnings, metric_frame, scored_rows
from ondevice_audit.targets.comparison import against_tflm, comparison_section, tflm_pairs, tflm_warning
from ondevice_audit.targets.interface import Target
from ondevice_audit.targets.mcu import MCUBudget
from ondevice_audit.targets.runs import Chunk, Run, RunSettings, RunsOutcome, execute_runs, plan_runs
from ondevice_audit.tasks import ClassifierTask, DetectorTask

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "DetectorOptions",
    "ModelOptions",
    "ScoreOptions",
    "TargetOptions",
    "audit_model",
    "mcu_section",
    "score_predictions",
]

_MAX_LISTED_FAILURES = 1000


def _read_dataset(manifest_path: Path, options: ScoreOptions) -> LabelledFiles:
    dataset = read_manifest(manifest_path, list(options.groups))
    if (options.split_file is None) != (options.split is None):
        raise UsageError("--split and --split-file go together")
    if options.split_file is not None and options.split is not None:
        dataset = select_split(dataset, options.split_file, options.split)
    if options.max_samples_per_group is not None:
        from ondevice_audit.data.subsample import stratified_subsample

        frame = stratified_subsample(dataset.frame, options.groups, options.max_samples_per_group, options.seed)
        dataset = dataclasses.replace(dataset, frame=frame.reset_index(drop=True))
    return dataset


@dataclass(frozen=True)
class TargetOptions:
    """Where and against what ``audit_model`` runs the model (see ``ondevice_audit.targets``)."""

    targets: tuple[str | Target, ...] = ("local",)
    """Target names (``local``, ``subprocess``, ``ssh://user@host:port``) or, from Python, ``Target`` objects."""
    runtimes: tuple[str, ...] = ()
    """Run the model on each of these on every target; empty: ``ModelOptions.runtime`` (or the default)."""
    reference: Path | None = None
    """A base model, run first on the first target: flips and forgotten clips are counted against it."""
    ssh_options: tuple[str, ...] = ()
    """``Key=Value`` OpenSSH options for ``ssh://`` targets."""
    work_dir: Path | None = None
    """Where finished batches are kept to resume; None: ``~/.cache/ondevice-audit/targets``."""
    batch_files: int = CHUNK_FILES
    """Samples per batch sent to a target: the unit of retry and resume."""
    retries: int = 3
    backoff_seconds: float = 1.0
    frontend_on_target: bool = False
    """Targets running the device runner compute the features themselves from the audio sent over; the report
    compares them with the host's (``targets/comparison.py``: ``frontend_parity``)."""


def mcu_section(model_path: Path, budget: MCUBudget | None, warnings: list[str]) -> dict[str, Any] | None:
    """The model's TFLM footprint against ``budget``, for the report; a warning when it does not fit."""
    if budget is None:
        return None
    if model_path.suffix.lower() != ".tflite":
        raise UsageError(f"an MCU budget checks .tflite models on TFLM; {model_path.name} is not one")
    from ondevice_audit.targets.mcu import fits

    fit = fits(model_path, budget)
    if not fit.ok:
        warnings.append(f"does not fit the MCU budget: {fit.reason}")
    return fit.to_dict()


def score_predictions(
    path: Path,
    options: ScoreOptions,
    threshold: float = 0.5,
    progress: Progress | None = None,
    detector: DetectorOptions | None = None,
    label_map: LabelMap | None = None,
) -> dict[str, Any]:
    """Score a predictions CSV (see ``data/predictions.py`` for its layouts) into a report; with ``detector``
    (``--task detect``) a detector's ``label, score`` file. ``label_map`` counts the predicted classes as the
    data's labels, as ``audit`` counts a model's."""
    progress = progress or NullProgress()
    if detector is not None:
        if label_map is not None:
            raise UsageError("--label-map maps a classifier's classes onto data labels; --task detect scores one "
                             "probability per clip: leave one of them out")  # fmt: skip
        return _score_detector(path, options, detector, progress)
    options = ClassifierTask(()).resolve(options)
    predictions = read_predictions(path, list(options.groups), threshold)
    task, notes = _mapped(predictions, label_map)
    negatives = predictions.negative_labels or list(options.negative_labels)
    with progress.task("Scoring (bootstrap, permutations)", total=None):
        frame = metric_frame(predictions.frame, options, negatives)
    warnings = notes + _warnings(frame, options, len(predictions.failures))
    if predictions.negative_labels:
        warnings.append("a score column with 1/0 labels is scored as two classes at --threshold; for a detector's "
                        "own metrics (tpr, far, fa_per_hour, EER) use --task detect --positive-label 1")  # fmt: skip
    settings = {**options.settings(), "negative_labels": negatives, "threshold": threshold, **task.settings()}
    return _score_report(path, predictions, frame, settings, warnings)


def _mapped(predictions: Predictions, label_map: LabelMap | None) -> tuple[ClassifierTask, list[str]]:
    """The predictions' classes as a classifier task, their ``prediction`` column rewritten in the data's labels
    through ``label_map`` (checked as ``audit`` checks a model's: a class the score columns lack, a data label no
    class maps to), and the warnings it calls for."""
    labels = list(predictions.frame["label"])
    if label_map is None:
        task = ClassifierTask(predictions.classes)
        return task, _stray_predictions(predictions, label_map)
    classes, unseen = _nameable_classes(predictions, label_map)
    decisions = label_map.apply(classes, f"the predictions in {predictions.source.name}")
    task = ClassifierTask(classes, label_map)
    task.check_data(labels)
    predictions.frame["prediction"] = predictions.frame["prediction"].map(dict(zip(classes, decisions, strict=True)))
    return task, unseen + task.data_warnings(labels) + _stray_predictions(predictions, label_map)


def _nameable_classes(predictions: Predictions, label_map: LabelMap) -> tuple[tuple[str, ...], list[str]]:
    """The classes ``label_map`` may name, and a warning for those no prediction has. Score columns are the
    model's whole set. A prediction column shows only the classes predicted on these clips: a class the map names
    that none was predicted as is still the model's (its label would otherwise be unreachable and refused), but a
    typo looks the same, so it is said."""
    if predictions.layout != "prediction column":
        return predictions.classes, []
    unseen = sorted({model_class for model_class, _ in label_map.pairs} - set(predictions.classes))
    if not unseen:
        return predictions.classes, []
    note = (f"{label_map.source} names {', '.join(map(repr, unseen))}, which no clip of "
            f"{predictions.source.name} was predicted as (the model never chose it here, or a misspelt class; "
            f"the classes predicted: {', '.join(predictions.classes)})")  # fmt: skip
    return tuple(sorted({*predictions.classes, *unseen})), [note]


def _stray_predictions(predictions: Predictions, label_map: LabelMap | None) -> list[str]:
    """Predicted classes that are no label of the data count as wrong: said with their clips (unless the label
    map's own warning names them), and refused when no prediction is a label at all (the model names its classes
    otherwise: every clip wrong, a metric of 0 with exit 0)."""
    from ondevice_audit.data import DataError

    labels, predicted = set(predictions.frame["label"]), predictions.frame["prediction"]
    check_label_spellings({*labels, *predicted}, "the labels and predictions")
    where = f"the predictions in {predictions.source.name}"
    if not labels & set(predicted):
        named = "--label-map leads to" if label_map is not None else "predicted:"
        raise DataError(f"no prediction in {predictions.source.name} is a label of its data ({named} "
                        f"{', '.join(sorted(set(predicted))[:8])}; labels: {', '.join(sorted(labels)[:8])}): every "
                        "clip would count as wrong; map the classes onto the labels with --label-map MODEL=DATA")  # fmt: skip
    said = set(label_map.unused(list(labels))) if label_map is not None else set()  # the map's warning names them
    stray = predicted[~predicted.isin(labels | said)].value_counts()
    if stray.empty:
        return []
    listed = ", ".join(f"{name!r} ({n} clip{'s' if n > 1 else ''})" for name, n in sorted(stray.items())[:8])
    return [f"{where} name classes that are not a label in the data: {listed}; they count as wrong (map them "
            "with --label-map MODEL=DATA if they stand for a label)"]  # fmt: skip


def _score_detector(path: Path, options: ScoreOptions, detector: DetectorOptions, progress: Progress) -> dict[str, Any]:
    if not detector.positive_label:
        raise UsageError("--task detect needs --positive-label LABEL: the label of the clips that say the phrase")
    task = DetectorTask(detector.positive_label, detector.point(), DetectorOutput(0, detector.output_is_logit))
    options = task.resolve(options)
    predictions = read_detector_scores(path, list(options.groups))
    task.check_data(list(predictions.frame["label"]))
    with progress.task("Scoring (bootstrap, permutations)", total=None):
        frame = task.frame(predictions.frame, task.outputs(predictions.frame[["score"]].to_numpy()), options)
    warnings = _warnings(frame, options, len(predictions.failures))
    report = _score_report(path, predictions, frame, {**options.settings(), **task.settings()}, warnings)
    report["detection"] = {**task.section(frame), "stream": None}
    return report


def _score_report(
    path: Path, predictions: Predictions, frame: GroupMetricFrame | DetectionFrame, settings: dict[str, Any],
    warnings: list[str],
) -> dict[str, Any]:  # fmt: skip
    failed = len(predictions.failures)
    return build_report(
        command="score",
        frame=frame,
        inputs=[{"role": "predictions", "path": str(path), "sha256": predictions.sha256}],
        settings=settings,
        samples={
            "total": len(predictions.frame) + failed,
            "scored": len(predictions.frame),
            "failed": failed,
            "failures": predictions.failures[:_MAX_LISTED_FAILURES],
            "layout": predictions.layout,
        },
        warnings=warnings,
    )


def _check_reference(reference: Path, model: ReadModel) -> None:
    """A reference model must classify the same inputs into the same classes, or flips mean nothing."""
    if not reference.exists():
        raise UsageError(f"reference model not found: {reference}; check the path")
    metadata = read_metadata(reference)
    labels = list(getattr(model.task, "labels", ()))
    if labels and metadata and metadata.labels and list(metadata.labels) != labels:
        raise UsageError(f"the reference model's labels ({', '.join(metadata.labels)}) differ from the model's")
    spec = getattr(model.frontend, "spec", None)
    if metadata and metadata.frontend and spec is not None and metadata.frontend != spec:
        raise UsageError("the reference model was made for other inputs (its front-end settings differ)")


def _warnings(frame: GroupMetricFrame | DetectionFrame, options: ScoreOptions, failed: int) -> list[str]:
    notes = []
    if options.max_samples_per_group is not None:
        notes.append(
            f"a stratified subsample was audited: at most {options.max_samples_per_group} clips per combination of "
            f"{', '.join(options.groups)} (seed {options.seed}); numbers describe the subsample"
        )
    return notes + frame_warnings(frame, failed)


def audit_model(
    model_path: Path,
    manifest_path: Path,
    options: ScoreOptions,
    model_options: ModelOptions | None = None,
    target_options: TargetOptions | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Run ``model_path`` over the manifest's files on every run asked for, then score per group.

    The front-end runs once per chunk and every run gets the same inputs. The report is the audit of the model
    on the first target and runtime; with several runs (targets, runtimes, a ``reference``) it has a
    ``comparison`` section: per run latency and peak memory, per group the metric on every run, flips and
    forgotten clips against the reference (the first run), and per attribute the paired change in RB. A clip
    that fails on any run (unreadable, NaN output) is counted, listed and left out of every run.
    """
    progress = progress or NullProgress()
    model_options = model_options or ModelOptions()
    target_options = target_options or TargetOptions()
    if target_options.batch_files < 1:
        raise UsageError("the batch sent to a target must hold at least one sample")
    dataset = _read_dataset(manifest_path, options)
    if not model_path.exists():
        raise UsageError(f"model not found: {model_path}; check the path")
    metadata = read_metadata(model_path)
    model = read_model(model_path, metadata, model_options)
    options = model.task.resolve(options)
    check_label_spellings({*dataset.frame["label"], *model.task.names}, f"{manifest_path} and the model's label names")
    model.task.check_data(list(dataset.frame["label"]))
    notes = model.task.data_warnings(list(dataset.frame["label"]))
    for note in model.notes:
        progress.note(note)
    if target_options.reference is not None:
        _check_reference(target_options.reference, model)
    runs = _plan(model_path, model_options, target_options)
    if model_options.graph_optimization and not any(model_format(run.model_path) == "onnx" for run in runs):
        raise UsageError("--graph-optimization sets ONNX Runtime's graph optimization level; no run here is an ONNX "
                         "model on ONNX Runtime")  # fmt: skip
    facts = InputFacts()
    on_target = _frontend_on_target(model.frontend) if target_options.frontend_on_target else None
    outcome = _run(runs, dataset, model, model_options, target_options, progress, facts, on_target)
    main = 1 if target_options.reference is not None else 0
    outputs = [model.task.outputs(scores) for scores in outcome.scores]
    scored, scored_mask = scored_rows(dataset.frame, outcome.failures)
    with progress.task("Scoring (bootstrap, permutations)", total=None):
        frame = model.task.frame(scored, outputs[main][scored_mask], options)
        disparity = None
        if len(runs) > 1 or runs[0].target.label != "local":  # a plain local audit has nothing to compare
            disparity = model.task.disparity(scored, [run[scored_mask] for run in outputs], options)
        tflm = _against_tflm(runs, outcome, model, scored, [run[scored_mask] for run in outputs], options)
    audited = _Audited(model_path, manifest_path, dataset, metadata, model, runs, outcome, main, facts)
    report = _audit_report(audited, options, model_options, frame, scored_mask, disparity)
    report["warnings"] += notes
    if tflm:
        report["comparison"]["against_tflm"] = tflm
        report["warnings"] += [text for text in map(tflm_warning, tflm) if text]
    return report


def _run(
    runs: list[Run],
    dataset: LabelledFiles,
    model: ReadModel,
    model_options: ModelOptions,
    target_options: TargetOptions,
    progress: Progress,
    facts: InputFacts,
    on_target: AudioFrontendSpec | MicroFrontendSpec | None,
) -> RunsOutcome:
    """Every run over the dataset's files; what the front-end changed to make them fit goes into ``facts``;
    ``on_target``: the features devices compute themselves from the clips' audio."""
    files = dataset.frame["file"]

    def check(loaded: LoadedModel) -> None:
        check_inputs(loaded.input_shape[1:], model.frontend)
        model.task.check_output(loaded)

    settings = RunSettings(model_options.batch_size, target_options.work_dir, target_options.retries,
                           target_options.backoff_seconds, runtime_options=model.runtime_options,
                           frontend_on_target=None if on_target is None else dataclasses.asdict(on_target))  # fmt: skip
    described = f"Auditing {runs[-1].model_path.name}" + (f" on {len(runs)} runs" if len(runs) > 1 else "")
    chunks = _chunks(files, model.frontend, target_options.batch_files, facts, on_target)
    return execute_runs(runs, chunks, len(files), settings=settings, check_model=check, progress=progress,
                        description=described)  # fmt: skip


def _plan(model_path: Path, model_options: ModelOptions, target_options: TargetOptions) -> list[Run]:
    from ondevice_audit.targets import default_work_dir, parse_target

    work_dir = target_options.work_dir or default_work_dir()
    targets = [
        spec
        if isinstance(spec, Target)
        else parse_target(spec, target_options.ssh_options, work_dir, model_options.trust_model)
        for spec in target_options.targets
    ]
    runtimes = target_options.runtimes or (model_options.runtime,)
    return plan_runs(model_path, targets, runtimes, target_options.reference)


def _against_tflm(
    runs: list[Run], outcome: RunsOutcome, model: ReadModel, scored: Any, outputs: list[np.ndarray],
    options: ScoreOptions,
) -> list[dict[str, Any]]:  # fmt: skip
    """Every other run of a file audited on TFLM, compared with TFLM per group (flips only: no resampling)."""
    quick = dataclasses.replace(options, bootstrap=0, permutations=0)
    compared = [(t, other, model.task.disparity(scored, [outputs[t], outputs[other]], quick))
                for t, other in tflm_pairs(runs, outcome.records)]  # fmt: skip
    return against_tflm(runs, outcome.records, compared)


def _frontend_on_target(frontend: Frontend) -> AudioFrontendSpec | MicroFrontendSpec:
    """The front-end a device can compute from audio: the model's own audio features, not a plug-in or raw audio."""
    spec = getattr(frontend, "spec", None)
    if isinstance(spec, MicroFrontendSpec) or (isinstance(spec, AudioFrontendSpec) and spec.kind != "raw"):
        return spec
    raise UsageError(f"--frontend-on-target computes audio features on the device; this model's inputs are "
                     f"{frontend.description or 'made by a plug-in'}")  # fmt: skip


def _chunks(
    files: pd.Series,
    frontend: Frontend,
    size: int,
    facts: InputFacts,
    audio: AudioFrontendSpec | MicroFrontendSpec | None = None,
) -> Iterator[Chunk]:
    """The files through the front-end, ``size`` at a time: a chunk is the unit of memory, retry and resume.
    What the front-end changed to make them fit is added to ``facts``. With ``audio`` each chunk also carries
    the decoded waveforms of its clips, for a device to compute the features from (decoded a second time: once
    for the host's features, once to send)."""
    from ondevice_audit.frontend.audio import decode_clip
    for start in range(0, len(files), size):
        chunk = [Path(file) for file in files.iloc[start : start + size]]  # per chunk: 100 000 Paths take 40 MB
        batch = frontend.transform(chunk)
        facts.merge(batch.facts)
        positions = start + np.flatnonzero(batch.ok)
        failures = {start + i: reason for i, reason in batch.failures.items()}
        waves = None
        if audio is not None:
            decoded = [decode_clip(chunk[i], audio) for i in np.flatnonzero(batch.ok)]
            waves = np.stack(decoded) if decoded else np.zeros((0, audio.n_samples), np.float32)
        yield Chunk(positions, batch.inputs, len(chunk), failures, waves)


@dataclass(frozen=True)
class _Audited:
    """What an audit ran, on what, and what came out: everything its report states besides the scores."""

    model_path: Path
    manifest_path: Path
    dataset: LabelledFiles
    metadata: ModelMetadata | None
    model: ReadModel
    runs: list[Run]
    outcome: RunsOutcome
    main: int
    """The run the report is about: the model's first run (after the reference, if any)."""
    facts: InputFacts
    """Clips the front-end cut, padded, resampled or mixed down."""

    def input_notes(self) -> tuple[dict[str, Any] | None, list[str]]:
        """The counts for ``samples.inputs`` and the warnings they call for (audio and image front-ends)."""
        return self.facts.notes(getattr(self.model.frontend, "spec", None))

    def model_section(self) -> dict[str, Any]:
        record = self.outcome.records[self.main]
        return {
            "path": str(self.model_path),
            "format": model_format(self.model_path),
            "size_bytes": size_of(self.model_path),
            "sha256": record.model_sha256,
            **dataclasses.asdict(record.model),
            "labels": list(getattr(self.model.task, "labels", ())),
            "frontend": self.model.frontend.description,
            "seconds_per_sample": float(record.latency.mean()) if len(record.latency) else 0.0,
            "metadata": None if self.metadata is None else {"extra": self.metadata.extra},
            "target": self.runs[self.main].target.label,
        }


def _audit_report(
    audited: _Audited,
    options: ScoreOptions,
    model_options: ModelOptions,
    frame: GroupMetricFrame | DetectionFrame,
    scored_mask: np.ndarray,
    disparity: DisparityFrame | None,
) -> dict[str, Any]:
    runs, outcome, main = audited.runs, audited.outcome, audited.main
    record = outcome.records[main]
    inputs_seen, input_warnings = audited.input_notes()
    warnings = input_warnings + _warnings(frame, options, len(outcome.failures))
    model = audited.model_section()
    model["mcu"] = mcu_section(audited.model_path, model_options.mcu_budget, warnings)
    table = audited.dataset.frame
    failures = outcome.failures
    inputs = [
        {"role": "model", "path": str(audited.model_path), "sha256": record.model_sha256},
        {"role": "manifest", "path": str(audited.manifest_path), "sha256": audited.dataset.sha256},
    ]
    inputs += [{"role": "front-end plug-in", "path": str(path), "sha256": sha256_of(path)}
               for path in audited.model.frontend.files()]  # fmt: skip
    reference = runs[0] if main else None
    if reference is not None:
        inputs.append({"role": "reference model", "path": str(reference.model_path),
                       "sha256": outcome.records[0].model_sha256})  # fmt: skip
    report = build_report(
        command="audit",
        frame=frame,
        inputs=inputs,
        settings={
            **options.settings(),
            "runtime": record.model.runtime,
            "targets": list(dict.fromkeys(run.target.spelled() for run in runs[main:])),
            "reference": None if reference is None else str(reference.model_path),
            "batch_size": model_options.batch_size,
            "threads": model_options.threads,
            "graph_optimization": model_options.graph_optimization,
            **audited.model.task.settings(),
            "output": model_options.output,
        },
        samples={
            "total": len(table),
            "scored": int(scored_mask.sum()),
            "failed": len(failures),
            "failures": [{"path": str(table["path"].iloc[i]), "reason": failures[i]}
                         for i in sorted(failures)[:_MAX_LISTED_FAILURES]],  # fmt: skip
            **({} if inputs_seen is None else {"inputs": inputs_seen}),
        },
        warnings=warnings,
        model=model,
    )
    section = audited.model.task.section(frame)
    if section is not None:
        report["detection"] = {**section, "stream": audited.model.stream}
    if disparity is not None:
        on_target = _frontend_sections(audited, scored_mask, options)
        report["comparison"] = comparison_section(runs, outcome.records, disparity, on_target)
    return report


def _frontend_sections(
    audited: _Audited, scored_mask: np.ndarray, options: ScoreOptions
) -> list[dict[str, Any] | None]:
    """Per run whose target computed the features: its front-end against the host's (``frontend_parity``)."""
    from ondevice_audit.targets.comparison import frontend_parity

    table = audited.dataset.frame
    groups = table.loc[scored_mask, list(options.groups)]
    sections: list[dict[str, Any] | None] = []
    for scores, record in zip(audited.outcome.scores, audited.outcome.records, strict=True):
        on_target = record.frontend
        if on_target is None:
            sections.append(None)
            continue
        device, host = (_decisions(audited.model.task, table, scored_mask, run)
                        for run in (scores, on_target.host_scores))  # fmt: skip
        section = frontend_parity(on_target, device, host, groups, scored_mask)
        sections.append({"features": audited.model.frontend.description, **section})
    return sections


def _decisions(
    task: ClassifierTask | DetectorTask, table: pd.DataFrame, scored_mask: np.ndarray, scores: np.ndarray
) -> np.ndarray:
    """What a run decided for every row ("" where not scored): the class, or a detector's accept at its threshold."""
    options = task.resolve(ScoreOptions(metric=None))
    decided = task.decided(table.loc[scored_mask], [task.outputs(scores)[scored_mask]], options)
    out = np.full(len(table), "", dtype=object)
    out[scored_mask] = decided.runs[0]
    return out
