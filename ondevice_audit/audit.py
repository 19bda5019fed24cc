"""The two core jobs: score predictions made elsewhere, and audit a model on a labelled dataset.

Both end the same way: a ``GroupMetricFrame`` over labels, predictions, group columns and speakers
(``scoring.py``), turned into the versioned report (``report/document.py``). ``audit_model`` first runs the
model through ``targets/runs.py``, the one path that runs a model over a dataset: files go through the
front-end in chunks (so memory stays flat however large the dataset) and each chunk through every run asked
for: the model on the ``local`` target by default, on several targets or runtimes, and a reference model. With
more than one run the report adds their comparison.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ondevice_audit._files import model_format, size_of
from ondevice_audit.data import DataError, LabelledFiles, read_manifest, read_predictions, select_split
from ondevice_audit.errors import UsageError
from ondevice_audit.export.metadata import ModelMetadata, read_metadata
from ondevice_audit.frontend import CHUNK_FILES, AudioFrontendSpec, Frontend, FrontendSpec, build_frontend
from ondevice_audit.metrics import GroupMetricFrame
from ondevice_audit.metrics.disparity import DisparityFrame
from ondevice_audit.progress import NullProgress, Progress
from ondevice_audit.report.document import build_report
from ondevice_audit.scoring import ScoreOptions, disparity_frame, frame_warnings, metric_frame, scored_rows
from ondevice_audit.targets.interface import Target
from ondevice_audit.targets.mcu import MCUBudget
from ondevice_audit.targets.runs import Chunk, Run, RunSettings, RunsOutcome, execute_runs, plan_runs

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
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


@dataclass(frozen=True)
class ModelOptions:
    """How a model is run: which runtime, and how files become its inputs when its metadata does not say."""

    runtime: str | None = None
    frontend: FrontendSpec | None = None
    """Overrides the front-end stored in the model's metadata."""
    frontend_plugin: str | None = None
    """``package.module:callable``: the user's own file -> input function."""
    labels_file: Path | None = None
    trust_model: bool = False
    batch_size: int = 64
    mcu_budget: MCUBudget | None = None
    """Check a .tflite model against a microcontroller's RAM/flash (TFLM arena and file size)."""


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
    path: Path, options: ScoreOptions, threshold: float = 0.5, progress: Progress | None = None
) -> dict[str, Any]:
    """Score a predictions CSV (see ``data/predictions.py`` for its layouts) into a report."""
    progress = progress or NullProgress()
    predictions = read_predictions(path, list(options.groups), threshold)
    negatives = predictions.negative_labels or list(options.negative_labels)
    with progress.task("Scoring (bootstrap, permutations)", total=None):
        frame = metric_frame(predictions.frame, options, negatives)
    failed = len(predictions.failures)
    settings = {**options.settings(), "negative_labels": negatives, "threshold": threshold}
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
        warnings=_warnings(frame, options, failed),
    )


def resolve_frontend(metadata: ModelMetadata | None, options: ModelOptions) -> Frontend:
    """The user's plug-in, else an explicit spec, else the model's own metadata."""
    if options.frontend_plugin:
        from ondevice_audit.frontend.plugin import PluginFrontend

        return PluginFrontend(options.frontend_plugin)
    spec = options.frontend or (metadata.frontend if metadata else None)
    if spec is None:
        raise UsageError(
            "the model carries no front-end settings: pass --features (and its settings) or --frontend module:callable"
        )
    return build_frontend(spec)


def resolve_labels(metadata: ModelMetadata | None, options: ModelOptions) -> list[str]:
    if options.labels_file:
        if not options.labels_file.is_file():
            raise UsageError(f"labels file not found: {options.labels_file}")
        labels = [line.strip() for line in options.labels_file.read_text().splitlines() if line.strip()]
        if not labels:
            raise UsageError(f"{options.labels_file}: no labels (one per line)")
        return labels
    if metadata and metadata.labels:
        return list(metadata.labels)
    raise UsageError("the model carries no label names: pass --labels FILE (one class name per line, in output order)")


def _check_io(
    expected: Sequence[int | None], output: Sequence[int | None], frontend: Frontend, labels: list[str]
) -> None:
    """The front-end's inputs fit the model's per-sample input shape and its outputs the label names."""
    spec = getattr(frontend, "spec", None)
    if spec is not None:
        produced = spec.input_shape
        fits = len(produced) == len(expected) and all(
            e is None or e == p for e, p in zip(expected, produced, strict=True)
        )
        if not fits:
            raise UsageError(
                f"the front-end makes inputs of shape {list(produced)} but the model takes "
                f"{[e if e is not None else '?' for e in expected]} ({frontend.description})"
            )
    if output and output[-1] is not None and output[-1] != len(labels):
        raise UsageError(f"the model has {output[-1]} outputs but {len(labels)} label names")


def _check_reference(reference: Path, labels: list[str], frontend: Frontend) -> None:
    """A reference model must classify the same inputs into the same classes, or flips mean nothing."""
    if not reference.exists():
        raise UsageError(f"reference model not found: {reference}")
    metadata = read_metadata(reference)
    if metadata and metadata.labels and list(metadata.labels) != labels:
        raise UsageError(f"the reference model's labels ({', '.join(metadata.labels)}) differ from the model's")
    spec = getattr(frontend, "spec", None)
    if metadata and metadata.frontend and spec is not None and metadata.frontend != spec:
        raise UsageError("the reference model was made for other inputs (its front-end settings differ)")


def _warnings(frame: GroupMetricFrame, options: ScoreOptions, failed: int) -> list[str]:
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
        raise UsageError(f"model not found: {model_path}")
    metadata = read_metadata(model_path)
    labels = resolve_labels(metadata, model_options)
    frontend = resolve_frontend(metadata, model_options)
    unknown = sorted(set(dataset.frame["label"]) - set(labels))
    if unknown:
        raise DataError(f"labels in the data that the model does not know: {', '.join(unknown)}")
    if target_options.reference is not None:
        _check_reference(target_options.reference, labels, frontend)
    runs = _plan(model_path, model_options, target_options)
    files = dataset.frame["file"]
    on_target = _frontend_on_target(frontend) if target_options.frontend_on_target else None
    outcome = execute_runs(
        runs,
        _chunks(files, frontend, target_options.batch_files, on_target),
        len(files),
        settings=RunSettings(
            model_options.batch_size,
            target_options.work_dir,
            target_options.retries,
            target_options.backoff_seconds,
            frontend_on_target=None if on_target is None else dataclasses.asdict(on_target),
        ),  # fmt: skip
        check_model=lambda model: _check_io(model.input_shape[1:], model.output_shape, frontend, labels),
        progress=progress,
        description=f"Auditing {model_path.name}" + (f" on {len(runs)} runs" if len(runs) > 1 else ""),
    )
    main = 1 if target_options.reference is not None else 0
    names = np.asarray(labels, dtype=object)
    predicted = [_decode(scores, names) for scores in outcome.scores]
    scored, scored_mask = scored_rows(dataset.frame, outcome.failures, predicted[main])
    with progress.task("Scoring (bootstrap, permutations)", total=None):
        frame = metric_frame(scored, options)
        disparity = None
        if len(runs) > 1 or runs[0].target.label != "local":  # a plain local audit has nothing to compare
            disparity = disparity_frame(scored, [row[scored_mask].astype(str) for row in predicted], options)
    audited = _Audited(model_path, manifest_path, dataset, metadata, labels, frontend, runs, outcome, main)
    return _audit_report(audited, options, model_options, frame, scored_mask, disparity)


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


def _frontend_on_target(frontend: Frontend) -> AudioFrontendSpec:
    """The front-end a device can compute from audio: the model's own audio features, not a plug-in or raw audio."""
    spec = getattr(frontend, "spec", None)
    if not isinstance(spec, AudioFrontendSpec) or spec.kind == "raw":
        raise UsageError(f"--frontend-on-target computes audio features on the device; this model's inputs are "
                         f"{frontend.description or 'made by a plug-in'}")  # fmt: skip
    return spec


def _chunks(files: pd.Series, frontend: Frontend, size: int, audio: AudioFrontendSpec | None = None) -> Iterator[Chunk]:
    """The files through the front-end, ``size`` at a time: a chunk is the unit of memory, retry and resume.
    With ``audio`` each chunk also carries the decoded waveforms of its clips, for a device to compute the
    features from (decoded a second time: once for the host's features, once to send)."""
    from ondevice_audit.frontend.audio import decode_clip

    for start in range(0, len(files), size):
        chunk = [Path(file) for file in files.iloc[start : start + size]]  # per chunk: 100 000 Paths take 40 MB
        batch = frontend.transform(chunk)
        positions = start + np.flatnonzero(batch.ok)
        failures = {start + i: reason for i, reason in batch.failures.items()}
        waves = None
        if audio is not None:
            decoded = [decode_clip(chunk[i], audio) for i in np.flatnonzero(batch.ok)]
            waves = np.stack(decoded) if decoded else np.zeros((0, audio.n_samples), np.float32)
        yield Chunk(positions, batch.inputs, len(chunk), failures, waves)


def _decode(scores: np.ndarray, names: np.ndarray) -> np.ndarray:
    """Each row's class name (its highest score); "" for rows that were not scored."""
    predicted = np.full(len(scores), "", dtype=object)
    finite = np.isfinite(scores).all(axis=1) if scores.shape[1] else np.zeros(len(scores), dtype=bool)
    predicted[finite] = names[scores[finite].argmax(axis=1)]
    return predicted


@dataclass(frozen=True)
class _Audited:
    """What an audit ran, on what, and what came out: everything its report states besides the scores."""

    model_path: Path
    manifest_path: Path
    dataset: LabelledFiles
    metadata: ModelMetadata | None
    labels: list[str]
    frontend: Frontend
    runs: list[Run]
    outcome: RunsOutcome
    main: int
    """The run the report is about: the model's first run (after the reference, if any)."""

    def model_section(self) -> dict[str, Any]:
        record = self.outcome.records[self.main]
        return {
            "path": str(self.model_path),
            "format": model_format(self.model_path),
            "size_bytes": size_of(self.model_path),
            "sha256": record.model_sha256,
            **dataclasses.asdict(record.model),
            "labels": self.labels,
            "frontend": self.frontend.description,
            "seconds_per_sample": float(record.latency.mean()) if len(record.latency) else 0.0,
            "metadata": None if self.metadata is None else {"extra": self.metadata.extra},
            "target": self.runs[self.main].target.label,
        }


def _audit_report(
    audited: _Audited,
    options: ScoreOptions,
    model_options: ModelOptions,
    frame: GroupMetricFrame,
    scored_mask: np.ndarray,
    disparity: DisparityFrame | None,
) -> dict[str, Any]:
    runs, outcome, main = audited.runs, audited.outcome, audited.main
    record = outcome.records[main]
    warnings = _warnings(frame, options, len(outcome.failures))
    model = audited.model_section()
    model["mcu"] = mcu_section(audited.model_path, model_options.mcu_budget, warnings)
    table = audited.dataset.frame
    failures = outcome.failures
    inputs = [
        {"role": "model", "path": str(audited.model_path), "sha256": record.model_sha256},
        {"role": "manifest", "path": str(audited.manifest_path), "sha256": audited.dataset.sha256},
    ]
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
        },
        samples={
            "total": len(table),
            "scored": int(scored_mask.sum()),
            "failed": len(failures),
            "failures": [
                {"path": str(table["path"].iloc[i]), "reason": failures[i]}
                for i in sorted(failures)[:_MAX_LISTED_FAILURES]
            ],  # fmt: skip
        },
        warnings=warnings,
        model=model,
    )
    if disparity is not None:
        from ondevice_audit.targets.comparison import comparison_section

        on_target = _frontend_sections(audited, scored_mask, options)
        report["comparison"] = comparison_section(runs, outcome.records, disparity, on_target)
    return report


def _frontend_sections(
    audited: _Audited, scored_mask: np.ndarray, options: ScoreOptions
) -> list[dict[str, Any] | None]:
    """Per run whose target computed the features: its front-end against the host's (``frontend_parity``)."""
    from ondevice_audit.targets.comparison import frontend_parity

    names = np.asarray(audited.labels, dtype=object)
    groups = audited.dataset.frame.loc[scored_mask, list(options.groups)]
    sections: list[dict[str, Any] | None] = []
    for scores, record in zip(audited.outcome.scores, audited.outcome.records, strict=True):
        on_target = record.frontend
        if on_target is None:
            sections.append(None)
            continue
        section = frontend_parity(on_target, _decode(scores, names), _decode(on_target.host_scores, names), groups,
                                  scored_mask)  # fmt: skip
        sections.append({"features": audited.frontend.description, **section})
    return sections
