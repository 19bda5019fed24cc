"""Named Keras 2 (tf-keras) architectures from the keyword-spotting bias literature, plus two small vision CNNs.

Kernel sizes follow the papers, which assume ~49x10 MFCC or 32x40 log-mel inputs. On a smaller feature
map a kernel or pool larger than the map cannot slide over it, so it is clipped to the map and the clip is
recorded (``BuiltModel.adjustments``): reports then describe the network that was actually trained.
Layout of audio inputs is ``(frames, coefficients, 1)``: axis 1 is time, axis 2 is frequency.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from ondevice_audit import _tensorflow
from ondevice_audit.errors import UsageError

__all__ = ["RECIPES", "BuiltModel", "Recipe", "get_recipe"]


@dataclass(frozen=True)
class BuiltModel:
    model: Any
    """The ``keras.Model``: a softmax over the classes, or one sigmoid probability for a detector."""
    adjustments: tuple[str, ...]
    """One line per kernel or pool clipped to fit the input, empty when built as published."""


class _Net:
    """Builds layers against the current feature-map size, clipping what does not fit."""

    def __init__(self, input_shape: tuple[int, ...]) -> None:
        self.input_shape = input_shape
        self.layers = _tensorflow.keras().layers
        self.regularizers = _tensorflow.keras().regularizers
        self.adjustments: list[str] = []

    def fit(self, x: Any, name: str, what: str, size: tuple[int, int]) -> tuple[int, int]:
        height, width = int(x.shape[1]), int(x.shape[2])
        fitted = (min(size[0], height), min(size[1], width))
        if fitted != size:
            self.adjustments.append(
                f"{name}: {what} {size[0]}x{size[1]} clipped to {fitted[0]}x{fitted[1]} (feature map {height}x{width})"
            )
        return fitted

    def conv(
        self,
        x: Any,
        name: str,
        filters: int,
        kernel: tuple[int, int],
        strides: tuple[int, int] = (1, 1),
        padding: str = "valid",
        weight_decay: float = 0.0,
    ) -> Any:
        regularizer = self.regularizers.l2(weight_decay) if weight_decay else None
        return self.layers.Conv2D(
            filters,
            self.fit(x, name, "kernel", kernel),
            strides=strides,
            padding=padding,
            kernel_regularizer=regularizer,
            name=name,
        )(x)

    def depthwise(self, x: Any, name: str, kernel: tuple[int, int], weight_decay: float = 0.0) -> Any:
        regularizer = self.regularizers.l2(weight_decay) if weight_decay else None
        return self.layers.DepthwiseConv2D(
            self.fit(x, name, "kernel", kernel), padding="same", depthwise_regularizer=regularizer, name=name
        )(x)

    def max_pool(self, x: Any, name: str, pool: tuple[int, int]) -> Any:
        return self.layers.MaxPooling2D(self.fit(x, name, "pool", pool), name=name)(x)

    def bn_relu(self, x: Any, name: str) -> Any:
        # momentum 0.9, not Keras' 0.99: our trainings are a few hundred steps, and 0.99 moving averages then
        # lag the weights so far that a model at 100 % training accuracy predicted near chance at inference
        # (measured on the bundled synth-kws data: 35 % vs 100 % with 0.9).
        x = self.layers.BatchNormalization(momentum=0.9, name=f"{name}_bn")(x)
        return self.layers.ReLU(name=f"{name}_relu")(x)


def _ds_cnn(net: _Net, x: Any) -> Any:
    """MLPerf Tiny KWS reference (DS-CNN small, Zhang et al. 2017 "Hello Edge"): 64 channels, 4 DS blocks."""
    layers, decay = net.layers, 1e-4
    x = net.conv(x, "conv1", 64, (10, 4), strides=(2, 2), padding="same", weight_decay=decay)
    x = net.bn_relu(x, "conv1")
    x = layers.Dropout(0.2, name="conv1_dropout")(x)
    for block in range(1, 5):
        x = net.depthwise(x, f"ds{block}_depthwise", (3, 3), weight_decay=decay)
        x = net.bn_relu(x, f"ds{block}_depthwise")
        x = net.conv(x, f"ds{block}_pointwise", 64, (1, 1), padding="same", weight_decay=decay)
        x = net.bn_relu(x, f"ds{block}_pointwise")
    x = layers.Dropout(0.4, name="dropout")(x)
    # The reference pools (input/2) cells; on a stride-2 'same' map that always leaves one cell.
    height, width = int(x.shape[1]), int(x.shape[2])
    pool = (max(1, min(height, int(net.input_shape[0] / 2))), max(1, min(width, int(net.input_shape[1] / 2))))
    x = layers.AveragePooling2D(pool, name="avg_pool")(x)
    return layers.Flatten(name="flatten")(x)


def _cnn_trad_fpool3(net: _Net, x: Any) -> Any:
    """Sainath & Parada 2015, cnn-trad-fpool3: 64 filters of 20 frames x 8 bins, max-pool 3 in frequency.

    The paper's low-rank linear layer is omitted; global average pooling keeps the head input-size free.
    """
    layers = net.layers
    x = net.conv(x, "conv1", 64, (20, 8))
    x = net.bn_relu(x, "conv1")
    x = net.max_pool(x, "pool1", (1, 3))
    x = net.conv(x, "conv2", 64, (10, 4))
    x = net.bn_relu(x, "conv2")
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dense(128, activation="relu", name="dense1")(x)
    return layers.Dropout(0.2, name="dropout")(x)


def _cnn_one_fstride4(net: _Net, x: Any) -> Any:
    """Sainath & Parada 2015, cnn-one-fstride4: one conv of 186 filters, 32 frames x 8 bins, stride 4 in
    frequency, for low-compute devices; then two dense layers of 128."""
    layers = net.layers
    x = net.conv(x, "conv1", 186, (32, 8), strides=(1, 4))
    x = net.bn_relu(x, "conv1")
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dense(128, activation="relu", name="dense1")(x)
    x = layers.Dense(128, activation="relu", name="dense2")(x)
    return layers.Dropout(0.2, name="dropout")(x)


def _image_cnn(net: _Net, x: Any) -> Any:
    """Three 3x3 conv blocks (16, 32, 64 channels) with 2x2 max-pooling: a ~25k-parameter vision baseline."""
    layers = net.layers
    for i, filters in enumerate((16, 32, 64), start=1):
        x = net.conv(x, f"conv{i}", filters, (3, 3), padding="same")
        x = net.bn_relu(x, f"conv{i}")
        if i < 3:
            x = net.max_pool(x, f"pool{i}", (2, 2))
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    return layers.Dropout(0.3, name="dropout")(x)


def _mobilenet_tiny(net: _Net, x: Any) -> Any:
    """MobileNet v1 (Howard et al. 2017) shrunk for 32x32 inputs: a stride-2 stem, then four depthwise-separable
    blocks (32, 64, 64, 128 channels; stride 2 in the second and fourth), built from scratch with no pretrained
    weights. The architecture on-device vision models descend from, to set against ``image-cnn``'s plain convs."""
    layers = net.layers
    x = net.conv(x, "conv1", 16, (3, 3), strides=(2, 2), padding="same")
    x = net.bn_relu(x, "conv1")
    for block, (filters, stride) in enumerate(((32, 1), (64, 2), (64, 1), (128, 2)), start=1):
        x = layers.DepthwiseConv2D(
            net.fit(x, f"ds{block}_depthwise", "kernel", (3, 3)),
            strides=stride,
            padding="same",
            name=f"ds{block}_depthwise",
        )(x)
        x = net.bn_relu(x, f"ds{block}_depthwise")
        x = net.conv(x, f"ds{block}_pointwise", filters, (1, 1), padding="same")
        x = net.bn_relu(x, f"ds{block}_pointwise")
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    return layers.Dropout(0.2, name="dropout")(x)


@dataclass(frozen=True)
class Recipe:
    name: str
    description: str
    modality: Literal["audio", "image"]
    body: Callable[[_Net, Any], Any]
    """Input tensor -> flat features; ``build`` adds the head (softmax classifier or sigmoid detector)."""

    def build(self, input_shape: Sequence[int], n_classes: int) -> Any:
        """A fresh, uncompiled ``keras.Model`` with a softmax over ``n_classes``; ``n_classes=1`` is a detector:
        one sigmoid probability that the clip holds the phrase (a one-class softmax would always output 1)."""
        return self.build_recorded(input_shape, n_classes).model

    def normalization_axis(self) -> int:
        """Inputs are standardised per MFCC/mel coefficient (audio) or per colour channel (image)."""
        return -2 if self.modality == "audio" else -1

    def build_recorded(
        self, input_shape: Sequence[int], n_classes: int, normalization: tuple[np.ndarray, np.ndarray] | None = None
    ) -> BuiltModel:
        """Like ``build``, with the list of kernels and pools clipped to fit ``input_shape``.

        ``normalization`` (mean, variance along ``normalization_axis``) becomes the first layer. Raw log-mel
        and MFCC values span hundreds of dB; without it BatchNorm's moving statistics lag the training-mode
        ones and a model that fits its training data can predict near chance at inference.
        """
        shape = tuple(int(d) for d in input_shape)
        if len(shape) != 3 or min(shape) < 1:
            raise UsageError(
                f"recipe {self.name} needs a (height, width, channels) input such as MFCC or log-mel "
                f"features, not {shape}"
            )
        if n_classes < 1:
            raise UsageError(f"a model needs at least one output (a detector) or two classes, got {n_classes}")
        keras = _tensorflow.keras()
        net = _Net(shape)
        inputs = keras.Input(shape=shape, name="input")
        x = inputs
        if normalization is not None:
            mean, variance = normalization
            x = keras.layers.Normalization(
                axis=self.normalization_axis(), mean=mean, variance=variance, name="standardise"
            )(x)
        features = self.body(net, x)
        if n_classes == 1:
            outputs = keras.layers.Dense(1, activation="sigmoid", name="detector")(features)
        else:
            outputs = keras.layers.Dense(n_classes, activation="softmax", name="classifier")(features)
        model = keras.Model(inputs, outputs, name=self.name.replace("-", "_"))
        return BuiltModel(model, tuple(net.adjustments))


RECIPES: dict[str, Recipe] = {
    recipe.name: recipe
    for recipe in (
        Recipe("ds-cnn", "MLPerf Tiny KWS depthwise-separable CNN (small)", "audio", _ds_cnn),
        Recipe("cnn-trad-fpool3", "Sainath & Parada 2015 two-layer CNN, frequency pooling", "audio", _cnn_trad_fpool3),
        Recipe(
            "cnn-one-fstride4", "Sainath & Parada 2015 one-layer CNN, frequency stride 4", "audio", _cnn_one_fstride4
        ),
        Recipe("image-cnn", "small three-block vision CNN", "image", _image_cnn),
        Recipe("mobilenet-tiny", "MobileNet-v1-style depthwise-separable vision CNN", "image", _mobilenet_tiny),
    )
}


def get_recipe(name: str) -> Recipe:
    try:
        return RECIPES[name]
    except KeyError:
        raise UsageError(f"unknown recipe {name!r}; choose one of {', '.join(RECIPES)}") from None
