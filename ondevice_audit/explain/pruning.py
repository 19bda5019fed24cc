"""A pruned variant explained layer by layer against its dense base, and candidates with layers restored dense.

Pruning has no debugger; the comparison is the same shape as the quantization debugger's. The units are the
layers the variant prunes (a kernel sparser than the base's, same name and weight shapes in both), each with
the layers named after it that follow it (``conv1`` with ``conv1_bn``, ``conv1_relu``: what a converter fuses
into one op, and what a fine-tune after pruning adapts to the pruned kernel). The *base's* input to the unit
goes through the base's unit and through the variant's, and the difference is the unit's own change: not the
change of the layers before it carried along. Its per-clip mean square and the base output's power are summed
per speaker, as ``QuantizationDebug.layer_errors`` sums the debugger's.

A candidate is the variant with the top-ranked units' weights put back from the base (pruned 0 % there, with
their own normalisation), with no further fine-tuning: cheap to make, and audited like every other candidate
before anything is recommended.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from operator import methodcaller
from pathlib import Path
from typing import Any

import numpy as np

from ondevice_audit import _tensorflow
from ondevice_audit._files import model_format
from ondevice_audit.errors import UsageError
from ondevice_audit.explain.interface import Explainer, Layer, LayerErrors
from ondevice_audit.export.metadata import ModelMetadata
from ondevice_audit.progress import Progress

__all__ = ["PruningExplainer"]

_BATCH = 256
_KERNELS = ("kernel", "depthwise_kernel")


def _load(path: Path, trust_model: bool) -> Any:
    kwargs = {"safe_mode": not trust_model} if path.suffix.lower() == ".keras" else {}
    try:
        return _tensorflow.keras().models.load_model(str(path), compile=False, **kwargs)
    except Exception as exc:  # Keras raises ValueError, OSError, TypeError... for a bad file
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError(f"{path}: not a Keras model TensorFlow can load ({first})") from None


def _sparsity(layer: Any) -> float | None:
    kernels = [w for w in layer.weights if w.name.split("/")[-1].split(":")[0] in _KERNELS]
    if not kernels:
        return None
    values = np.concatenate([np.ravel(k.numpy()) for k in kernels])
    return float(np.mean(values == 0))


class PruningExplainer(Explainer):
    kind = "pruning"
    undo = "restored dense"

    def __init__(self, base: Any, variant_path: Path, metadata: ModelMetadata, trust_model: bool):
        self.base = base
        self.variant_path = variant_path
        self.variant = _load(variant_path, trust_model)
        self.metadata = metadata
        self.trust_model = trust_model
        self.units: dict[str, list[str]] = {}
        """Pruned layer -> it and the layers named after it that follow it, restored together."""
        self.layers = self._matching_layers()

    @classmethod
    def open(cls, base: Path, variant: Path, metadata: ModelMetadata, trust_model: bool) -> PruningExplainer:
        """Both models as Keras; a variant that is neither full-integer nor sparser than its base is refused."""
        for role, path in (("variant", variant), ("base", base)):
            if model_format(path) != "keras":
                raise UsageError(
                    f"{role} {path.name}: explain takes a full-integer (int8) .tflite variant, or a pruned Keras "
                    "variant with its dense Keras base (export --prune writes MODEL-pNN.keras)"
                )
        explainer = cls(_load(base, trust_model), variant, metadata, trust_model)
        if not any((layer.sparsity or 0) > (layer.base_sparsity or 0) for layer in explainer.layers):
            raise UsageError(
                f"variant {variant.name} is not sparser than the base in any layer: nothing pruned to explain"
            )
        return explainer

    def _matching_layers(self) -> list[Layer]:
        """The pruned layers, in model order; each unit's companions in ``self.units``."""
        names = [layer.name for layer in self.base.layers]
        layers, self.units = [], {}
        for layer in self.base.layers:
            try:
                other = self.variant.get_layer(layer.name)
            except ValueError:
                continue
            sparsity, base_sparsity = _sparsity(other), _sparsity(layer)
            same = [w.shape for w in other.get_weights()] == [w.shape for w in layer.get_weights()]
            if not same or sparsity is None or sparsity <= (base_sparsity or 0.0):
                continue
            prefix = f"{layer.name}_"
            after = names[names.index(layer.name) + 1 :]
            companions = list(itertools.takewhile(methodcaller("startswith", prefix), after))
            self.units[layer.name] = [layer.name, *companions]
            layers.append(Layer(layer.name, type(layer).__name__, layer.name, None, sparsity, base_sparsity))
        return layers

    def reference_runs(self, out: Path) -> list[tuple[str, Path]]:
        return []

    def layer_errors(self, inputs: np.ndarray, units: np.ndarray, progress: Progress) -> LayerErrors:
        keras = _tensorflow.keras()
        chains = [self.units[layer.node] for layer in self.layers]
        ends = [[self.base.get_layer(chain[0]).input, self.base.get_layer(chain[-1]).output] for chain in chains]
        probe = keras.Model(self.base.inputs, ends)
        n_units = int(units.max()) + 1 if len(units) else 0
        squared, power = np.zeros((n_units, len(chains))), np.zeros((n_units, len(chains)))
        with progress.task("Pruned layers against their dense selves", total=len(inputs)) as step:
            for start in range(0, len(inputs), _BATCH):
                batch = inputs[start : start + _BATCH]
                rows = units[start : start + _BATCH]
                for i, (unit_input, base_output) in enumerate(probe(batch, training=False)):
                    pruned = unit_input
                    for name in chains[i]:
                        pruned = self.variant.get_layer(name)(pruned, training=False)
                    dense = np.asarray(base_output, np.float64).reshape(len(batch), -1)
                    error = np.mean(np.square(np.asarray(pruned, np.float64).reshape(len(batch), -1) - dense), axis=1)
                    np.add.at(squared[:, i], rows, error)
                    np.add.at(power[:, i], rows, np.mean(np.square(dense), axis=1))
                step(len(batch))
        return LayerErrors(list(self.layers), squared, power)

    def candidate(self, layers: Sequence[Layer], out: Path, stem: str) -> Path:
        from ondevice_audit.export.variants import save_keras

        model = _load(self.variant_path, self.trust_model)
        for name in (name for layer in layers for name in self.units[layer.node]):
            model.get_layer(name).set_weights(self.base.get_layer(name).get_weights())
        extra = {**self.metadata.extra, "restored_dense": [layer.name for layer in layers]}
        path = out / f"{stem}.keras"
        save_keras(model, path, ModelMetadata(self.metadata.labels, self.metadata.frontend, extra))
        return path
