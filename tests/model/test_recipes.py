"""Every recipe builds for the study's input shapes, ends in a softmax, and clips oversized kernels."""

from __future__ import annotations

import numpy as np
import pytest

from ondevice_audit.errors import UsageError
from ondevice_audit.model.recipes import RECIPES, get_recipe

MFCC = (49, 10, 1)
LOGMEL = (49, 40, 1)
IMAGE = (32, 32, 3)
SHAPES = {"audio": (MFCC, LOGMEL), "image": (IMAGE, MFCC)}


@pytest.mark.parametrize("name", list(RECIPES))
def test_recipe_builds_a_softmax_classifier_for_each_input(name: str) -> None:
    recipe = RECIPES[name]
    for shape in SHAPES[recipe.modality]:
        model = recipe.build(shape, 7)
        assert model.input_shape == (None, *shape)
        assert model.output_shape == (None, 7)
        scores = np.asarray(model(np.zeros((2, *shape), np.float32), training=False))
        np.testing.assert_allclose(scores.sum(axis=1), 1.0, rtol=1e-5)


def test_paper_kernels_fit_the_inputs_they_were_designed_for() -> None:
    assert get_recipe("ds-cnn").build_recorded(MFCC, 12).adjustments == ()
    assert get_recipe("cnn-trad-fpool3").build_recorded(LOGMEL, 12).adjustments == ()
    assert get_recipe("cnn-one-fstride4").build_recorded(LOGMEL, 12).adjustments == ()
    assert get_recipe("image-cnn").build_recorded(IMAGE, 10).adjustments == ()


def test_kernels_larger_than_the_feature_map_are_clipped_and_recorded() -> None:
    built = get_recipe("cnn-trad-fpool3").build_recorded((16, 6, 1), 3)
    conv1 = built.model.get_layer("conv1")
    assert conv1.kernel_size == (16, 6)  # 20x8 on a 16x6 input
    assert built.adjustments[0] == "conv1: kernel 20x8 clipped to 16x6 (feature map 16x6)"
    # On 10 MFCC the 20x8 kernel fits, but after frequency pooling conv2's 4 bins do not.
    mfcc = get_recipe("cnn-trad-fpool3").build_recorded(MFCC, 3)
    assert mfcc.model.get_layer("conv1").kernel_size == (20, 8)
    assert mfcc.model.get_layer("conv2").kernel_size == (10, 1)
    assert mfcc.adjustments == ("conv2: kernel 10x4 clipped to 10x1 (feature map 30x1)",)
    stride = get_recipe("cnn-one-fstride4").build_recorded((20, 10, 1), 3)
    assert stride.model.get_layer("conv1").kernel_size == (20, 8)
    assert stride.model.get_layer("conv1").strides == (1, 4)
    assert stride.adjustments == ("conv1: kernel 32x8 clipped to 20x8 (feature map 20x10)",)


def test_unknown_recipe_and_unusable_input_are_user_errors() -> None:
    with pytest.raises(UsageError, match="choose one of ds-cnn, cnn-trad-fpool3, cnn-one-fstride4, image-cnn"):
        get_recipe("resnet-50")
    with pytest.raises(UsageError, match="needs a \\(height, width, channels\\) input"):
        get_recipe("ds-cnn").build((16000,), 3)
