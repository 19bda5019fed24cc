"""Training a recipe on a manifest's speaker-disjoint splits.

Bias measured on speakers the model was trained on is memorisation, not reliability, so splits never
share a speaker. Training is deterministic given the seed, so a design-choice sweep compares models that
differ only in the choice under test.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ondevice_audit import _tensorflow
from ondevice_audit.data.manifest import read_manifest, select_split
from ondevice_audit.data.split import split_by_speaker
from ondevice_audit.errors import UsageError
from ondevice_audit.frontend import FrontendSpec
from ondevice_audit.frontend.features import Features, compute_features
from ondevice_audit.model.mitigation import (
    HeldoutReweighting,
    balanced_batches,
    check_mitigation,
    group_weights,
    imbalance,
    parse_imbalance,
)
from ondevice_audit.model.recipes import Recipe, get_recipe
from ondevice_audit.progress import Advance, NullProgress, Progress

__all__ = [
    "LabelledSplits",
    "compile_for_training",
    "detector_targets",
    "encode_labels",
    "fit_with_mitigation",
    "load_labelled_features",
    "prepare_splits",
    "progress_callback",
    "seed_everything",
    "train_model",
]


def seed_everything(seed: int) -> None:
    """Python, NumPy and TF seeds plus deterministic TF kernels (slower, but reruns give equal weights)."""
    _tensorflow.keras().utils.set_random_seed(seed)
    _tensorflow.tensorflow().config.experimental.enable_op_determinism()


def progress_callback(advance: Advance) -> Any:
    """A Keras callback advancing the progress bar once per finished epoch."""
    callback: Any = _tensorflow.keras().callbacks.Callback  # tf-keras has no type hints

    class _EpochProgress(callback):
        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            advance(1)

    return _EpochProgress()


def compile_for_training(model: Any, learning_rate: float) -> None:
    """Adam with the loss the model's head needs: cross-entropy over integer classes for a softmax, binary
    cross-entropy over 0/1 targets for a detector's single sigmoid (base training and fine-tunes alike)."""
    keras = _tensorflow.keras()
    detector = model.output_shape[-1] == 1
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
                  loss="binary_crossentropy" if detector else "sparse_categorical_crossentropy",
                  metrics=["accuracy"])  # fmt: skip


def detector_targets(labels: Sequence[str] | pd.Series, positive_label: str) -> np.ndarray:
    """A detector's training targets: 1 for the phrase's clips, 0 for every other clip (other words, noise)."""
    return (np.asarray(labels, dtype=str) == positive_label).astype(np.int64)


def train_model(
    recipe: str | Recipe,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray | None,
    y_val: np.ndarray | None,
    *,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    seed: int,
    n_classes: int | None = None,
    progress: Progress | None = None,
    mitigation: str = "none",
    train_groups: np.ndarray | None = None,
    val_groups: np.ndarray | None = None,
) -> tuple[Any, dict[str, Any]]:
    """Build ``recipe`` for ``x_train``'s shape and train it with Adam on integer labels (``n_classes=1``: a
    detector, trained on 0/1 targets).

    Returns the model and a history dict: per-epoch ``loss``/``accuracy`` (and ``val_*`` when a
    validation set is given), plus ``adjustments`` (kernels clipped to fit), ``mitigation`` and ``seconds``.
    ``mitigation`` (see ``model/mitigation.py``) needs ``train_groups`` (and ``val_groups`` for
    ``reweight-heldout``): the group of each training (validation) clip; group weights end up in the history.
    """
    recipe = get_recipe(recipe) if isinstance(recipe, str) else recipe
    if epochs < 1 or batch_size < 1 or learning_rate <= 0:
        raise UsageError("epochs and batch size must be at least 1 and the learning rate positive")
    if len(x_train) == 0 or len(x_train) != len(y_train):
        raise UsageError(f"training needs matching, non-empty inputs and labels ({len(x_train)} vs {len(y_train)})")
    has_val = x_val is not None and y_val is not None and len(x_val) > 0
    labels = [np.asarray(y_train)] + ([np.asarray(y_val)] if has_val else [])
    n_classes = n_classes or int(max(int(y.max()) for y in labels)) + 1
    seed_everything(seed)
    axis = recipe.normalization_axis() % np.ndim(x_train)
    other_axes = tuple(a for a in range(np.ndim(x_train)) if a != axis)
    mean, var = _moments(x_train, axis) if isinstance(x_train, np.memmap) else (
        np.mean(x_train, axis=other_axes), np.var(x_train, axis=other_axes))  # fmt: skip
    stats = (mean, var + 1e-6)
    built = recipe.build_recorded(x_train.shape[1:], n_classes, normalization=stats)
    model = built.model
    compile_for_training(model, learning_rate)
    started = time.perf_counter()
    validation = (np.asarray(x_val, np.float32), np.asarray(y_val, np.int64)) if has_val else None
    with (progress or NullProgress()).task(f"Training {recipe.name}", total=epochs) as advance:
        curves, extra = fit_with_mitigation(
            model, x_train, y_train, validation, epochs=epochs, batch_size=batch_size, seed=seed,
            mitigation=mitigation, train_groups=train_groups, val_groups=val_groups,
            callbacks=[progress_callback(advance)],
        )  # fmt: skip
    history: dict[str, Any] = {key: [float(v) for v in values] for key, values in curves.items()}
    history["mitigation"] = {"name": mitigation, **extra}
    history["adjustments"] = list(built.adjustments)
    history["seconds"] = time.perf_counter() - started
    return model, history


def _moments(x: np.ndarray, axis: int, rows: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance over every axis but ``axis`` (not the sample axis) of an array on disk, ``rows`` samples
    at a time in float64: ``np.var`` would hold a copy of the whole array."""
    count, total, squares = 0, np.zeros(x.shape[axis]), np.zeros(x.shape[axis])
    for start in range(0, len(x), rows):
        chunk = np.moveaxis(np.asarray(x[start : start + rows], np.float64), axis, -1).reshape(-1, x.shape[axis])
        count += len(chunk)
        total += chunk.sum(axis=0)
        squares += np.square(chunk).sum(axis=0)
    mean = total / count
    return mean.astype(np.float32), (squares / count - np.square(mean)).astype(np.float32)


def fit_with_mitigation(
    model: Any,
    x_train: np.ndarray,
    y_train: np.ndarray,
    validation: tuple[np.ndarray, np.ndarray] | None,
    *,
    epochs: int,
    batch_size: int,
    seed: int,
    mitigation: str,
    train_groups: np.ndarray | None,
    val_groups: np.ndarray | None,
    callbacks: list[Any],
) -> tuple[dict[str, list[float]], dict[str, Any]]:
    """``model.fit`` under a mitigation (base training and pruning fine-tunes alike); returns curves and the
    weights used. Inputs on disk (a ``np.memmap``, from ``compute_features(out=...)``) are read a batch at a time
    (``streamed_batches``) instead of being copied into memory whole."""
    streamed = isinstance(x_train, np.memmap)
    x = x_train if streamed else np.asarray(x_train, np.float32)
    y = np.asarray(y_train, np.int64)
    check_mitigation(mitigation)
    if mitigation != "none" and (train_groups is None or len(train_groups) != len(x)):
        raise UsageError(f"mitigation {mitigation} needs the group of every training clip")
    held_out = validation
    if streamed and validation is not None:
        validation = streamed_batches(
            validation[0], np.asarray(validation[1], np.int64), batch_size, seed, shuffle=False
        )
    common: dict[str, Any] = {"validation_data": validation, "verbose": 0, "callbacks": callbacks}

    def fit(weights: np.ndarray | None, first: int, last: int) -> Any:
        if streamed:
            batches = streamed_batches(x, y, batch_size, (seed, first), weights=weights)
            return model.fit(batches, initial_epoch=first, epochs=last, **common)
        return model.fit(x, y, sample_weight=weights, initial_epoch=first, epochs=last, batch_size=batch_size,
                         shuffle=True, **common)  # fmt: skip

    if mitigation == "balanced":
        steps = math.ceil(len(x) / batch_size)
        batches = balanced_batches(np.asarray(train_groups), batch_size, steps * epochs, seed)
        stream = ((x[i], y[i]) for i in batches)
        return model.fit(stream, steps_per_epoch=steps, epochs=epochs, **common).history, {}
    if mitigation == "reweight":
        groups = np.asarray(train_groups, dtype=str)
        weights = group_weights(groups)
        by_group = {g: float(weights[groups == g][0]) for g in sorted(set(groups))}
        return fit(weights, 0, epochs).history, {"sample_weight_by_group": by_group}
    if mitigation == "reweight-heldout":
        if held_out is None or val_groups is None:
            raise UsageError("reweight-heldout needs a validation split with group values")
        reweighting = HeldoutReweighting(np.asarray(train_groups), np.asarray(val_groups))
        curves: dict[str, list[float]] = {}
        for epoch in range(epochs):
            for key, values in fit(reweighting.sample_weights(), epoch, epoch + 1).history.items():
                curves.setdefault(key, []).extend(values)
            probabilities = np.asarray(
                model.predict(held_out[0] if not streamed else validation, verbose=0), np.float64
            )
            chosen = _probability_of_truth(probabilities, held_out[1])
            reweighting.update(-np.log(np.clip(chosen, 1e-7, 1.0)))
        return curves, {"group_weight_history": reweighting.history}
    return fit(None, 0, epochs).history, {}


def streamed_batches(
    x: np.ndarray,
    y: np.ndarray,
    batch_size: int,
    seed: int | tuple[int, ...],
    *,
    weights: np.ndarray | None = None,
    shuffle: bool = True,
) -> Any:
    """Batches of ``x`` (an array on disk) as a Keras ``Sequence``: ``model.fit`` copies a numpy array into one
    tensor, which for features larger than memory cannot be done. The order is shuffled each epoch with its own
    seeded generator (not Keras's), and the rows of a batch are read in file order."""
    sequence: Any = _tensorflow.keras().utils.Sequence  # tf-keras has no type hints

    class Batches(sequence):
        def __init__(self) -> None:
            super().__init__()
            self.rng = np.random.default_rng(seed)
            self.order = self.rng.permutation(len(x)) if shuffle else np.arange(len(x))

        def __len__(self) -> int:
            return math.ceil(len(x) / batch_size)

        def __getitem__(self, index: int) -> tuple[np.ndarray, ...]:
            rows = np.sort(self.order[index * batch_size : (index + 1) * batch_size])
            batch = (np.asarray(x[rows], np.float32), y[rows])
            return batch if weights is None else (*batch, weights[rows])

        def on_epoch_end(self) -> None:
            if shuffle:
                self.order = self.rng.permutation(len(x))

    return Batches()


def _probability_of_truth(probabilities: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The probability the model gave each clip's true class (a detector's p for positives, 1 - p otherwise)."""
    if probabilities.shape[1] == 1:
        return np.where(np.asarray(y) == 1, probabilities[:, 0], 1.0 - probabilities[:, 0])
    return probabilities[np.arange(len(y)), y]


def encode_labels(labels: Sequence[str], known: Sequence[str] | None = None) -> tuple[np.ndarray, list[str]]:
    """Label strings -> integer ids; classes are ``known`` (a model's output order) or the sorted labels."""
    classes = list(known) if known is not None else sorted(set(labels))
    index = {name: i for i, name in enumerate(classes)}
    unknown = sorted(set(labels) - set(index))
    if unknown:
        raise UsageError(f"labels {unknown[:5]} are not among the model's classes {classes}")
    return np.array([index[label] for label in labels], dtype=np.int64), classes


def load_labelled_features(
    manifest: Path,
    spec: FrontendSpec,
    labels: Sequence[str] | None = None,
    progress: Progress | None = None,
    split: tuple[Path, str] | None = None,
) -> tuple[Features, np.ndarray, list[str]]:
    """Features and integer labels for every file of a manifest, or of the rows ``split`` (split file, name)
    assigns to that split (classes: ``labels`` or the sorted labels)."""
    dataset = read_manifest(manifest)
    if split is not None:
        dataset = select_split(dataset, *split)
    features = compute_features(dataset.frame, spec, progress)
    y, classes = encode_labels(list(features.frame["label"]), labels)
    return features, y, classes


@dataclass
class LabelledSplits:
    """A manifest split by speaker, with features and labels for the splits that are trained on."""

    classes: list[str]
    frames: dict[str, pd.DataFrame]
    """``train``, ``val``, ``test`` manifest rows (``file`` is absolute, ``path`` as written)."""
    train: Features
    y_train: np.ndarray
    val: Features | None
    y_val: np.ndarray | None

    @property
    def failures(self) -> dict[str, str]:
        return {**self.train.failures, **(self.val.failures if self.val else {})}


def prepare_splits(
    manifest: Path,
    spec: FrontendSpec,
    *,
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    group: str | None = None,
    progress: Progress | None = None,
    train_imbalance: str | None = None,
    feature_dir: Path | None = None,
) -> LabelledSplits:
    """Read ``manifest``, split it by speaker and compute train/val features; test stays files only.

    Classes come from the whole manifest so a label seen only in the test split still has an output.
    ``train_imbalance`` (``gender=female:0.2``) then thins that group's training speakers to the share given.
    With ``feature_dir`` the features go to ``.npy`` files there, read back as memory maps (see
    ``compute_features``), for corpora whose features do not fit in memory.
    """
    frame = read_manifest(manifest, [group] if group else None).frame
    train, val, test = split_by_speaker(frame, fractions, seed, group=group)
    if train_imbalance:
        column, value, share = parse_imbalance(train_imbalance)
        train = imbalance(train, column, value, share, seed)
    classes = sorted(set(frame["label"]))
    on_disk = {name: None if feature_dir is None else feature_dir / f"{name}.npy" for name in ("train", "val")}
    train_features = compute_features(train, spec, progress, out=on_disk["train"])
    y_train, _ = encode_labels(list(train_features.frame["label"]), classes)
    val_features, y_val = None, None
    if len(val):
        val_features = compute_features(val, spec, progress, out=on_disk["val"])
        y_val, _ = encode_labels(list(val_features.frame["label"]), classes)
    return LabelledSplits(
        classes, {"train": train, "val": val, "test": test}, train_features, y_train, val_features, y_val
    )
