"""What every stage has: typed settings whose cache key is derived from them, and the context tasks run in.

A stage's settings are a frozen dataclass: everything that changes what the stage computes, and nothing else.
Its cache key is the digest of the dataclass (``dataclasses.asdict``), its class name, the stage and the
versions of the distributions the stage's results depend on (``distributions``; ``infer`` adds its runtime's
from the runtime registry). So a setting added to a stage is in its key without anyone remembering to put it
there, and a TensorFlow upgrade re-trains while an ONNX Runtime upgrade only re-runs ONNX inference.

``run`` computes the stage into ``entry`` (an empty folder that becomes the cache entry if ``run`` returns).
"""

from __future__ import annotations

import dataclasses
import json
import os
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from ondevice_audit import __version__
from ondevice_audit.registry import distribution_versions

if TYPE_CHECKING:
    import pandas as pd

    from ondevice_audit.sweep.cache import Cache
    from ondevice_audit.sweep.matrix import Matrix

__all__ = [
    "StageSettings",
    "SweepContext",
    "TaskContext",
    "feature_arrays",
    "init_worker",
    "read_json",
    "worker_context",
    "write_json",
]


@dataclass(frozen=True)
class StageSettings(ABC):
    stage: ClassVar[str]
    distributions: ClassVar[tuple[str, ...]] = ()
    """Distributions whose version changes this stage's output (beyond the ones of the stages it reads)."""
    uses_tensorflow: ClassVar[bool] = False
    """Whether ``run`` needs TensorFlow: the worker then imports it first, timed apart from the task."""
    keyed_when_set: ClassVar[tuple[str, ...]] = ()
    """Fields added after caches existed: out of the key while None, so the entries made before stay valid."""

    def payload(self) -> dict[str, Any]:
        """What the cache key is made of; the stage, the settings type and the toolchain are added to it."""
        settings = dataclasses.asdict(self)
        for name in self.keyed_when_set:
            if settings[name] is None:
                del settings[name]
        return {"stage": self.stage, "kind": type(self).__name__, "settings": settings, "toolchain": self.toolchain()}

    def toolchain(self) -> dict[str, str]:
        return {"ondevice-audit": __version__, **distribution_versions(self.distributions)}

    @abstractmethod
    def run(self, task: TaskContext, entry: Path) -> None:
        """Compute the stage into ``entry`` from the entries ``task.deps`` name."""


@dataclass(frozen=True)
class SweepContext:
    """What every task needs besides its own settings; picklable, sent once to each worker process."""

    matrix: Matrix
    cache_root: Path
    manifest_sha256: str
    data_hash: str
    """Manifest plus the content of every file it lists."""
    frames: Mapping[str, pd.DataFrame]
    """``train``/``val``/``test`` manifest rows; the index is the row's position in the manifest. ``train`` is
    already thinned by ``[data] train_imbalance``."""
    classes: tuple[str, ...]
    """The models' output names: the labels, or a detector's one phrase (``DataSettings.outputs``)."""


@dataclass(frozen=True)
class TaskContext:
    """One task's view: the sweep's context, the cache, and the keys of the entries the task reads."""

    sweep: SweepContext
    cache: Cache
    deps: tuple[str, ...]

    def entry(self, stage: str, key: str) -> Path:
        return self.cache.entry(stage, key)


def write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=1, default=str))


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


_WORKER_CONTEXT: list[SweepContext] = []
_FEATURES: dict[str, dict[str, np.ndarray]] = {}
_PARENT_POLL_SECONDS = 1.0
_FEATURES_KEPT = 2
"""Feature sets kept in memory per process: consecutive tasks mostly read the same one."""


def init_worker(context: SweepContext) -> None:
    """Process-pool initializer: the context travels once per worker, not once per task. A worker also
    watches its parent: a pool worker whose sweep was SIGKILLed would otherwise wait for tasks forever
    (it holds its task queue's write end itself), keeping TensorFlow's memory."""
    _WORKER_CONTEXT[:] = [context]
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(_PARENT_POLL_SECONDS)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def worker_context() -> SweepContext:
    return _WORKER_CONTEXT[0]


def feature_arrays(cache: Cache, key: str) -> dict[str, np.ndarray]:
    """The ``features`` entry's arrays (``train_x``, ``train_rows``, ...), kept in memory for the next task."""
    if key not in _FEATURES:
        with np.load(cache.entry("features", key) / "features.npz") as stored:
            loaded = {name: stored[name] for name in stored.files}
        while len(_FEATURES) >= _FEATURES_KEPT:
            _FEATURES.pop(next(iter(_FEATURES)))
        _FEATURES[key] = loaded
    return _FEATURES[key]
