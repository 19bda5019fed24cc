"""A target is where a model runs: in this process, in a separate Python, or on a board reached over SSH.

``Target.check`` says what a target is (Python, CPU architecture, runtimes, free disk) and, given a model,
which runtime would run it. ``Target.open`` prepares a model on the target (copied to the device, loaded once)
and returns a ``TargetSession`` whose ``run`` maps float32 inputs to scores with per-sample latency (the
``InferenceResult`` of ``runtimes``); the session's ``close`` removes whatever was put on the device, also after a
failure. ``targets/runs.py`` runs a model over a whole dataset on one or several targets: the one way every
command runs a model.

Errors are ``TargetError`` (a ``UsageError``: the user can fix the target, model or flags). A connection that
fails or drops is ``TargetUnreachable``, which carries a hint and says whether trying again can help.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from ondevice_audit.errors import ExitCode, UsageError
from ondevice_audit.runtimes.interface import InferenceResult, LoadedModel

if TYPE_CHECKING:
    from ondevice_audit.runtimes import RuntimeOptions

__all__ = [
    "FrontendResult",
    "InferenceResult",
    "LoadedModel",
    "RuntimeStatus",
    "Target",
    "TargetCannotRun",
    "TargetError",
    "TargetFacts",
    "TargetSession",
    "TargetSettings",
    "TargetUnreachable",
]


class TargetError(UsageError):
    """A target cannot be used as asked: a bad target name, a missing runtime, a failing runner."""


class TargetUnreachable(TargetError):
    """The connection to a target failed or dropped.

    ``transient`` is True when trying again may help (refused, timed out, dropped) and False when it cannot
    (host key or authentication refused, unknown host name). A transient failure is the pipeline's (exit 3: the
    device went away, nothing the user typed was wrong); a permanent one is the user's to fix (exit 2).
    """

    def __init__(self, message: str, hint: str, transient: bool = True):
        super().__init__(f"{message}; {hint}")
        self.reason = message
        self.hint = hint
        self.transient = transient
        self.exit_code = ExitCode.PIPELINE if transient else ExitCode.USAGE


class TargetCannotRun(TargetError):
    """The target has no runtime that loads the model, or the model fails on it."""


@dataclass(frozen=True)
class RuntimeStatus:
    name: str
    format: str
    """The model format this runtime runs (``tflite``, ``onnx``, ``keras``)."""
    usable: bool
    version: str | None
    note: str | None = None
    """Why it is not usable, or a remark (e.g. TensorFlow located but not imported)."""
    kernels: tuple[str, ...] = ()
    """The kernel choices a TFLite runtime offers there (``default``, ``builtin``, ``ref``: ``--runtime
    litert-ref``...); empty for runtimes without a choice, or where each choice is a runtime of its own."""


@dataclass(frozen=True)
class TargetFacts:
    target: str
    python: str
    machine: str
    """CPU architecture (``x86_64``, ``aarch64``, ``armv7l``)."""
    system: str
    runtimes: list[RuntimeStatus]
    free_disk_bytes: int | None
    memory_total_bytes: int | None = None
    cpu_count: int | None = None
    python_executable: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    """Anything else the target reports (OS release, numpy version)."""
    model: LoadedModel | None = None
    """With ``check(model_path)``: how the model loads here."""
    model_error: str | None = None
    """With ``check(model_path)``: why nothing here runs the model."""


@dataclass(kw_only=True)
class FrontendResult(InferenceResult):
    """A batch whose features the target computed itself from the audio (``--frontend-on-target``): ``scores`` and
    ``latency`` are the model's on those features."""

    host_scores: np.ndarray
    """The same model on the same target, on the host's features of the same clips."""
    feature_diff: np.ndarray
    """``(n,)`` each sample's largest absolute difference between the target's features and the host's."""
    feature_latency: np.ndarray
    """``(n,)`` seconds per sample the target's front-end took (each call's time over its samples)."""


class TargetSession(ABC):
    """One model prepared on one target. Use as a context manager: leaving it removes what was put there."""

    model: LoadedModel
    device: TargetFacts
    notes: list[str]
    """Problems met while cleaning up (a folder left on an unreachable device), for the caller to show."""

    @abstractmethod
    def run(self, inputs: np.ndarray, batch_size: int) -> InferenceResult:
        """``(n, *input_shape)`` float32 inputs to scores, ``batch_size`` samples per inference call."""

    def run_frontend(
        self, audio: np.ndarray, inputs: np.ndarray, batch_size: int, frontend: dict[str, Any]
    ) -> FrontendResult:
        """Compute ``frontend``'s features (an ``AudioFrontendSpec`` as a dict) from ``(n, samples)`` float32 waveforms
        on the target, run the model on them and on ``inputs`` (the host's features of the same clips)."""
        raise TargetError("this target cannot compute features itself: --frontend-on-target needs the device runner")

    def recover(self) -> None:
        """Make the session usable again after a dropped connection (re-copy what the device lost)."""
        return None

    def close(self) -> None:
        """Remove what the session put on the target; never raises for a target that went away."""
        return None

    def __enter__(self) -> TargetSession:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()


@dataclass(frozen=True)
class TargetSettings:
    """How targets are reached, whichever one is named."""

    ssh_options: tuple[str, ...] = ()
    """``Key=Value`` OpenSSH options for ``ssh://`` targets."""
    state_dir: Path | None = None
    """Where remote folders a lost connection left behind are remembered (removed next time)."""
    trust_model: bool = False
    """Allow Keras models that run stored Python code (the in-process target only)."""


class Target(ABC):
    label: str
    """How the user named the target, normalised (``local``, ``subprocess``, ``ssh://user@host:port``)."""
    resumable: ClassVar[bool] = False
    """Whether finished batches are worth keeping on disk: True for targets outside this process."""
    computes_features: ClassVar[bool] = False
    """Whether its sessions can compute the features themselves (``run_frontend``): targets running the runner."""

    @classmethod
    @abstractmethod
    def from_spec(cls, spec: str, settings: TargetSettings) -> Target:
        """The target ``spec`` (its registered name, or ``scheme://...``) names."""

    @abstractmethod
    def check(
        self, model_path: Path | None = None, runtime: str | None = None, options: RuntimeOptions | None = None
    ) -> TargetFacts:
        """What the target is, and with a model which runtime would run it (``model``/``model_error``)."""

    @abstractmethod
    def open(self, model_path: Path, runtime: str | None = None, options: RuntimeOptions | None = None) -> TargetSession:
        """Prepare ``model_path`` on ``runtime`` (default: the first that loads it), opened as ``options`` say
        (which output, streaming); a ``TargetCannotRun`` if nothing there runs it."""

    def spelled(self) -> str:
        """The target as the user would spell it again, settings included: it tells apart two targets whose
        ``label`` is the same (one board through two Pythons)."""
        return self.label

    def cache_identity(self) -> str:
        """What makes this target's outputs differ from another's, for the key of stored batches."""
        return self.label

    def run(
        self, model_path: Path, inputs: np.ndarray, batch_size: int = 64, runtime: str | None = None
    ) -> InferenceResult:
        """Open, run every input, close: for a single batch; audits keep one session open for all batches."""
        with self.open(model_path, runtime) as session:
            return session.run(inputs, batch_size)
