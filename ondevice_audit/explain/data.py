"""What ``explain`` reads: the two models (a file or a sweep cell), the audited clips, the calibration inputs.

The clips go through the variant's front-end once and stay in memory: the debugger, every audit run and the
candidates all see the same inputs, so their numbers are paired clip by clip.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ondevice_audit.data import DataError, read_manifest, select_split
from ondevice_audit.errors import UsageError
from ondevice_audit.frontend import Frontend
from ondevice_audit.frontend.features import compute_features
from ondevice_audit.optimize.quantize import QuantApproach, QuantizationConfig
from ondevice_audit.progress import Progress
from ondevice_audit.scoring import ScoreOptions
from ondevice_audit.sweep.folder import CellFolder

if TYPE_CHECKING:
    from ondevice_audit.tasks import ClassifierTask, DetectorTask

__all__ = [
    "ExplainData",
    "SweepCell",
    "calibration_inputs",
    "read_rows",
    "resolve_model",
    "sweep_calibration",
    "sweep_cell",
    "units_of",
]


def resolve_model(path: Path, role: str) -> Path:
    """A model file (or SavedModel folder) as given, or the model file of a finished sweep cell folder."""
    if not path.exists():
        raise UsageError(f"{role} not found: {path}")
    if not path.is_dir() or (path / "saved_model.pb").exists():
        return path
    cell = CellFolder(path)
    if not cell.report.is_file():
        reason = "it failed (see error.txt)" if cell.error.is_file() else "no report.json"
        raise UsageError(f"{role} {path} is not a finished sweep cell folder ({reason})")
    try:
        name = Path(json.loads(cell.report.read_text(encoding="utf-8"))["model"]["path"]).name
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"{cell.report}: not a cell report ({type(exc).__name__}: {exc})") from None
    model = cell.model(name)
    if not model.is_file():
        raise UsageError(f"{role} {path}: the cell's model file {name} is missing")
    return model


@dataclass
class ExplainData:
    """The audited clips that became model inputs."""

    frame: pd.DataFrame
    """Manifest rows (``file``, ``label``, groups, ``speaker``), aligned with ``inputs``."""
    inputs: np.ndarray
    total: int
    """Rows of the manifest (split) before the front-end."""
    failures: list[dict[str, str]]
    """``path`` and ``reason`` of every row the front-end could not read."""
    sha256: str


def read_rows(
    manifest: Path,
    options: ScoreOptions,
    task: ClassifierTask | DetectorTask,
    frontend: Frontend,
    progress: Progress,
    held_out: pd.DataFrame | None = None,
) -> ExplainData:
    """The manifest (its ``--split`` rows with ``--split-file``; else the rows of ``held_out``, a sweep's test split,
    when given) through the front-end; refused when its labels do not fit the task (a class the model does not
    know, a detector's phrase absent), as ``audit`` refuses them."""
    dataset = read_manifest(manifest, list(options.groups))
    if (options.split_file is None) != (options.split is None):
        raise UsageError("--split and --split-file go together")
    if options.split_file is not None and options.split is not None:
        dataset = select_split(dataset, options.split_file, options.split)
    elif held_out is not None:
        frame = dataset.frame[dataset.frame["path"].isin(set(held_out["path"]))].reset_index(drop=True)
        if frame.empty:
            raise DataError(f"{manifest}: none of its rows are in the sweep's test split (is it the sweep's manifest?)")
        dataset = dataclasses.replace(dataset, frame=frame)
    task.check_data(list(dataset.frame["label"]))
    features = compute_features(dataset.frame, frontend, progress)
    paths = dict(zip(dataset.frame["file"], dataset.frame["path"], strict=True))
    failures = [{"path": paths.get(file, file), "reason": reason} for file, reason in features.failures.items()]
    frame = features.frame.reset_index(drop=True)
    return ExplainData(frame, features.inputs, len(dataset.frame), failures, dataset.sha256)


def calibration_inputs(
    manifest: Path, frontend: Frontend, samples: int, seed: int, progress: Progress, train_split: Path | None = None
) -> tuple[np.ndarray, int]:
    """The inputs int8 is calibrated on, drawn as ``export`` draws them: the readable rows of ``manifest`` (those
    ``train_split`` assigns to ``train``, when given) through the front-end, then a seeded subset of ``samples``
    rows (``QuantizationConfig.calibration_set``). Returns them and how many rows they were drawn from."""
    dataset = read_manifest(manifest)
    if train_split is not None:
        dataset = select_split(dataset, train_split, "train")
    features = compute_features(dataset.frame, frontend, progress)
    chosen = QuantizationConfig(QuantApproach.INT8, samples, seed).calibration_set(features.inputs)
    assert chosen is not None
    return chosen, len(features.inputs)


@dataclass(frozen=True)
class SweepCell:
    """A sweep cell the variant came from, with what its sweep knew: the matrix and its speaker split."""

    folder: Path
    matrix: Any
    """The sweep's ``Matrix``, as it was when the sweep ran."""
    frames: Mapping[str, pd.DataFrame]
    """``train``/``val``/``test`` manifest rows, split as the sweep split them."""
    seed: int


def sweep_cell(folder: Path) -> SweepCell:
    from ondevice_audit.sweep.folder import SweepFolder
    from ondevice_audit.sweep.matrix import load_matrix
    from ondevice_audit.sweep.stages import prepare_context

    state = SweepFolder(folder.parent.parent).read_state()
    factors = next((c["factors"] for c in state.get("cells", []) if c.get("id") == folder.name), None)
    if factors is None:
        raise UsageError(f"{folder}: not a cell of the sweep in {folder.parent.parent}")
    matrix = load_matrix(Path(state["matrix"]))
    if matrix.digest() != state.get("matrix_digest"):
        raise UsageError(f"{state['matrix']} changed since the sweep ran: pass --calibration-data and --split-file")
    context = prepare_context(matrix, Path(state["cache"]))
    return SweepCell(folder, matrix, context.frames, int(factors.get("seed", 0)))


def sweep_calibration(cell: SweepCell, frontend: Frontend, progress: Progress) -> tuple[np.ndarray, dict[str, object]]:
    """The inputs a sweep cell's int8 file was calibrated on: its sweep's training split through the front-end, then
    the matrix's ``calibration_samples`` drawn with the cell's seed, as the export stage draws them."""
    features = compute_features(cell.frames["train"], frontend, progress)
    samples = cell.matrix.training.calibration_samples
    chosen = QuantizationConfig(QuantApproach.INT8, samples, cell.seed).calibration_set(features.inputs)
    assert chosen is not None
    facts = {"sweep": str(cell.folder.parent.parent), "split": "train", "rows": len(features.inputs),
             "samples": len(chosen), "seed": cell.seed}  # fmt: skip
    return chosen, facts


def units_of(frame: pd.DataFrame, column: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Each row's unit of resampling (its speaker within its group; each clip without a speaker column), each
    unit's group code, and the group names (formed as every metric frame forms them)."""
    from ondevice_audit.metrics._groups import group_attributes

    attribute = group_attributes(frame[[column]], intersections=False)[0]
    if "speaker" in frame.columns:
        units, _ = pd.factorize(frame["speaker"].astype(str) + "\x00" + pd.Series(attribute.codes).astype(str))
    else:
        units = np.arange(len(frame))
    unit_group = np.zeros(int(units.max()) + 1 if len(units) else 0, dtype=np.int64)
    unit_group[units] = attribute.codes
    return np.asarray(units, dtype=np.int64), unit_group, attribute.names
