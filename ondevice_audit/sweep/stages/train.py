"""``train``: a cell's base model, once per (front-end, architecture, mitigation, seed, training settings).

A recipe is built for the features' input shape and trained on the training split (``model/train.py``, the
same function ``ondevice-audit train`` calls). With a user's Keras model (``sweep/user_model.py``) the base is
its file: a copy of its weights when the cell's front-end is the model's own, else its architecture rebuilt for
the new input shape and trained from scratch. The entry holds ``model.keras`` and ``train.json`` (settings and
training curves).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ondevice_audit.sweep.stages.base import StageSettings, TaskContext, feature_arrays, write_json

__all__ = [
    "MitigationSettings",
    "TrainSettings",
    "UserTrainSettings",
    "fresh_keras",
    "labels_of",
    "load_model",
    "mitigation_kwargs",
]

TRAINING_DISTRIBUTIONS = ("tensorflow", "tf-keras", "numpy")


@dataclass(frozen=True)
class MitigationSettings:
    """A mitigation (``model/mitigation.py``) over a group column, for base training and pruning fine-tunes."""

    name: str
    group: str


@dataclass(frozen=True)
class TrainSettings(StageSettings):
    stage = "train"
    distributions = TRAINING_DISTRIBUTIONS
    uses_tensorflow = True

    features: str
    classes: tuple[str, ...]
    architecture: str
    seed: int
    epochs: int
    batch_size: int
    learning_rate: float
    mitigation: MitigationSettings | None = None

    def run(self, task: TaskContext, entry: Path) -> None:
        from ondevice_audit.model.train import train_model

        arrays = feature_arrays(task.cache, self.features)
        has_val = len(arrays["val_x"]) > 0
        fresh_keras()  # a fresh session before building the model
        model, history = train_model(
            self.architecture,
            arrays["train_x"],
            labels_of(task, "train", arrays["train_rows"]),
            arrays["val_x"] if has_val else None,
            labels_of(task, "val", arrays["val_rows"]) if has_val else None,
            epochs=self.epochs,
            batch_size=self.batch_size,
            learning_rate=self.learning_rate,
            seed=self.seed,
            n_classes=len(task.sweep.classes),
            **mitigation_kwargs(task, arrays, self.mitigation),
        )
        model.save(str(entry / "model.keras"))
        settings: dict[str, Any] = {"architecture": self.architecture, "seed": self.seed, "epochs": self.epochs,
                                    "batch_size": self.batch_size, "learning_rate": self.learning_rate}  # fmt: skip
        chosen = {"name": self.mitigation.name, "group": self.mitigation.group} if self.mitigation else {"name": "none"}
        settings["mitigation"] = {**chosen, **history.pop("mitigation")}
        settings["train_imbalance"] = task.sweep.matrix.data.train_imbalance
        settings["train_clips"] = int(len(arrays["train_x"]))
        write_json(entry / "train.json", {"settings": settings, "history": history})


@dataclass(frozen=True)
class UserTrainSettings(StageSettings):
    """The user's Keras model as the cell's base: as given, or rebuilt for another input and retrained."""

    stage = "train"
    distributions = TRAINING_DISTRIBUTIONS
    uses_tensorflow = True

    features: str
    classes: tuple[str, ...]
    user_model: dict[str, Any]
    """``UserModel.identity()``: its content, not its place."""
    rebuild: bool
    seed: int | None = None
    epochs: int | None = None
    batch_size: int | None = None
    learning_rate: float | None = None
    """The ``[training]`` settings, only when the model is rebuilt and trained."""

    def run(self, task: TaskContext, entry: Path) -> None:
        from ondevice_audit.sweep.user_model import load_keras_model

        user = task.sweep.matrix.model
        assert user is not None
        fresh_keras()
        model = load_keras_model(user)
        history: dict[str, Any] = {"adjustments": []}
        if self.rebuild:
            model = self._retrain(task, model, history)
        model.save(str(entry / "model.keras"))
        retraining = {"seed": self.seed, "epochs": self.epochs, "batch_size": self.batch_size,
                      "learning_rate": self.learning_rate} if self.rebuild else {}  # fmt: skip
        settings = {
            "architecture": f"user:{user.name}",
            "user_model": self.user_model,
            "rebuilt_and_retrained": self.rebuild,
            **retraining,
            "mitigation": {"name": "none"},
        }
        write_json(entry / "train.json", {"settings": settings, "history": history})

    def _retrain(self, task: TaskContext, model: Any, history: dict[str, Any]) -> Any:
        from ondevice_audit import _tensorflow
        from ondevice_audit.model.train import compile_for_training, fit_with_mitigation, seed_everything
        from ondevice_audit.sweep.user_model import rebuild_for_input

        # the [training] settings come with rebuild (see the fields)
        assert self.seed is not None and self.epochs is not None and self.batch_size is not None
        assert self.learning_rate is not None
        _tensorflow.keras()  # the session load_keras_model started: rebuilt layer names follow its own
        arrays = feature_arrays(task.cache, self.features)
        has_val = len(arrays["val_x"]) > 0
        seed_everything(self.seed)  # the fresh weights too
        model = rebuild_for_input(model, tuple(arrays["train_x"].shape[1:]))
        compile_for_training(model, self.learning_rate)
        started = time.perf_counter()
        curves, _ = fit_with_mitigation(
            model, arrays["train_x"], labels_of(task, "train", arrays["train_rows"]),
            (arrays["val_x"], labels_of(task, "val", arrays["val_rows"])) if has_val else None,
            epochs=self.epochs, batch_size=self.batch_size, seed=self.seed, mitigation="none",
            train_groups=None, val_groups=None, callbacks=[],
        )  # fmt: skip
        history.update({key: [float(v) for v in values] for key, values in curves.items()})
        history["seconds"] = time.perf_counter() - started
        return model


def labels_of(task: TaskContext, split: str, rows: np.ndarray) -> np.ndarray:
    """Training targets of a split's rows: class ids, or a detector's 1 (the phrase) and 0 (anything else)."""
    from ondevice_audit.model.train import detector_targets, encode_labels

    labels = list(task.sweep.frames[split].loc[rows, "label"])
    data = task.sweep.matrix.data
    if data.task == "detect":
        return detector_targets(labels, data.positive_label)
    user = task.sweep.matrix.model
    if user is not None and user.label_map is not None:  # data labels back to the one class each stands for
        targets = user.label_map.targets(task.sweep.classes)
        labels = [targets[label] for label in labels]
    return encode_labels(labels, task.sweep.classes)[0]


def _groups(
    task: TaskContext, split: str, rows: np.ndarray, mitigation: MitigationSettings | None
) -> np.ndarray | None:
    """The mitigation group of each clip (None without a mitigation): what balancing and weights are over."""
    if mitigation is None:
        return None
    return task.sweep.frames[split].loc[rows, mitigation.group].astype(str).to_numpy()


def mitigation_kwargs(
    task: TaskContext, arrays: dict[str, np.ndarray], mitigation: MitigationSettings | None
) -> dict[str, Any]:
    """``mitigation``/``train_groups``/``val_groups`` for ``train_model`` and ``prune``."""
    return {
        "mitigation": mitigation.name if mitigation else "none",
        "train_groups": _groups(task, "train", arrays["train_rows"], mitigation),
        "val_groups": _groups(task, "val", arrays["val_rows"], mitigation) if len(arrays["val_rows"]) else None,
    }


def fresh_keras() -> Any:
    """Keras with a fresh session, so layer and graph names, and so the exported bytes, do not depend on
    what ran earlier in this process."""
    from ondevice_audit import _tensorflow

    keras = _tensorflow.keras()
    keras.backend.clear_session()
    return keras


def load_model(task: TaskContext, stage: str, key: str) -> Any:
    return fresh_keras().models.load_model(str(task.entry(stage, key) / "model.keras"), compile=False)
