"""The ``local`` target: the model runs in this process, on the same runtimes a plain ``audit`` uses."""

from __future__ import annotations

import platform
import tempfile
import time
from importlib import metadata
from pathlib import Path

import numpy as np

from ondevice_audit.errors import UsageError
from ondevice_audit.runtimes import RUNTIMES, load_runtime
from ondevice_audit.targets import device_runner
from ondevice_audit.targets.interface import (
    InferenceResult,
    ModelOnTarget,
    RuntimeStatus,
    Target,
    TargetFacts,
    TargetSession,
)

__all__ = ["LocalTarget"]

_DISTRIBUTIONS = {"litert": "ai-edge-litert", "onnxruntime": "onnxruntime", "tensorflow": "tensorflow",
                  "tflm": "tflite-micro"}  # fmt: skip
"""The package that brings each in-process runtime, for its version (looked up, not imported: TensorFlow is slow)."""


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def _check_runtime_name(runtime: str | None) -> None:
    if runtime in device_runner.RUNTIMES and runtime not in RUNTIMES:
        raise UsageError(f"runtime {runtime} runs in the device runner: use --target subprocess (or ssh://...)")


class LocalSession(TargetSession):
    def __init__(self, device: TargetFacts, model_path: Path, runtime: str | None, trust_model: bool):
        _check_runtime_name(runtime)
        self._runtime = load_runtime(model_path, runtime, trust_model=trust_model)
        facts = self._runtime.describe()
        self.model = ModelOnTarget(facts.runtime, facts.runtime_version, facts.input_shape, facts.input_dtype,
                                   facts.output_shape, facts.output_dtype)  # fmt: skip
        self.device = device
        self.notes: list[str] = []
        self._warm = False

    def run(self, inputs: np.ndarray, batch_size: int) -> InferenceResult:
        if not self._warm and len(inputs):  # as the device runner does: set-up is not latency
            self._runtime.run_batch(inputs[:1])
            self._warm = True
        step = min(batch_size, self._runtime.max_batch or batch_size)
        latency = np.zeros(len(inputs), dtype=np.float64)
        outputs = []
        for start in range(0, len(inputs), step):
            chunk = inputs[start : start + step]
            began = time.perf_counter()
            scores = np.asarray(self._runtime.run_batch(chunk), dtype=np.float32)
            latency[start : start + len(chunk)] = (time.perf_counter() - began) / len(chunk)
            outputs.append(scores.reshape(len(chunk), -1))
        scores = np.concatenate(outputs) if outputs else np.zeros((0, 0), np.float32)
        return InferenceResult(scores, latency)


class LocalTarget(Target):
    """In-process inference: no copy, no runner; peak memory is not reported (it would be the host's)."""

    label = "local"

    def __init__(self, trust_model: bool = False):
        self.trust_model = trust_model

    def check(self, model_path: Path | None = None, runtime: str | None = None) -> TargetFacts:
        system = device_runner.system_facts(tempfile.gettempdir())
        runtimes = []
        for name, fmt in RUNTIMES.items():
            distribution = _DISTRIBUTIONS.get(name)
            version = _version(distribution) if distribution else None
            if distribution is None:  # a runtime added to ondevice_audit.runtimes after this table
                runtimes.append(RuntimeStatus(name, fmt, True, None, "version not known here"))
            else:
                runtimes.append(
                    RuntimeStatus(name, fmt, version is not None, version, None if version else "not installed")
                )
        model, model_error = None, None
        if model_path is not None:
            try:
                with self.open(model_path, runtime) as session:
                    model = session.model
            except UsageError as exc:
                model_error = str(exc)
        return TargetFacts(
            target=self.label,
            python=platform.python_version(),
            machine=platform.machine(),
            system=platform.system(),
            runtimes=runtimes,
            free_disk_bytes=system["free_disk_bytes"],  # type: ignore[arg-type]
            memory_total_bytes=system["memory_total_bytes"],  # type: ignore[arg-type]
            cpu_count=system["cpu_count"],  # type: ignore[arg-type]
            python_executable=str(system["python_executable"]),
            details={"release": system["release"], "numpy": system["numpy"]},
            model=model,
            model_error=model_error,
        )

    def open(self, model_path: Path, runtime: str | None = None) -> TargetSession:
        return LocalSession(self.check(), model_path, runtime, self.trust_model)
