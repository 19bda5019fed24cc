"""Magnitude pruning with tfmot, reporting the sparsity the weights actually have.

tfmot silently skips what it cannot prune (DepthwiseConv2D is registered with no prunable weights), and
its default schedule frequency (100 steps) leaves a short fine-tune at 0 % sparsity. So only Conv2D and
Dense kernels are wrapped, the schedule is laid out over the real number of fine-tune steps, and the
result carries the sparsity measured from the stripped weights plus every kernel left dense.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from ondevice_audit import _tensorflow
from ondevice_audit.errors import UsageError
from ondevice_audit.progress import NullProgress, Progress

__all__ = ["SCHEDULES", "PruneResult", "UnprunableLayer", "kernel_sparsity", "keras_sparsity", "prune"]

SCHEDULES = ("constant", "polynomial")
_MAX_MASK_UPDATES = 10
_RAMP_FRACTION = 0.75
"""Polynomial schedules reach the target after this share of the steps; the rest lets accuracy recover."""


@dataclass(frozen=True)
class UnprunableLayer:
    name: str
    type: str
    params: int


@dataclass
class PruneResult:
    model: Any
    """The fine-tuned model with pruning wrappers stripped: plain layers, zeros in the kernels."""
    requested_sparsity: float
    achieved_sparsity: float
    """Share of zeros over all pruned kernels, measured from the weights."""
    per_layer: dict[str, float] = field(default_factory=dict)
    """Pruned layer -> measured kernel sparsity."""
    unprunable: list[UnprunableLayer] = field(default_factory=list)
    """Layers with kernels that tfmot could not prune, which stay dense."""
    model_sparsity: float = 0.0
    """Share of zeros over every kernel in the model, pruned or not: what a size estimate should use."""
    schedule: dict[str, Any] = field(default_factory=dict)
    """The tfmot schedule actually used (begin/end step, frequency)."""
    history: dict[str, list[float]] = field(default_factory=dict)

    def facts(self) -> dict[str, Any]:
        """What an exported file's metadata says of its pruning (``requested``/``achieved_sparsity``...)."""
        return {
            "requested_sparsity": self.requested_sparsity,
            "achieved_sparsity": self.achieved_sparsity,
            "model_sparsity": self.model_sparsity,
            "prune_schedule": self.schedule,
            "unprunable_layers": [dataclasses.asdict(layer) for layer in self.unprunable],
        }


def _is_prunable(layer: Any, layers: Any) -> bool:
    # DepthwiseConv2D and SeparableConv2D are not Conv2D subclasses in Keras 2, so they stay unwrapped.
    return isinstance(layer, (layers.Conv2D, layers.Dense))


def _kernels(layer: Any) -> list[np.ndarray]:
    """Weights of rank >= 2: kernels and embeddings, not biases or normalisation statistics."""
    return [w for w in layer.get_weights() if w.ndim >= 2]


def kernel_sparsity(model: Any) -> dict[str, float]:
    """Layer name -> share of exact zeros in its kernels, for every layer that has one."""
    sparsity = {}
    for layer in model.layers:
        kernels = _kernels(layer)
        if kernels:
            sparsity[layer.name] = float(sum((k == 0).sum() for k in kernels) / sum(k.size for k in kernels))
    return sparsity


def keras_sparsity(model: Any) -> dict[str, float | int]:
    """The fields of ``sweep.weights.FileSparsity`` measured on a Keras model's weights, for a model that is
    never converted (a user's Keras model swept as given)."""
    layers = _tensorflow.keras().layers
    with_kernels = [layer for layer in model.layers if _kernels(layer)]
    prunable = [layer for layer in with_kernels if _is_prunable(layer, layers)]
    return {
        "prunable": _zero_share([k for layer in prunable for k in _kernels(layer)]),
        "overall": _zero_share([k for layer in with_kernels for k in _kernels(layer)]),
        "dense_kernels": len(with_kernels) - len(prunable),
        "kernels": len(with_kernels),
    }


def _schedule(sparsity: float, kind: str, steps: int) -> tuple[Any, dict[str, Any]]:
    """A tfmot schedule over ``steps`` fine-tune steps (tfmot counts them from 1)."""
    from tensorflow_model_optimization.sparsity import keras as sparsity_keras

    if kind == "constant":
        frequency = max(1, steps // _MAX_MASK_UPDATES)
        layout = {"kind": kind, "begin_step": 1, "end_step": steps, "frequency": frequency}
        return sparsity_keras.ConstantSparsity(sparsity, begin_step=1, end_step=steps, frequency=frequency), layout
    span = max(1, int((steps - 1) * _RAMP_FRACTION))
    updates = min(span, _MAX_MASK_UPDATES)
    frequency = span // updates
    end_step = 1 + frequency * updates  # a mask update lands exactly on end_step, where the target is due
    layout = {"kind": kind, "begin_step": 1, "end_step": end_step, "frequency": frequency}
    schedule = sparsity_keras.PolynomialDecay(
        initial_sparsity=0.0, final_sparsity=sparsity, begin_step=1, end_step=end_step, frequency=frequency
    )
    return schedule, layout


def prune(
    model: Any,
    x: np.ndarray,
    y: np.ndarray,
    *,
    final_sparsity: float,
    schedule: Literal["constant", "polynomial"] = "polynomial",
    learning_rate: float,
    epochs: int,
    batch_size: int,
    seed: int,
    progress: Progress | None = None,
    mitigation: str = "none",
    train_groups: np.ndarray | None = None,
    validation: tuple[np.ndarray, np.ndarray] | None = None,
    val_groups: np.ndarray | None = None,
) -> PruneResult:
    """Prune Conv2D/Dense kernels of a copy of ``model`` to ``final_sparsity`` while fine-tuning on (x, y).

    The fine-tune uses the same ``mitigation`` as base training (``model/mitigation.py``)."""
    if not 0.0 <= final_sparsity < 1.0:
        raise UsageError(f"sparsity must be in [0, 1), got {final_sparsity}")
    if schedule not in SCHEDULES:
        raise UsageError(f"unknown pruning schedule {schedule!r}; use {' or '.join(SCHEDULES)}")
    if epochs < 1 or batch_size < 1 or learning_rate <= 0 or len(x) == 0:
        raise UsageError("pruning needs data, at least one epoch, a batch size >= 1 and a positive learning rate")
    steps = epochs * math.ceil(len(x) / batch_size)
    if schedule == "polynomial" and steps < 2:
        raise UsageError("a polynomial pruning schedule needs at least 2 fine-tune steps; add epochs or data")
    import tensorflow_model_optimization as tfmot

    from ondevice_audit.model.train import (
        compile_for_training,
        fit_with_mitigation,
        progress_callback,
        seed_everything,
    )

    keras = _tensorflow.keras()
    layers = keras.layers
    seed_everything(seed)
    # Work on a copy: wrapping reuses layer objects, and fine-tuning them would change the caller's model.
    base = keras.models.clone_model(model)
    base.set_weights(model.get_weights())
    tfmot_schedule, layout = _schedule(final_sparsity, schedule, steps)

    def wrap(layer: Any) -> Any:
        if _is_prunable(layer, layers):
            return tfmot.sparsity.keras.prune_low_magnitude(layer, pruning_schedule=tfmot_schedule)
        return layer

    wrapped = keras.models.clone_model(base, clone_function=wrap)
    compile_for_training(wrapped, learning_rate)
    with (progress or NullProgress()).task(f"Pruning to {final_sparsity:.0%}", total=epochs) as advance:
        curves, _ = fit_with_mitigation(
            wrapped, x, y, validation, epochs=epochs, batch_size=batch_size, seed=seed, mitigation=mitigation,
            train_groups=train_groups, val_groups=val_groups,
            callbacks=[tfmot.sparsity.keras.UpdatePruningStep(), progress_callback(advance)],
        )  # fmt: skip
    stripped = tfmot.sparsity.keras.strip_pruning(wrapped)
    measured = kernel_sparsity(stripped)
    pruned = [layer for layer in stripped.layers if _is_prunable(layer, layers)]
    unprunable = [
        UnprunableLayer(layer.name, type(layer).__name__, int(layer.count_params()))
        for layer in stripped.layers
        if _kernels(layer) and not _is_prunable(layer, layers)
    ]
    return PruneResult(
        model=stripped,
        requested_sparsity=final_sparsity,
        achieved_sparsity=_zero_share([k for layer in pruned for k in _kernels(layer)]),
        per_layer={layer.name: measured[layer.name] for layer in pruned},
        unprunable=unprunable,
        model_sparsity=_zero_share([k for layer in stripped.layers for k in _kernels(layer)]),
        schedule=layout,
        history={key: [float(v) for v in values] for key, values in curves.items()},
    )


def _zero_share(kernels: list[np.ndarray]) -> float:
    total = sum(k.size for k in kernels)
    return float(sum((k == 0).sum() for k in kernels) / total) if total else 0.0
