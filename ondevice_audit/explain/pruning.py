"""A pruned variant explained layer by layer against its dense base, and candidates with layers restored dense.

Pruning has no debugger; the comparison is the same shape as the quantization debugger's. For every layer with
weights (in both models, same name and weight shapes) the *base's* input to that layer goes through the base's
layer and through the variant's, and the difference is the layer's own change: not the change of the layers
before it carried along. Its per-clip mean square and the base output's power are summed per speaker, as
``QuantizationDebug.layer_errors`` sums the debugger's. A fine-tune after pruning changes every layer a
little; the kernels' sparsity is reported next to each, so a changed layer that was not pruned is visible.

A candidate is the variant with the top-ranked layers' weights put back from the base (pruned 0 % there), with
no further fine-tuning: cheap to make, and audited like every other candidate before anything is recommended.
"""

from __future__ import annotations

from collections.abc import Sequence
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
        layers = []
        for layer in self.base.layers:
            if not layer.weights:
                continue
            try:
                other = self.variant.get_layer(layer.name)
            except ValueError:
                continue
            if [w.shape for w in other.get_weights()] != [w.shape for w in layer.get_weights()]:
                continue
            layers.append(Layer(layer.name, type(layer).__name__, layer.name, None, _sparsity(other), _sparsity(layer)))
        if not layers:
            raise UsageError("no layer of the variant matches the base's (same name and weight shapes)")
        return layers

    def reference_runs(self, out: Path) -> list[tuple[str, Path]]:
        return []

    def layer_errors(self, inputs: np.ndarray, units: np.ndarray, progress: Progress) -> LayerErrors:
        keras = _tensorflow.keras()
        names = [layer.node for layer in self.layers]
        base_layers = [self.base.get_layer(name) for name in names]
        probe = keras.Model(self.base.inputs, [[layer.input, layer.output] for layer in base_layers])
        n_units = int(units.max()) + 1 if len(units) else 0
        squared, power = np.zeros((n_units, len(names))), np.zeros((n_units, len(names)))
        with progress.task("Pruned layers against their dense selves", total=len(inputs)) as step:
            for start in range(0, len(inputs), _BATCH):
                batch = inputs[start : start + _BATCH]
                rows = units[start : start + _BATCH]
                for i, (layer_input, base_output) in enumerate(probe(batch, training=False)):
                    pruned = np.asarray(self.variant.get_layer(names[i])(layer_input, training=False), np.float64)
                    dense = np.asarray(base_output, np.float64).reshape(len(batch), -1)
                    error = np.mean(np.square(pruned.reshape(len(batch), -1) - dense), axis=1)
                    np.add.at(squared[:, i], rows, error)
                    np.add.at(power[:, i], rows, np.mean(np.square(dense), axis=1))
                step(len(batch))
        return LayerErrors(list(self.layers), squared, power)

    def candidate(self, layers: Sequence[Layer], out: Path, stem: str) -> Path:
        from ondevice_audit.export.variants import save_keras

        model = _load(self.variant_path, self.trust_model)
        for layer in layers:
            model.get_layer(layer.node).set_weights(self.base.get_layer(layer.node).get_weights())
        extra = {**self.metadata.extra, "restored_dense": [layer.name for layer in layers]}
        path = out / f"{stem}.keras"
        save_keras(model, path, ModelMetadata(self.metadata.labels, self.metadata.frontend, extra))
        return path
