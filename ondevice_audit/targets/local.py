"""The ``local`` target: the model runs in this process, on the same runtimes a plain ``audit`` uses."""

from __future__ import annotations

import dataclasses
import platform
import tempfile
from pathlib import Path

import numpy as np

from ondevice_audit.errors import UsageError
from ondevice_audit.registry import distribution_versions
from ondevice_audit.runtimes import RUNTIMES, RuntimeOptions, load_runtime, runtime_format
from ondevice_audit.targets import device_runner
from ondevice_audit.targets.interface import (
    InferenceResult,
    RuntimeStatus,
    Target,
    TargetFacts,
    TargetSession,
    TargetSettings,
)
from ondevice_audit.targets.runner_names import runner_runtimes

__all__ = ["LocalTarget"]


def _check_runtime_name(runtime: str | None) -> None:
    if runtime in runner_runtimes() and runtime not in RUNTIMES:
        raise UsageError(f"runtime {runtime} runs in the device runner: use --target subprocess (or ssh://...)")


class LocalSession(TargetSession):
    def __init__(self, device: TargetFacts, model_path: Path, runtime: str | None, options: RuntimeOptions):
        _check_runtime_name(runtime)
        self._runtime = load_runtime(model_path, runtime, options)
        self.model = self._runtime.describe()
        self.device = device
        self.notes: list[str] = []
        self._warm = False

    def run(self, inputs: np.ndarray, batch_size: int) -> InferenceResult:
        if not self._warm and len(inputs):  # as the device runner does: set-up is not latency
            # a whole first chunk: resizing to the batch allocates tensors, which must not land in a timed call
            self._runtime.run_batch(inputs[: min(batch_size, self._runtime.max_batch or batch_size)])
            self._warm = True
        return self._runtime.run_all(inputs, batch_size)

    def close(self) -> None:
        self._runtime.close()


class LocalTarget(Target):
    """In-process inference: no copy, no runner; peak memory is not reported (it would be the host's)."""

    label = "local"

    def __init__(self, trust_model: bool = False):
        self.trust_model = trust_model

    @classmethod
    def from_spec(cls, spec: str, settings: TargetSettings) -> LocalTarget:
        return cls(trust_model=settings.trust_model)

    def check(
        self, model_path: Path | None = None, runtime: str | None = None, options: RuntimeOptions | None = None
    ) -> TargetFacts:
        system = device_runner.system_facts(tempfile.gettempdir())
        runtimes = []
        for name in RUNTIMES:
            distributions = RUNTIMES.entry(name).distributions
            version = distribution_versions(distributions[:1])[distributions[0]]
            usable = version != "absent"
            runtimes.append(RuntimeStatus(name, runtime_format(name), usable, version if usable else None,
                                          None if usable else "not installed"))  # fmt: skip
        model, model_error = None, None
        if model_path is not None:
            try:
                with self.open(model_path, runtime, options) as session:
                    model = session.model
            except UsageError as exc:
                model_error = str(exc)
        return TargetFacts(
            target=self.label,
            python=platform.python_version(),
            machine=platform.machine(),
            system=platform.system(),
            runtimes=runtimes,
            # the standalone device runner types its facts as plain JSON values (object); these are ints or None
            free_disk_bytes=system["free_disk_bytes"],  # type: ignore[arg-type]
            memory_total_bytes=system["memory_total_bytes"],  # type: ignore[arg-type]
            cpu_count=system["cpu_count"],  # type: ignore[arg-type]
            python_executable=str(system["python_executable"]),
            details={"release": system["release"], "numpy": system["numpy"]},
            model=model,
            model_error=model_error,
        )

    def open(self, model_path: Path, runtime: str | None = None, options: RuntimeOptions | None = None) -> TargetSession:
        options = dataclasses.replace(options or RuntimeOptions(), trust_model=self.trust_model)
        return LocalSession(self.check(), model_path, runtime, options)
