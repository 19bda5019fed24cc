"""Batches that survive dropped connections: bounded retries with backoff, and finished outputs kept on disk.

Each batch's outputs are stored under the work folder, keyed by the model's sha256, what makes the target's
outputs its own (target, interpreter, runner version, runtime and its version, batch size, the front-end it
computed) and the sha256 of the batch's inputs (and audio). An audit that stopped (retries exhausted, Ctrl-C)
and is run again reads the batches it finished instead of running them again; an edited dataset or model simply
misses the store. A batch read back keeps the latency measured when it ran: ``ResumableRun.last_stored`` says
so, and reports mark such latency as stored, not measured.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ondevice_audit.progress import Progress
from ondevice_audit.targets.interface import FrontendResult, InferenceResult, TargetSession, TargetUnreachable

__all__ = ["BatchStats", "BatchStore", "ResumableRun", "RetryPolicy", "batch_digest", "default_work_dir"]


def default_work_dir() -> Path:
    """``$XDG_CACHE_HOME/ondevice-audit/targets``, by default ``~/.cache/ondevice-audit/targets``."""
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "ondevice-audit" / "targets"


def batch_digest(inputs: np.ndarray, *more: np.ndarray) -> str:
    """sha256 of the arrays' types, shapes and bytes (the inputs alone give the key they always had)."""
    digest = hashlib.sha256(f"{inputs.dtype.str}{inputs.shape}".encode())
    digest.update(np.ascontiguousarray(inputs).tobytes())
    for array in more:
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


_FRONTEND_ARRAYS = ("host_scores", "feature_diff", "feature_latency")
"""What a ``FrontendResult`` holds beyond an ``InferenceResult``."""


@dataclass(frozen=True)
class RetryPolicy:
    retries: int = 3
    """Further attempts per batch after a dropped connection."""
    backoff_seconds: float = 1.0
    """Wait before the first retry; doubled for each next one."""
    max_backoff_seconds: float = 30.0

    def delay(self, attempt: int) -> float:
        return min(self.backoff_seconds * 2**attempt, self.max_backoff_seconds)


@dataclass
class BatchStats:
    batches: int = 0
    from_cache: int = 0
    retries: int = 0


class BatchStore:
    """Finished batch outputs of one (model, target, runtime, batch size), one ``.npz`` per batch."""

    def __init__(self, root: Path, model_sha256: str, identity: dict[str, str]):
        key = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:20]
        self.folder = root / model_sha256 / key
        self._identity = identity

    def load(self, digest: str) -> InferenceResult | None:
        path = self.folder / f"{digest}.npz"
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as archive:
                peak = int(archive["peak_memory_bytes"])
                stored = (
                    np.asarray(archive["scores"], dtype=np.float32),
                    np.asarray(archive["latency"], dtype=np.float64),
                    None if peak < 0 else peak,
                )
                if not set(_FRONTEND_ARRAYS) <= set(archive.files):
                    return InferenceResult(*stored)
                return FrontendResult(*stored, **{name: archive[name] for name in _FRONTEND_ARRAYS})
        except (OSError, KeyError, ValueError):  # a truncated or foreign file: run the batch again
            return None

    def save(self, digest: str, result: InferenceResult) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        identity = self.folder / "identity.json"
        if not identity.exists():
            identity.write_text(json.dumps(self._identity, indent=2, sort_keys=True))
        partial = self.folder / f"{digest}.npz.part"
        peak = -1 if result.peak_memory_bytes is None else result.peak_memory_bytes
        arrays = {"scores": result.scores, "latency": result.latency, "peak_memory_bytes": np.int64(peak)}
        if isinstance(result, FrontendResult):
            arrays.update({name: getattr(result, name) for name in _FRONTEND_ARRAYS})
        with partial.open("wb") as handle:
            np.savez(handle, **arrays)  # type: ignore[arg-type]  # numpy's stub: mypy matches **arrays to allow_pickle: bool too
        os.replace(partial, self.folder / f"{digest}.npz")


class ResumableRun:
    """Runs batches on a session: from the store when finished before, else with retries on dropped connections."""

    def __init__(
        self,
        session: TargetSession,
        label: str,
        store: BatchStore | None,
        policy: RetryPolicy,
        progress: Progress,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.session = session
        self.label = label
        self.store = store
        self.policy = policy
        self.progress = progress
        self.stats = BatchStats()
        self.last_stored = False
        """Whether the last batch was read from the store (its latency was measured by an earlier run)."""
        self._sleep = sleep

    def run(
        self,
        inputs: np.ndarray,
        batch_size: int,
        audio: np.ndarray | None = None,
        frontend: dict[str, Any] | None = None,
    ) -> InferenceResult:
        """``inputs`` through the session; with ``audio`` and ``frontend``, features computed on the target
        (``TargetSession.run_frontend``, a ``FrontendResult``)."""
        self.stats.batches += 1
        self.last_stored = False
        on_target = (audio, frontend) if audio is not None and frontend is not None else None
        digest = (batch_digest(inputs, on_target[0]) if on_target else batch_digest(inputs)) if self.store else ""
        if self.store:
            stored = self.store.load(digest)
            if (
                stored is not None
                and len(stored.scores) == len(inputs)
                and (on_target is not None) == isinstance(stored, FrontendResult)
            ):
                self.stats.from_cache += 1
                self.last_stored = True
                return stored
        if on_target:
            waves, settings = on_target
            result = self._attempt(lambda: self.session.run_frontend(waves, inputs, batch_size, settings))
        else:
            result = self._attempt(lambda: self.session.run(inputs, batch_size))
        if self.store:
            self.store.save(digest, result)
        return result

    def _attempt(self, batch: Callable[[], InferenceResult]) -> InferenceResult:
        attempt = 0
        while True:
            try:
                if attempt:
                    self.session.recover()
                return batch()
            except TargetUnreachable as exc:
                if not exc.transient or attempt >= self.policy.retries:
                    if exc.transient and self.store:
                        raise TargetUnreachable(
                            f"{exc.reason} (after {attempt} retries)",
                            f"{exc.hint}; finished batches are kept in {self.store.folder.parent.parent}: "
                            "run the same command again to resume",
                        ) from None
                    raise
                delay = self.policy.delay(attempt)
                attempt += 1
                self.stats.retries += 1
                self.progress.note(f"{self.label}: {exc.reason}; retrying the batch in {delay:.1f} s "
                                   f"({attempt}/{self.policy.retries})")  # fmt: skip
                self._sleep(delay)
