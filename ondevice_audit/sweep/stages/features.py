"""``features``: every split's clips through one front-end, once per front-end setting.

The entry holds ``features.npz`` (``<split>_x`` inputs and ``<split>_rows``, the manifest rows they came from)
and ``features.json`` (the front-end settings, and the clips that could not be read, by manifest path). A split
of more than ``SHARD_CLIPS`` clips is computed in shards, each a task of its own (spread over the workers, on
Ray over machines), that the split's features task joins in order; the key of the joined features never
depends on sharding, and the arrays are bit for bit those of one task.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ondevice_audit.frontend.interface import InputFacts
from ondevice_audit.registry import distribution_versions
from ondevice_audit.sweep.stages.base import StageSettings, TaskContext, read_json, write_json

__all__ = ["SHARD_CLIPS", "SPLITS", "FeatureSettings", "Shard", "SplitSettings"]

SPLITS = ("train", "val", "test")
SHARD_CLIPS = 16_384
"""A multiple of the front-end's batches, so joined shards equal one task's arrays; smaller datasets are one
task."""


@dataclass(frozen=True)
class SplitSettings:
    """How the manifest is split by speaker (the same split for every cell)."""

    fractions: tuple[float, float, float]
    seed: int
    stratify: str | None
    train_imbalance: str = ""


@dataclass(frozen=True)
class Shard:
    split: str
    start: int
    stop: int


@dataclass(frozen=True)
class FeatureSettings(StageSettings):
    stage = "features"
    distributions = ("numpy", "scipy", "soxr", "soundfile", "pillow")

    data: str
    """The data hash: manifest plus every file's content."""
    split: SplitSettings
    frontend: dict[str, Any]
    """The front-end's settings (``FrontendSpec`` fields, or a plug-in reference)."""
    shard: Shard | None = None

    def toolchain(self) -> dict[str, str]:
        """The micro front-end's numbers come from pymicro-features, or TensorFlow's op for other settings."""
        micro = ("pymicro-features", "tensorflow") if self.frontend.get("kind") == "micro" else ()
        return {**super().toolchain(), **distribution_versions(micro)}

    def run(self, task: TaskContext, entry: Path) -> None:
        from ondevice_audit.sweep.user_model import build_sweep_frontend

        frontend = build_sweep_frontend(self.frontend)
        if self.shard is not None:
            frame = task.sweep.frames[self.shard.split].iloc[self.shard.start : self.shard.stop]
            x, rows, failures, facts = _split_features(frame, frontend)
            np.savez(entry / "features.npz", x=x, rows=rows)
            write_json(entry / "features.json", {"shard": self.shard.__dict__, "failures": failures,
                                                 "inputs": facts.to_dict()})  # fmt: skip
            return
        arrays, failures, inputs = _join(task, frontend)
        np.savez(entry / "features.npz", **arrays)  # type: ignore[arg-type]  # numpy's stub: mypy matches **arrays to allow_pickle: bool too
        notes = {split: _input_notes(facts, frontend) for split, facts in inputs.items()}
        write_json(entry / "features.json", {"frontend": self.frontend, "failures": failures, "inputs": notes})



def _input_notes(facts: InputFacts, frontend: Any) -> dict[str, Any]:
    """A split's counts of clips cut, padded, resampled or mixed down (images resized, stretched, converted), and
    the warnings they call for; a plug-in counts nothing."""
    counts, warnings = facts.notes(getattr(frontend, "spec", None))
    return {"counts": counts, "warnings": warnings}


def _join(task: TaskContext, frontend: Any) -> tuple[dict[str, np.ndarray], dict[str, str], dict[str, InputFacts]]:
    """Every split's arrays: joined from its shards (the task's deps, in plan order) or computed here."""
    shards: dict[str, list[Path]] = {}
    for key in task.deps:
        folder = task.entry("features", key)
        shards.setdefault(read_json(folder / "features.json")["shard"]["split"], []).append(folder)
    arrays: dict[str, np.ndarray] = {}
    failures: dict[str, str] = {}
    inputs = {split: InputFacts() for split in SPLITS}
    for split in SPLITS:
        frame = task.sweep.frames[split]
        if split in shards:
            parts = []
            for folder in shards[split]:
                with np.load(folder / "features.npz") as stored:
                    parts.append((stored["x"], stored["rows"]))
                stored_json = read_json(folder / "features.json")
                failures.update(stored_json["failures"])
                inputs[split].merge(InputFacts.from_dict(stored_json["inputs"]))
            x, rows = np.concatenate([part[0] for part in parts]), np.concatenate([part[1] for part in parts])
        elif frame.empty:
            x, rows = np.zeros((0, *arrays["train_x"].shape[1:]), np.float32), np.zeros(0, np.int64)  # train never is
        else:
            x, rows, found, inputs[split] = _split_features(frame, frontend)
            failures.update(found)
        arrays[f"{split}_x"], arrays[f"{split}_rows"] = x, rows
    return arrays, failures, inputs


def _split_features(frame: pd.DataFrame, frontend: Any) -> tuple[np.ndarray, np.ndarray, dict[str, str], InputFacts]:
    """Model inputs, manifest row positions, failures (by manifest path) and what the front-end changed to fit, of
    ``frame``'s clips (not empty)."""
    from ondevice_audit.frontend.features import compute_features

    features = compute_features(frame, frontend)
    relative = dict(zip(frame["file"], frame["path"], strict=True))
    failures = {relative[file]: reason for file, reason in features.failures.items()}
    return features.inputs, features.frame.index.to_numpy(np.int64), failures, features.facts
