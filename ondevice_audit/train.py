"""The train job: a recipe trained on a manifest's speaker-disjoint splits, exported with its metadata.

``ondevice-audit train`` is a thin shell over ``train_on_manifest``; the sweep's train stage calls the same
``model.train.train_model`` on cached features. The folder it writes is what ``audit`` and ``export`` read:
``model.keras``/``.tflite``/``.onnx`` carrying the front-end and label names, ``split.csv`` (which manifest row
went to which split, so the model can be audited on speakers it never heard) and ``train_summary.json``.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ondevice_audit.errors import UsageError
from ondevice_audit.frontend import AudioFrontendSpec, MicroFrontendSpec
from ondevice_audit.frontend.interface import InputFacts
from ondevice_audit.model.recipes import get_recipe
from ondevice_audit.progress import NullProgress, Progress

if TYPE_CHECKING:
    import pandas as pd

    from ondevice_audit.export.interface import ExportResult
    from ondevice_audit.model.train import LabelledSplits

__all__ = ["WRITES", "TrainOptions", "TrainOutcome", "train_on_manifest"]

WRITES = ("model.keras", "model.tflite", "model.onnx", "split.csv", "train_summary.json")
"""The files ``train_on_manifest`` writes into its folder."""


@dataclass(frozen=True)
class TrainOptions:
    """Every setting of a training run, with its default (the CLI takes its defaults from here)."""

    recipe: str = "ds-cnn"
    frontend: AudioFrontendSpec | MicroFrontendSpec = field(default_factory=AudioFrontendSpec)
    task: str = "classify"
    """``classify``: a softmax over every label; ``detect``: one sigmoid probability of ``positive_label``."""
    positive_label: str | None = None
    """The detector's phrase: its clips are the positives, every other clip a negative."""
    epochs: int = 20
    batch_size: int = 64
    learning_rate: float = 1e-3
    seed: int = 0
    """Seed for the split, initialisation and shuffling."""
    group: str | None = None
    """Group column every split represents in proportion (and that mitigations act on)."""
    split: tuple[float, float, float] = (0.8, 0.1, 0.1)
    """Train, validation, test shares of the files; speakers never straddle splits."""
    mitigation: str = "none"
    train_imbalance: str | None = None
    """``gender=female:0.2``: thin that group's training speakers (seeded)."""
    feature_memory: int = 4 * 2**30
    """Training features larger than this (bytes) are written to disk and streamed a batch at a time."""


@dataclass
class TrainOutcome:
    summary: dict[str, Any]
    """What ``train_summary.json`` holds."""
    exports: list[ExportResult]
    notes: list[str]
    """What the user should know (files left out, kernels clipped to fit the input)."""


def train_on_manifest(
    manifest: Path, out: Path, options: TrainOptions, progress: Progress | None = None
) -> TrainOutcome:
    """Split ``manifest`` by speaker, train ``options.recipe`` and write the model folder ``out``. Features over
    ``options.feature_memory`` go to a temporary folder in ``out`` (removed afterwards) and are streamed."""
    started = time.perf_counter()
    progress = progress or NullProgress()
    get_recipe(options.recipe)  # an unknown recipe is refused before any feature is computed
    if (options.mitigation != "none" or options.train_imbalance) and not options.group:
        raise UsageError("--mitigation and --train-imbalance act on a group column: pass --group")
    from ondevice_audit.data.manifest import read_manifest  # pandas: loaded by the job, not by --help
    from ondevice_audit.data.split import check_fractions

    _check_task(options)
    check_fractions(options.split)
    rows = len(read_manifest(manifest).frame)  # a missing or malformed manifest is refused before --out is made
    out.mkdir(parents=True, exist_ok=True)
    feature_dir = _feature_dir(rows, out, options)
    try:
        return _train(manifest, out, options, progress, feature_dir, started)
    finally:
        if feature_dir is not None:
            shutil.rmtree(feature_dir, ignore_errors=True)


def _feature_dir(rows: int, out: Path, options: TrainOptions) -> Path | None:
    """A temporary folder for the features when the manifest's would take more than ``options.feature_memory``
    (every row counted, the test split too: an upper bound); None when they are held in memory."""
    if rows * int(np.prod(options.frontend.input_shape)) * 4 <= options.feature_memory:
        return None
    return Path(tempfile.mkdtemp(prefix=".features-", dir=out))


def _train(
    manifest: Path, out: Path, options: TrainOptions, progress: Progress, feature_dir: Path | None, started: float
) -> TrainOutcome:
    from ondevice_audit.export.metadata import ModelMetadata
    from ondevice_audit.export.variants import export_variants, save_keras
    from ondevice_audit.model.train import prepare_splits, train_model
    from ondevice_audit.optimize.quantize import QuantApproach

    recipe = get_recipe(options.recipe)
    splits = prepare_splits(manifest, options.frontend, fractions=options.split, seed=options.seed,
                            group=options.group, progress=progress, train_imbalance=options.train_imbalance,
                            feature_dir=feature_dir)  # fmt: skip
    outputs, y_train, y_val = _targets(splits, options)
    seen = InputFacts()
    for features in (splits.train, splits.val):
        if features is not None:
            seen.merge(features.facts)
    notes = seen.notes(options.frontend)[1]
    if feature_dir is not None:
        notes.append(
            f"the features exceed {options.feature_memory / 2**30:g} GiB: streamed from disk a batch at a time"
        )
    if splits.failures:
        notes.append(f"{len(splits.failures)} files could not be read and were left out (see train_summary.json)")
    group = options.group
    model, history = train_model(
        recipe, splits.train.inputs, y_train, splits.val.inputs if splits.val else None, y_val,
        epochs=options.epochs, batch_size=options.batch_size, learning_rate=options.learning_rate,
        seed=options.seed, n_classes=len(outputs), progress=progress, mitigation=options.mitigation,
        train_groups=splits.train.frame[group].to_numpy() if group else None,
        val_groups=splits.val.frame[group].to_numpy() if group and splits.val else None,
    )  # fmt: skip
    notes += [f"{recipe.name} adjusted to the input: {note}" for note in history["adjustments"]]
    extra = _facts(recipe.name, options, history)
    metadata = ModelMetadata(labels=outputs, frontend=options.frontend, extra={**extra, "quantization": "f32"})
    save_keras(model, out / "model.keras", metadata)
    results = export_variants(model, ("tflite", "onnx"), [QuantApproach.F32], out, metadata, splits.train.inputs,
                              seed=options.seed, progress=progress)  # fmt: skip
    _write_split(out / "split.csv", splits.frames)
    summary = _summary(splits, history, extra, results, options, time.perf_counter() - started)
    summary["features_streamed_from_disk"] = feature_dir is not None
    (out / "train_summary.json").write_text(json.dumps(summary, indent=2, default=str))
    return TrainOutcome(summary, results, notes)


def _check_task(options: TrainOptions) -> None:
    if options.task not in ("classify", "detect"):
        raise UsageError(f"--task {options.task!r}: choose classify or detect")
    if options.task == "detect" and not options.positive_label:
        raise UsageError("--task detect needs --positive-label LABEL: the label of the clips that say the phrase")
    if options.task == "classify" and options.positive_label:
        raise UsageError("--positive-label names a detector's phrase: add --task detect")


def _targets(splits: LabelledSplits, options: TrainOptions) -> tuple[list[str], Any, Any]:
    """The model's output names and its training and validation targets: class ids, or a detector's 0/1."""
    from ondevice_audit.model.train import detector_targets

    positive = options.positive_label
    if positive is None:
        return splits.classes, splits.y_train, splits.y_val
    if positive not in splits.classes:
        shown = ", ".join(splits.classes[:12]) + (" ..." if len(splits.classes) > 12 else "")
        raise UsageError(f"--positive-label {positive!r} is not a label in the data ({shown})")
    y_train = detector_targets(splits.train.frame["label"], positive)
    if not y_train.any() or y_train.all():
        raise UsageError(f"a detector needs {positive!r} clips and other clips in the training split")
    y_val = detector_targets(splits.val.frame["label"], positive) if splits.val else None
    return [positive], y_train, y_val


def _facts(recipe: str, options: TrainOptions, history: dict[str, Any]) -> dict[str, Any]:
    """What the model's metadata says of how it was made (a detector: its task and phrase, which ``audit``
    reads so it needs no --task)."""
    task = {"task": "detect", "positive_label": options.positive_label} if options.task == "detect" else {}
    return {
        "recipe": recipe,
        **task,
        "adjustments": history["adjustments"],
        "features": options.frontend.kind,
        "requested_sparsity": 0.0,
        "achieved_sparsity": 0.0,
        "training": {
            "epochs": options.epochs,
            "batch_size": options.batch_size,
            "learning_rate": options.learning_rate,
            "seed": options.seed,
        },  # fmt: skip
        "mitigation": history["mitigation"],
        "train_imbalance": options.train_imbalance,
    }


def _write_split(path: Path, frames: dict[str, pd.DataFrame]) -> None:
    """Which split each manifest row went to, keyed by the manifest's own ``path`` column."""
    import pandas as pd

    columns = [c for c in ("path", "label", "speaker") if c in frames["train"].columns]
    rows = [frame[columns].assign(split=name) for name, frame in frames.items()]
    pd.concat(rows).to_csv(path, index=False)


def _summary(
    splits: LabelledSplits,
    history: dict[str, Any],
    extra: dict[str, Any],
    results: list[ExportResult],
    options: TrainOptions,
    seconds: float,
) -> dict[str, Any]:
    def described(frame: pd.DataFrame) -> dict[str, int]:
        speakers = frame["speaker"].nunique() if "speaker" in frame.columns else len(frame)
        return {"files": len(frame), "speakers": int(speakers)}

    curves = {key: values for key, values in history.items() if key not in ("adjustments", "mitigation", "seconds")}
    return {
        **extra,
        "labels": splits.classes,
        "split": {
            "fractions": options.split,
            "group": options.group,
            **{k: described(v) for k, v in splits.frames.items()},
        },  # fmt: skip
        "final": {key: values[-1] for key, values in curves.items()},
        "history": curves,
        "failed_files": splits.failures,
        "exports": [r.to_dict() for r in results],
        "training_seconds": history["seconds"],
        "seconds": seconds,
    }
