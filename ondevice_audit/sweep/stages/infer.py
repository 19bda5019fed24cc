"""``infer``: an exported file run over the test split on the cell's runtime and target.

Through ``targets/runs.py``, the path every audit takes: in this process (``local``) or in the device runner
(``subprocess``, ``ssh://``). Latency is as a deployed device sees it: one sample per call after a warm-up,
the median of ``latency_samples`` calls (on a remote target all in one trip, timed by the runner). The entry
holds ``scores.npy`` (every test clip's scores) and ``infer.json`` (latency, the file and runtime facts).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ondevice_audit.registry import distribution_versions
from ondevice_audit.sweep.stages.base import StageSettings, TaskContext, feature_arrays, read_json, write_json

__all__ = ["InferSettings"]

_BATCH = 64
_DEVICE_FACTS = ("python", "machine", "system", "cpu_count", "memory_total_bytes")
"""What a cell's report keeps of the target it ran on (as ``audit --target`` reports it)."""


@dataclass(frozen=True)
class InferSettings(StageSettings):
    stage = "infer"

    features: str
    export: str
    runtime: str
    latency_samples: int
    target: str | None = None
    """Where the file runs; None: in this process (``local``)."""
    output: str | None = None
    """The output scored (``--output``) of a user's model with several; None: the model's only one."""
    keyed_when_set = ("output",)

    def toolchain(self) -> dict[str, str]:
        """The runtime's own distributions: an ONNX Runtime upgrade re-runs ONNX inference, nothing else."""
        from ondevice_audit.runtimes import RUNTIMES

        own = RUNTIMES.entry(self.runtime).distributions if self.runtime in RUNTIMES else ()
        return {**super().toolchain(), **distribution_versions(own)}

    def run(self, task: TaskContext, entry: Path) -> None:
        from ondevice_audit.runtimes import RuntimeOptions
        from ondevice_audit.targets import parse_target
        from ondevice_audit.targets.runs import PROBE_WARMUP, Chunk, Run, RunSettings, execute_runs

        exported = task.entry("export", self.export)
        path = exported / read_json(exported / "export.json")["file"]
        matrix = task.sweep.matrix
        trust_model = matrix.model is not None and matrix.model.trust_model
        target = parse_target(self.target or "local", matrix.ssh_options, trust_model=trust_model)
        inputs = feature_arrays(task.cache, self.features)["test_x"]
        chunk = Chunk(np.arange(len(inputs)), inputs, len(inputs))
        settings = RunSettings(batch_size=_BATCH, latency_probe=self.latency_samples,
                               runtime_options=RuntimeOptions(output=self.output))  # fmt: skip
        outcome = execute_runs([Run(target.label, path, target, self.runtime)], [chunk], len(inputs), settings=settings)
        record = outcome.records[0]
        times = record.probe if record.probe is not None else np.zeros(0)
        latency = float(np.median(times[PROBE_WARMUP:] if len(times) > PROBE_WARMUP else times)) if len(times) else 0.0
        np.save(entry / "scores.npy", outcome.scores[0])
        write_json(entry / "infer.json", {"latency_ms": latency * 1000, "facts": _facts(path, record, target.label)})


def _facts(path: Path, record: Any, target: str) -> dict[str, Any]:
    from ondevice_audit._files import model_format, size_of

    return {
        "path": str(path),
        "format": model_format(path),
        "size_bytes": size_of(path),
        "sha256": record.model_sha256,
        **dataclasses.asdict(record.model),
        "target": target,
        "device": {key: getattr(record.device, key) for key in _DEVICE_FACTS},
    }
