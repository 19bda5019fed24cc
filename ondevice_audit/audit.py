"""The two core jobs: score predictions made elsewhere, and audit a model on a labelled dataset.

Both end the same way: a ``GroupMetricFrame`` over labels, predictions, group columns and speakers, turned
into the versioned report (``report/document.py``). ``audit`` first runs the model: files go through the
front-end and the runtime in chunks, so memory stays flat however large the dataset. ``audit_on_targets``
runs the same chunks on several targets or runtimes (and a reference model) and adds their comparison.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ondevice_audit._files import sha256_of, size_of
from ondevice_audit.data import DataError, LabelledFiles, read_manifest, read_predictions, select_split
from ondevice_audit.errors import UsageError
from ondevice_audit.export.metadata import ModelMetadata, model_format, read_metadata
from ondevice_audit.frontend import CHUNK_FILES, Frontend, FrontendSpec, build_frontend
from ondevice_audit.metrics import GroupMetricFrame
from ondevice_audit.metrics.disparity import DisparityFrame
from ondevice_audit.metrics.frame import MISSING_GROUP
from ondevice_audit.progress import NullProgress, Progress
from ondevice_audit.report.document import build_report
from ondevice_audit.runtimes import Runtime, load_runtime
from ondevice_audit.targets.interface import Target, TargetSession
from ondevice_audit.targets.mcu import MCUBudget

__all__ = [
    "ModelOptions",
    "ScoreOptions",
    "TargetOptions",
    "audit_model",
    "audit_on_targets",
    "disparity_frame",
    "fit_to_shape",
    "frame_warnings",
    "mcu_section",
    "metric_frame",
    "score_predictions",
]

_MAX_LISTED_FAILURES = 1000


@dataclass(frozen=True)
class ScoreOptions:
    """How predictions are scored; shared by ``score`` and ``audit``."""

    groups: tuple[str, ...]
    metric: str = "mcc"
    negative_labels: tuple[str, ...] = ("_unknown_", "_silence_")
    min_group_size: int = 30
    bootstrap: int = 1000
    permutations: int = 1000
    seed: int = 0
    confidence: float = 0.95
    split_file: Path | None = None
    """With ``split``: score only the manifest rows this file (as ``train`` writes) assigns to ``split``."""
    split: str | None = None
    max_samples_per_group: int | None = None
    """A seeded stratified subsample (per combination of group values), for quick checks on slow runtimes."""

    def settings(self) -> dict[str, Any]:
        return {
            **dataclasses.asdict(self),
            "groups": list(self.groups),
            "negative_labels": list(self.negative_labels),
            "split_file": None if self.split_file is None else str(self.split_file),
        }


def _read_dataset(manifest_path: Path, options: ScoreOptions) -> LabelledFiles:
    dataset = read_manifest(manifest_path, list(options.groups))
    if (options.split_file is None) != (options.split is None):
        raise UsageError("--split and --split-file go together")
    if options.split_file is not None and options.split is not None:
        dataset = select_split(dataset, options.split_file, options.split)
    if options.max_samples_per_group is not None:
        from ondevice_audit.targets.mcu import stratified_subsample

        frame = stratified_subsample(dataset.frame, options.groups, options.max_samples_per_group, options.seed)
        dataset = dataclasses.replace(dataset, frame=frame.reset_index(drop=True))
    return dataset


@dataclass(frozen=True)
class TargetOptions:
    """Where and against what ``audit_on_targets`` runs the model (see ``ondevice_audit.targets``)."""

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


def metric_frame(table: pd.DataFrame, options: ScoreOptions, negatives: list[str] | None = None) -> GroupMetricFrame:
    """``table``'s ``label`` and ``prediction`` scored per group as ``options`` say (``speaker`` when present)."""
    if not options.groups:
        raise UsageError("name at least one group column with --group")
    return GroupMetricFrame(
        y_true=table["label"].to_numpy(),
        y_pred=table["prediction"].to_numpy(),
        sensitive_features=table[list(options.groups)],
        metric=options.metric,
        speakers=_speakers(table),
        negative_labels=list(options.negative_labels) if negatives is None else negatives,
        min_group_size=options.min_group_size,
        n_boot=options.bootstrap,
        n_perm=options.permutations,
        seed=options.seed,
        confidence=options.confidence,
    )


def disparity_frame(table: pd.DataFrame, predictions: list[np.ndarray], options: ScoreOptions) -> DisparityFrame:
    """Several runs' ``predictions`` of ``table``'s clips compared per group as ``options`` say (the first is the
    reference)."""
    return DisparityFrame(
        y_true=table["label"].to_numpy(),
        predictions=predictions,
        sensitive_features=table[list(options.groups)],
        metric=options.metric,
        speakers=_speakers(table),
        negative_labels=list(options.negative_labels),
        min_group_size=options.min_group_size,
        n_boot=options.bootstrap,
        seed=options.seed,
        confidence=options.confidence,
    )


def _scored_rows(
    table: pd.DataFrame, failures: dict[int, str], predicted: np.ndarray
) -> tuple[pd.DataFrame, np.ndarray]:
    """The manifest rows no run failed on, with ``predicted`` as their ``prediction``, and which rows they are."""
    scored_mask = np.ones(len(table), dtype=bool)
    scored_mask[list(failures)] = False
    if not scored_mask.any():
        first = next(iter(failures.values()))
        raise DataError(f"no file could be scored ({len(failures)} failed; first: {first})")
    scored = table.loc[scored_mask].assign(prediction=predicted[scored_mask].astype(str)).reset_index(drop=True)
    return scored, scored_mask


def _speakers(table: pd.DataFrame) -> np.ndarray | None:
    return table["speaker"].to_numpy() if "speaker" in table.columns else None


def _warnings(frame: GroupMetricFrame, options: ScoreOptions, failed: int) -> list[str]:
    notes = []
    if options.max_samples_per_group is not None:
        notes.append(
            f"a stratified subsample was audited: at most {options.max_samples_per_group} clips per combination of "
            f"{', '.join(options.groups)} (seed {options.seed}); numbers describe the subsample"
        )
    return notes + frame_warnings(frame, failed)


def frame_warnings(frame: GroupMetricFrame, failed: int) -> list[str]:
    """What a reader must know to read a frame's numbers right: resampling unit, failures, small groups,
    undefined RB, RB not distinguishable from chance, missing group values."""
    notes = []
    if frame.speakers is None:
        notes.append(
            "no speaker column: the bootstrap and permutations resample clips, which treats clips of one speaker "
            "as independent, so intervals are too narrow and p-values too small"
        )
    if failed:
        notes.append(f"{failed} sample(s) could not be scored and are left out (see samples.failures)")
    for attribute in frame.attributes:
        small = [g.name for g in attribute.groups if not g.in_rb]
        if small:
            notes.append(
                f"{attribute.name}: group(s) {', '.join(small)} have fewer than {frame.min_group_size} clips; "
                "shown but left out of RB"
            )
        rb = attribute.rb
        if rb.value is None:
            notes.append(f"{attribute.name}: RB is undefined: {rb.undefined_reason}")
        elif rb.p_value is not None and rb.p_value > 1 - frame.confidence:
            notes.append(
                f"{attribute.name}: RB {rb.value:.3g} is not distinguishable from shuffled groups "
                f"(p = {rb.p_value:.3g}); its interval describes the estimate, which is biased upwards near 0"
            )
        elif rb.bootstrap_undefined_share:
            notes.append(
                f"{attribute.name}: RB is undefined in {rb.bootstrap_undefined_share:.1%} of bootstrap resamples"
            )
        if any(g.name == MISSING_GROUP for g in attribute.groups):
            notes.append(f"{attribute.name}: some rows have no value; they form the group '{MISSING_GROUP}'")
    return notes


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


def _check_shapes(runtime: Runtime, frontend: Frontend, labels: list[str]) -> None:
    _check_io(runtime.input_shape, runtime.describe().output_shape, frontend, labels)


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


def fit_to_shape(inputs: np.ndarray, expected: Sequence[int | None]) -> np.ndarray:
    """Plug-in inputs may lack a channel axis; a reshape with the same size fits, anything else is a user error."""
    got = inputs.shape[1:]
    if len(got) == len(expected) and all(e is None or e == g for e, g in zip(expected, got, strict=True)):
        return inputs
    if None not in expected and int(np.prod(got)) == int(np.prod(expected)):
        return inputs.reshape(len(inputs), *expected)
    raise UsageError(f"the front-end makes inputs of shape {list(got)} but the model takes {list(expected)}")


def audit_model(
    model_path: Path,
    manifest_path: Path,
    options: ScoreOptions,
    model_options: ModelOptions | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Run ``model_path`` over the manifest's files, then score per group. Per-file failures are counted."""
    progress = progress or NullProgress()
    model_options = model_options or ModelOptions()
    dataset = _read_dataset(manifest_path, options)
    metadata = read_metadata(model_path)
    runtime = load_runtime(model_path, model_options.runtime, trust_model=model_options.trust_model)
    labels = resolve_labels(metadata, model_options)
    frontend = resolve_frontend(metadata, model_options)
    _check_shapes(runtime, frontend, labels)
    unknown = sorted(set(dataset.frame["label"]) - set(labels))
    if unknown:
        raise DataError(f"labels in the data that the model does not know: {', '.join(unknown)}")

    table = dataset.frame
    files = [Path(p) for p in table["file"]]
    predicted = np.full(len(files), "", dtype=object)
    failures: dict[int, str] = {}
    seconds, inferred = 0.0, 0
    with progress.task(f"Auditing {model_path.name} ({runtime.name})", total=len(files)) as advance:
        for start in range(0, len(files), CHUNK_FILES):
            chunk = files[start : start + CHUNK_FILES]
            batch = frontend.transform(chunk)
            failures.update({start + i: reason for i, reason in batch.failures.items()})
            positions = start + np.flatnonzero(batch.ok)
            if len(positions):
                result = runtime.run_all(fit_to_shape(batch.inputs, runtime.input_shape), model_options.batch_size)
                seconds += result.seconds_per_sample * len(positions)
                inferred += len(positions)
                finite = np.isfinite(result.scores).all(axis=1)
                for position in positions[~finite]:
                    failures[int(position)] = "model output is NaN or infinite"
                predicted[positions[finite]] = np.asarray(labels, dtype=object)[result.scores[finite].argmax(axis=1)]
            advance(len(chunk))

    scored, scored_mask = _scored_rows(table, failures, predicted)
    with progress.task("Scoring (bootstrap, permutations)", total=None):
        frame = metric_frame(scored, options)
    facts = runtime.describe()
    warnings = _warnings(frame, options, len(failures))
    model = {
        **dataclasses.asdict(facts),
        "labels": labels,
        "frontend": frontend.description,
        "seconds_per_sample": seconds / max(inferred, 1),
        "metadata": None if metadata is None else {"extra": metadata.extra},
        "mcu": mcu_section(model_path, model_options.mcu_budget, warnings),
    }
    failure_list = [
        {"path": str(table["path"].iloc[i]), "reason": failures[i]} for i in sorted(failures)[:_MAX_LISTED_FAILURES]
    ]
    return build_report(
        command="audit",
        frame=frame,
        inputs=[
            {"role": "model", "path": str(model_path), "sha256": facts.sha256},
            {"role": "manifest", "path": str(manifest_path), "sha256": dataset.sha256},
        ],
        settings={**options.settings(), "runtime": runtime.name},
        samples={
            "total": len(files),
            "scored": int(scored_mask.sum()),
            "failed": len(failures),
            "failures": failure_list,
        },
        warnings=warnings,
        model=model,
    )


def _show_notes(session: TargetSession, progress: Progress) -> None:
    for note in session.notes:
        progress.note(note)


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


def audit_on_targets(
    model_path: Path,
    manifest_path: Path,
    options: ScoreOptions,
    model_options: ModelOptions | None = None,
    target_options: TargetOptions | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Audit ``model_path`` on every target and runtime asked for, and compare the runs per group.

    The front-end runs once per chunk and every run gets the same inputs. The report is the audit of the model
    on the first target and runtime, with a ``comparison`` section: per run latency and peak memory, per group
    the metric on every run, flips and forgotten clips against the reference (the first run, or ``--reference``),
    and per attribute the paired change in RB. A clip that fails on any run is left out of every run.
    """
    from ondevice_audit.targets import default_work_dir, parse_target
    from ondevice_audit.targets.comparison import RunRecord, comparison_section, plan_runs
    from ondevice_audit.targets.resume import BatchStore, ResumableRun, RetryPolicy

    progress = progress or NullProgress()
    model_options = model_options or ModelOptions()
    target_options = target_options or TargetOptions()
    if target_options.batch_files < 1:
        raise UsageError("the batch sent to a target must hold at least one sample")
    if target_options.retries < 0:
        raise UsageError("retries must be 0 or more")
    dataset = _read_dataset(manifest_path, options)
    if not model_path.exists():
        raise UsageError(f"model not found: {model_path}")
    metadata = read_metadata(model_path)
    labels = resolve_labels(metadata, model_options)
    frontend = resolve_frontend(metadata, model_options)
    unknown = sorted(set(dataset.frame["label"]) - set(labels))
    if unknown:
        raise DataError(f"labels in the data that the model does not know: {', '.join(unknown)}")
    reference = target_options.reference
    if reference is not None:
        _check_reference(reference, labels, frontend)
    work_dir = target_options.work_dir or default_work_dir()
    targets = [
        spec
        if isinstance(spec, Target)
        else parse_target(spec, target_options.ssh_options, work_dir, model_options.trust_model)
        for spec in target_options.targets
    ]
    runs = plan_runs(model_path, targets, target_options.runtimes or (model_options.runtime,), reference)
    main = 1 if reference is not None else 0
    digests = {path: sha256_of(path) for path in {run.model_path for run in runs}}
    policy = RetryPolicy(target_options.retries, target_options.backoff_seconds)

    table = dataset.frame
    files = [Path(p) for p in table["file"]]
    predicted = np.full((len(runs), len(files)), "", dtype=object)
    latency: list[list[np.ndarray]] = [[] for _ in runs]
    peaks: list[int | None] = [None for _ in runs]
    failures: dict[int, str] = {}
    names = np.asarray(labels, dtype=object)
    with ExitStack() as stack:
        sessions, executors = [], []
        with progress.task(f"Preparing {len(runs)} run(s): copying and loading the model", total=len(runs)) as step:
            for run in runs:
                session = run.target.open(run.model_path, run.runtime)
                stack.callback(_show_notes, session, progress)  # after the session closed (callbacks run last-in first)
                stack.enter_context(session)
                _check_io(session.model.input_shape[1:], session.model.output_shape, frontend, labels)
                store = None
                if run.target.resumable:
                    identity = {"target": run.target.cache_identity(), "runtime": session.model.runtime,
                                "runtime_version": session.model.runtime_version,
                                "batch_size": str(model_options.batch_size)}  # fmt: skip
                    store = BatchStore(work_dir / "batches", digests[run.model_path], identity)
                sessions.append(session)
                executors.append(ResumableRun(session, run.label, store, policy, progress))
                step(1)
        description = f"Auditing {model_path.name} on {len(runs)} run(s)"
        with progress.task(description, total=len(files) * len(runs)) as advance:
            for start in range(0, len(files), target_options.batch_files):
                chunk = files[start : start + target_options.batch_files]
                batch = frontend.transform(chunk)
                failures.update({start + i: reason for i, reason in batch.failures.items()})
                positions = start + np.flatnonzero(batch.ok)
                for r, (run, session, executor) in enumerate(zip(runs, sessions, executors, strict=True)):
                    if len(positions):
                        inputs = fit_to_shape(batch.inputs, session.model.input_shape[1:])
                        result = executor.run(inputs, model_options.batch_size)
                        finite = np.isfinite(result.scores).all(axis=1)
                        for position in positions[~finite]:
                            failures.setdefault(int(position), f"model output is NaN or infinite on {run.label}")
                        predicted[r, positions[finite]] = names[result.scores[finite].argmax(axis=1)]
                        latency[r].append(result.latency[finite])
                        if result.peak_memory_bytes is not None:
                            peaks[r] = max(peaks[r] or 0, result.peak_memory_bytes)
                    advance(len(chunk))

    scored, scored_mask = _scored_rows(table, failures, predicted[main])
    with progress.task("Scoring (bootstrap, permutations, paired bootstrap)", total=None):
        frame = metric_frame(scored, options)
        disparity = disparity_frame(scored, [row[scored_mask].astype(str) for row in predicted], options)
    records = [
        RunRecord(
            model=session.model,
            device=session.device,
            model_sha256=digests[run.model_path],
            latency=np.concatenate(seconds) if seconds else np.zeros(0),
            peak_memory_bytes=peak,
            batches=executor.stats,
        )
        for run, session, executor, seconds, peak in zip(runs, sessions, executors, latency, peaks, strict=True)
    ]
    main_model = records[main].model
    warnings = _warnings(frame, options, len(failures))
    model = {
        "path": str(model_path),
        "format": model_format(model_path),
        "size_bytes": size_of(model_path),
        "sha256": digests[model_path],
        **dataclasses.asdict(main_model),
        "labels": labels,
        "frontend": frontend.description,
        "seconds_per_sample": float(records[main].latency.mean()) if len(records[main].latency) else 0.0,
        "metadata": None if metadata is None else {"extra": metadata.extra},
        "target": runs[main].target.label,
        "mcu": mcu_section(model_path, model_options.mcu_budget, warnings),
    }
    failure_list = [
        {"path": str(table["path"].iloc[i]), "reason": failures[i]} for i in sorted(failures)[:_MAX_LISTED_FAILURES]
    ]
    inputs = [
        {"role": "model", "path": str(model_path), "sha256": digests[model_path]},
        {"role": "manifest", "path": str(manifest_path), "sha256": dataset.sha256},
    ]
    if reference is not None:
        inputs.append({"role": "reference model", "path": str(reference), "sha256": digests[reference]})
    report = build_report(
        command="audit",
        frame=frame,
        inputs=inputs,
        settings={
            **options.settings(),
            "runtime": main_model.runtime,
            "targets": [target.label for target in targets],
            "reference": None if reference is None else str(reference),
            "batch_size": model_options.batch_size,
        },
        samples={
            "total": len(files),
            "scored": int(scored_mask.sum()),
            "failed": len(failures),
            "failures": failure_list,
        },
        warnings=warnings,
        model=model,
    )
    report["comparison"] = comparison_section(runs, records, disparity)
    return report
