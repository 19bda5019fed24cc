"""The one way a model runs over a dataset: on one or several targets, chunk by chunk, into per-row scores.

A *run* is one model file on one target with one runtime. ``audit MODEL --target A --target B --runtime R1
--runtime R2`` runs MODEL on every target with every runtime; ``--reference BASE`` adds BASE, run on the first
target, in front. A plain ``audit`` is one run on the ``local`` target, and every sweep cell's inference is one
run on its ``target`` factor: so a new runtime, target or way of feeding a model is written once, here or below.

``execute_runs`` opens a session per run (copying and loading the model once), feeds every chunk of inputs to
every session (a batch that fails on a dropped connection is retried, and batches of targets outside this
process are kept on disk to resume), and returns per run a ``(rows, outputs)`` score array with NaN in the rows
that could not be scored, the reason for each such row, and what each run cost (latency, peak memory). Latency
is what this run measured: batches read back from the store keep theirs apart (``RunRecord.stored_latency``).

With ``RunSettings.frontend_on_target`` every target that runs the device runner computes the features itself
from the chunk's audio (``--frontend-on-target``); its run's scores are the model's on those features, and its
``RunRecord.frontend`` holds the model's scores on the host's features and how far the two feature sets are apart.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from ondevice_audit._files import model_format, sha256_of
from ondevice_audit.errors import UsageError
from ondevice_audit.progress import NullProgress, Progress
from ondevice_audit.runtimes import RUNTIMES, RuntimeOptions, runtime_format
from ondevice_audit.runtimes.interface import LoadedModel, fixed_shape
from ondevice_audit.targets.interface import FrontendResult, Target, TargetFacts, TargetSession
from ondevice_audit.targets.resume import BatchStats, BatchStore, ResumableRun, RetryPolicy, default_work_dir
from ondevice_audit.targets.runner_names import runner_runtimes

__all__ = [
    "Chunk",
    "FrontendRecord",
    "Run",
    "RunRecord",
    "RunSettings",
    "RunsOutcome",
    "execute_runs",
    "fit_to_shape",
    "plan_runs",
    "runtime_names",
]

NAN_OUTPUT = "model output is NaN or infinite"


def runtime_names() -> dict[str, str]:
    """Every runtime name a target knows (in this process or in the device runner) -> the format it runs."""
    return {**{name: runtime_format(name) for name in RUNTIMES}, **runner_runtimes()}


@dataclass(frozen=True)
class Run:
    label: str
    model_path: Path
    target: Target
    runtime: str | None
    """As asked; None: the target picks the first runtime that loads the model."""


@dataclass
class FrontendRecord:
    """What a run whose target computed the features from the audio adds (``--frontend-on-target``)."""

    settings: dict[str, Any]
    """The front-end the target ran (an ``AudioFrontendSpec`` as a dict)."""
    host_scores: np.ndarray
    """``(rows, outputs)``: the model on the same target, on the host's features; NaN in rows not run."""
    feature_diff: np.ndarray
    """``(rows,)``: each clip's largest absolute difference between the target's features and the host's."""
    feature_latency: np.ndarray
    """Seconds per sample of the target's front-end, for the samples this run measured."""
    end_to_end: np.ndarray
    """Seconds per sample of features plus inference, for the same samples."""
    stored_feature_latency: np.ndarray = field(default_factory=lambda: np.zeros(0))
    stored_end_to_end: np.ndarray = field(default_factory=lambda: np.zeros(0))
    """The same two for batches read back from the store (measured by an earlier run)."""


@dataclass
class RunRecord:
    """What a run produced besides its scores."""

    model: LoadedModel
    device: TargetFacts
    model_sha256: str
    latency: np.ndarray
    """Seconds per sample, for every sample of the batches this run measured (finite scores)."""
    peak_memory_bytes: int | None
    batches: BatchStats
    probe: np.ndarray | None = None
    """With ``RunSettings.latency_probe``: seconds of each single-sample call, warm-up calls first."""
    stored_latency: np.ndarray = field(default_factory=lambda: np.zeros(0))
    """Seconds per sample of the batches read back from the store: measured by an earlier run, not this one."""
    frontend: FrontendRecord | None = None
    """With ``RunSettings.frontend_on_target`` on a target that computes features."""


@dataclass(frozen=True)
class Chunk:
    """Some rows of a dataset, as model inputs."""

    positions: np.ndarray
    """Row of each input."""
    inputs: np.ndarray
    size: int
    """Rows the chunk covers, those that failed included (for progress)."""
    failures: dict[int, str] = field(default_factory=dict)
    """Row -> why no input could be made of it (a missing or corrupt file)."""
    audio: np.ndarray | None = None
    """With ``RunSettings.frontend_on_target``: ``(n, samples)`` float32 waveforms the inputs were made of."""


@dataclass(frozen=True)
class RunSettings:
    batch_size: int = 64
    """Samples per inference call."""
    work_dir: Path | None = None
    """Where finished batches of targets outside this process are kept; None: the default work folder."""
    retries: int = 3
    backoff_seconds: float = 1.0
    runtime_options: RuntimeOptions | None = None
    """How every run's model is opened: which output, streaming (``runtimes.RuntimeOptions``)."""
    latency_probe: int = 0
    """Time this many single-sample calls per run (after ``PROBE_WARMUP`` untimed ones) on the first chunk's
    inputs: latency as a deployed device sees it, one sample per call."""
    frontend_on_target: dict[str, Any] | None = None
    """An ``AudioFrontendSpec`` as a dict: targets that can compute it do, from each chunk's ``audio``."""


PROBE_WARMUP = 3


@dataclass
class RunsOutcome:
    scores: list[np.ndarray]
    """Per run, ``(rows, outputs)`` float32; rows in ``failures`` hold NaN."""
    failures: dict[int, str]
    """Row -> why it could not be scored on some run (such a row is left out of every run)."""
    records: list[RunRecord]


def plan_runs(
    model_path: Path, targets: Sequence[Target], runtimes: Sequence[str | None], reference: Path | None = None
) -> list[Run]:
    """The runs in order, reference first; labels name only what differs between them."""
    if not targets:
        raise UsageError("name at least one --target")
    known = runtime_names()
    runtimes = list(runtimes) or [None]
    for runtime in runtimes:
        if runtime is not None and runtime not in known:
            raise UsageError(f"unknown runtime {runtime!r}; choose one of {', '.join(known)}")
    names = {model_path: model_path.name}
    if reference is not None:
        same = reference.name == model_path.name
        names = {reference: f"reference {reference.name}" if same else reference.name, model_path: model_path.name}

    labels = [target.label for target in targets]

    def label(path: Path, target: Target, runtime: str | None) -> str:
        # two targets named alike (one board through two Pythons) are told apart by their settings
        shown = target.label if labels.count(target.label) == 1 else target.spelled()
        text = shown + (f" ({runtime})" if len(runtimes) > 1 and runtime else "")
        return f"{names[path]} @ {text}" if reference is not None else text

    runs = []
    if reference is not None:
        wanted = runtimes[0]
        runtime = wanted if wanted and known[wanted] == model_format(reference) else None
        runs.append(Run(label(reference, targets[0], runtime), reference, targets[0], runtime))
    runs += [Run(label(model_path, t, r), model_path, t, r) for t in targets for r in runtimes]
    seen: set[str] = set()
    for run in runs:
        if run.label in seen:
            raise UsageError(f"{run.label} is asked for twice; name each target and runtime once")
        seen.add(run.label)
    return runs


def fit_to_shape(inputs: np.ndarray, expected: Sequence[int | None]) -> np.ndarray:
    """Inputs reshaped to the model's per-sample shape when only axes of size 1 differ (a plug-in without a
    channel axis, a streaming model's ``(frames, channels)``); anything else is a user error."""
    got = inputs.shape[1:]
    if _matches(got, expected):
        return inputs
    fixed = fixed_shape(expected)
    if fixed is not None and int(np.prod(got)) == int(np.prod(fixed)):
        return inputs.reshape(len(inputs), *fixed)
    squeezed_got, squeezed_expected = _squeezed(got), _squeezed(tuple(expected))
    if _matches(squeezed_got, squeezed_expected):
        return inputs.reshape(len(inputs), *squeezed_got)
    raise UsageError(f"the front-end makes inputs of shape {list(got)} but the model takes {list(expected)}")


def _matches(got: Sequence[int], expected: Sequence[int | None]) -> bool:
    return len(got) == len(expected) and all(e is None or e == g for e, g in zip(expected, got, strict=True))


_Size = TypeVar("_Size", int, int | None)


def _squeezed(shape: tuple[_Size, ...]) -> tuple[_Size, ...]:
    while len(shape) > 1 and shape[-1] == 1:
        shape = shape[:-1]
    return shape


class _Running:
    """One run's open session and what it has produced so far."""

    def __init__(self, run: Run, session: TargetSession, executor: ResumableRun, sha256: str, rows: int):
        self.run, self.session, self.executor, self.sha256 = run, session, executor, sha256
        self.rows = rows
        self.scores: np.ndarray | None = None
        self.latency: list[np.ndarray] = []
        self.stored_latency: list[np.ndarray] = []
        self.peak: int | None = None
        self.probe_inputs: np.ndarray | None = None
        self.probe: np.ndarray | None = None
        self.frontend: FrontendRecord | None = None

    def compute_features(self, settings: dict[str, Any]) -> None:
        """Have the target compute ``settings``' features from each chunk's audio."""
        self.frontend = FrontendRecord(settings, np.zeros((self.rows, 0), np.float32), np.full(self.rows, np.nan),
                                       np.zeros(0), np.zeros(0))  # fmt: skip

    def feed(self, chunk: Chunk, batch_size: int, probe: int) -> np.ndarray:
        """Run ``chunk``; returns which of its inputs gave finite scores."""
        inputs = fit_to_shape(chunk.inputs, self.session.model.input_shape[1:])
        if self.frontend is not None:
            if chunk.audio is None:
                raise UsageError("the features are computed on the target, but the chunk came without its audio")
            result = self.executor.run(inputs, batch_size, chunk.audio, self.frontend.settings)
        else:
            result = self.executor.run(inputs, batch_size)
        if self.scores is None:
            self.scores = np.full((self.rows, result.scores.shape[1]), np.nan, dtype=np.float32)
        self.scores[chunk.positions] = result.scores
        finite = np.isfinite(result.scores).all(axis=1)
        (self.stored_latency if self.executor.last_stored else self.latency).append(result.latency[finite])
        if isinstance(result, FrontendResult):
            self._feed_frontend(chunk.positions, result, finite)
        if result.peak_memory_bytes is not None:
            self.peak = max(self.peak or 0, result.peak_memory_bytes)
        if probe and self.probe_inputs is None:
            self.probe_inputs = inputs[: PROBE_WARMUP + probe]
        return finite

    def _feed_frontend(self, positions: np.ndarray, result: FrontendResult, finite: np.ndarray) -> None:
        record = self.frontend
        assert record is not None
        if record.host_scores.shape[1] != result.host_scores.shape[1]:
            record.host_scores = np.full((self.rows, result.host_scores.shape[1]), np.nan, dtype=np.float32)
        record.host_scores[positions] = result.host_scores
        record.feature_diff[positions] = result.feature_diff
        features, end_to_end = result.feature_latency[finite], result.feature_latency[finite] + result.latency[finite]
        if self.executor.last_stored:
            record.stored_feature_latency = np.concatenate([record.stored_feature_latency, features])
            record.stored_end_to_end = np.concatenate([record.stored_end_to_end, end_to_end])
        else:
            record.feature_latency = np.concatenate([record.feature_latency, features])
            record.end_to_end = np.concatenate([record.end_to_end, end_to_end])

    def record(self) -> RunRecord:
        def joined(parts: list[np.ndarray]) -> np.ndarray:
            return np.concatenate(parts) if parts else np.zeros(0)

        return RunRecord(self.session.model, self.session.device, self.sha256, joined(self.latency), self.peak,
                         self.executor.stats, self.probe, joined(self.stored_latency), self.frontend)  # fmt: skip


def execute_runs(
    runs: Sequence[Run],
    chunks: Iterable[Chunk],
    rows: int,
    *,
    settings: RunSettings | None = None,
    check_model: Callable[[LoadedModel], None] | None = None,
    progress: Progress | None = None,
    description: str = "Running the model",
) -> RunsOutcome:
    """Every chunk on every run (see the module docstring); ``check_model`` refuses a model whose inputs or
    outputs do not fit before any sample runs."""
    settings = settings or RunSettings()
    progress = progress or NullProgress()
    if settings.batch_size < 1:
        raise UsageError("the inference batch size must be at least 1")
    if settings.retries < 0:
        raise UsageError("retries must be 0 or more")
    failures: dict[int, str] = {}
    with ExitStack() as stack:
        running = _open(runs, rows, settings, check_model, stack, progress)
        with progress.task(description, total=rows * len(runs)) as advance:
            for chunk in chunks:
                failures.update(chunk.failures)
                for state in running:
                    if len(chunk.positions):
                        finite = state.feed(chunk, settings.batch_size, settings.latency_probe)
                        where = "" if len(runs) == 1 else f" on {state.run.label}"
                        for position in chunk.positions[~finite]:
                            failures.setdefault(int(position), NAN_OUTPUT + where)
                    advance(chunk.size)
        for state in running:
            if state.probe_inputs is not None:
                state.probe = state.executor.session.run(state.probe_inputs, 1).latency
    scores = [s.scores if s.scores is not None else np.full((rows, 0), np.nan, np.float32) for s in running]
    return RunsOutcome(scores, failures, [state.record() for state in running])


def _open(
    runs: Sequence[Run],
    rows: int,
    settings: RunSettings,
    check_model: Callable[[LoadedModel], None] | None,
    stack: ExitStack,
    progress: Progress,
) -> list[_Running]:
    """A session per run, each closed by ``stack`` (its cleanup notes shown after it closed)."""
    work_dir = settings.work_dir or default_work_dir()
    if settings.frontend_on_target is not None and not any(run.target.computes_features for run in runs):
        raise UsageError("--frontend-on-target needs a target that runs the device runner (subprocess or ssh://)")
    stream = settings.runtime_options.stream if settings.runtime_options is not None else None
    if settings.frontend_on_target is not None and stream is not None:
        raise UsageError("--frontend-on-target and a streaming detector: the device computes whole clips' features "
                         "without --pad-ms, and the windows are cut from the host's; audit without one of them")  # fmt: skip
    policy = RetryPolicy(settings.retries, settings.backoff_seconds)
    digests = {path: sha256_of(path) for path in {run.model_path for run in runs}}
    running = []
    with progress.task(f"Preparing {len(runs)} run(s): copying and loading the model", total=len(runs)) as step:
        for run in runs:
            session = run.target.open(run.model_path, run.runtime, settings.runtime_options)
            stack.callback(_show_notes, session, progress)  # after the session closed (callbacks run last-in first)
            stack.enter_context(session)
            if check_model is not None:
                check_model(session.model)
            on_target = settings.frontend_on_target if run.target.computes_features else None
            store = None
            if run.target.resumable:  # batches of other kernels, delegates or thread counts are not these
                model = session.model
                identity = {"target": run.target.cache_identity(), "runtime": model.runtime,
                            "runtime_version": model.runtime_version, "batch_size": str(settings.batch_size),
                            "kernels": str(model.kernels), "delegate": str(model.delegate),
                            "threads": str(model.threads), "graph_optimization": str(model.graph_optimization)}  # fmt: skip
                if model.output is not None:  # another output of the same model gives other scores
                    identity["output"] = model.output
                if on_target is not None:
                    identity["frontend_on_target"] = json.dumps(on_target, sort_keys=True)
                if stream is not None:  # the stored scores are clips' smoothed maxima, not the model's outputs
                    identity["stream"] = json.dumps(dataclasses.asdict(stream), sort_keys=True)
                store = BatchStore(work_dir / "batches", digests[run.model_path], identity)
            executor = ResumableRun(session, run.label, store, policy, progress)
            running.append(_Running(run, session, executor, digests[run.model_path], rows))
            if on_target is not None:
                running[-1].compute_features(on_target)
            step(1)
    return running


def _show_notes(session: TargetSession, progress: Progress) -> None:
    for note in session.notes:
        progress.note(note)
