"""Pruning reaches the requested sparsity on what tfmot can prune, measured from the weights, and says
which kernels stay dense."""

from __future__ import annotations

import numpy as np
import pytest

from ondevice_audit.errors import UsageError
from ondevice_audit.model.recipes import get_recipe
from ondevice_audit.optimize.prune import kernel_sparsity, prune

SHAPE = (16, 10, 1)


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 64)
    x = rng.standard_normal((64, *SHAPE)).astype(np.float32) + y[:, None, None, None]
    return x, y


@pytest.fixture(scope="module")
def ds_cnn() -> object:
    return get_recipe("ds-cnn").build(SHAPE, 3)


def test_polynomial_schedule_reaches_target_on_a_short_fine_tune(ds_cnn, data) -> None:
    before = [w.copy() for w in ds_cnn.get_weights()]
    # 64 samples / 16 per batch * 2 epochs = 8 steps: tfmot's default frequency (100) would never prune.
    result = prune(
        ds_cnn, *data, final_sparsity=0.5, schedule="polynomial", learning_rate=1e-3, epochs=2, batch_size=16, seed=0
    )
    assert result.requested_sparsity == 0.5
    assert abs(result.achieved_sparsity - 0.5) <= 0.05
    assert set(result.per_layer) == {
        "conv1",
        "ds1_pointwise",
        "ds2_pointwise",
        "ds3_pointwise",
        "ds4_pointwise",
        "classifier",
    }
    for name, sparsity in result.per_layer.items():
        assert abs(sparsity - 0.5) <= 0.05, name
    assert result.schedule == {"kind": "polynomial", "begin_step": 1, "end_step": 6, "frequency": 1}
    # DepthwiseConv2D kernels stay dense, so the whole model is less sparse than requested.
    assert [(u.name, u.type, u.params) for u in result.unprunable] == [
        (f"ds{i}_depthwise", "DepthwiseConv2D", 3 * 3 * 64 + 64) for i in range(1, 5)
    ]
    assert all(kernel_sparsity(result.model)[f"ds{i}_depthwise"] == 0.0 for i in range(1, 5))
    assert 0.40 < result.model_sparsity < result.achieved_sparsity
    # The pruned model is stripped (plain layers) and the caller's model is untouched.
    assert not any("prune" in type(layer).__name__.lower() for layer in result.model.layers)
    assert all(np.array_equal(a, b) for a, b in zip(before, ds_cnn.get_weights(), strict=True))


def test_constant_schedule_on_dense_and_conv(data) -> None:
    model = get_recipe("cnn-one-fstride4").build(SHAPE, 3)
    result = prune(
        model, *data, final_sparsity=0.5, schedule="constant", learning_rate=1e-3, epochs=1, batch_size=32, seed=0
    )
    assert set(result.per_layer) == {"conv1", "dense1", "dense2", "classifier"}
    assert abs(result.achieved_sparsity - 0.5) <= 0.05
    assert result.unprunable == []


def test_bad_settings_are_user_errors(ds_cnn, data) -> None:
    with pytest.raises(UsageError, match="sparsity must be in"):
        prune(ds_cnn, *data, final_sparsity=1.0, learning_rate=1e-3, epochs=1, batch_size=16, seed=0)
    with pytest.raises(UsageError, match="unknown pruning schedule"):
        prune(ds_cnn, *data, final_sparsity=0.5, schedule="cubic", learning_rate=1e-3, epochs=1, batch_size=16, seed=0)
    with pytest.raises(UsageError, match="at least 2 fine-tune steps"):
        prune(ds_cnn, *data, final_sparsity=0.5, learning_rate=1e-3, epochs=1, batch_size=64, seed=0)
