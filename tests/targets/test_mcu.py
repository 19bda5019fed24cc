"""MCU budgets: sizes, board presets, ``fits`` on both sides of a budget (real TFLM arena), subsampling."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ondevice_audit.data.subsample import stratified_subsample
from ondevice_audit.errors import UsageError
from ondevice_audit.runtimes.tflm import footprint
from ondevice_audit.targets.mcu import (
    BOARDS,
    DEFAULT_RAM_HEADROOM,
    MCUBudget,
    fits,
    format_size,
    parse_size,
    resolve_budget,
)

KIB, MIB = 1024, 1024 * 1024


@pytest.fixture(scope="module")
def int8_model(tmp_path_factory) -> Path:
    """A tiny full-integer conv net, converted as ``export`` does for int8 (calibrated on noise)."""
    from ondevice_audit import _tensorflow

    tf, keras = _tensorflow.tensorflow(), _tensorflow.keras()
    keras.utils.set_random_seed(0)
    net = keras.Sequential(
        [
            keras.layers.Input((24, 10, 1)),
            keras.layers.Conv2D(16, (3, 3), activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    samples = np.random.default_rng(0).standard_normal((16, 24, 10, 1)).astype(np.float32)
    converter = tf.lite.TFLiteConverter.from_keras_model(net)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([row[None]] for row in samples)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = converter.inference_output_type = tf.int8
    path = tmp_path_factory.mktemp("mcu") / "tiny-int8.tflite"
    with warnings.catch_warnings():  # int8 I/O without input statistics: expected, the file carries the scale
        warnings.filterwarnings("ignore", message="Statistics for quantized inputs were expected")
        path.write_bytes(converter.convert())
    return path


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("256KiB", 256 * KIB),
        ("1MiB", MIB),
        ("512KB", 512_000),
        ("1 MB", 1_000_000),
        ("264kib", 264 * KIB),
        ("1.5MiB", 1536 * KIB),
        ("4096", 4096),
        ("100B", 100),
    ],
)
def test_sizes_read_decimal_and_binary_units(text: str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["256K", "lots", "", "-1KiB", "0KiB", "0.5B", "1TB"])
def test_unreadable_sizes_are_user_errors(text: str) -> None:
    with pytest.raises(UsageError, match="size"):
        parse_size(text)


def test_sizes_print_in_binary_units() -> None:
    assert [format_size(n) for n in (512, 16 * KIB, 1536 * KIB)] == ["512 B", "16.0 KiB", "1.5 MiB"]


def test_board_presets_hold_the_documented_sizes() -> None:
    sizes = {name: (board.ram_bytes, board.flash_bytes) for name, board in BOARDS.items()}
    assert sizes == {
        "nano33ble": (256 * KIB, MIB),
        "esp32s3": (512 * KIB, 8 * MIB),
        "pico": (264 * KIB, 2 * MIB),
        "stm32f746disco": (320 * KIB, MIB),
    }
    documented = (Path(__file__).parents[2] / "docs" / "mcu-boards.md").read_text()
    for name, board in BOARDS.items():
        assert f"`{name}`" in documented and board.title in documented


def test_budgets_come_from_a_board_or_sizes() -> None:
    assert resolve_budget() is None
    nano = resolve_budget(board="Nano33BLE")
    assert nano == MCUBudget(256 * KIB, MIB, "Arduino Nano 33 BLE Sense (nRF52840)")
    smaller = resolve_budget(board="nano33ble", ram="128KiB")
    assert (smaller.ram_bytes, smaller.flash_bytes) == (128 * KIB, MIB)
    assert smaller.label.endswith("(sizes overridden)")
    assert resolve_budget(ram="200KB") == MCUBudget(200_000, None, "custom budget")
    with pytest.raises(UsageError, match="unknown board 'uno'; choose one of nano33ble, esp32s3, pico"):
        resolve_budget(board="uno")


def test_fits_on_both_sides_of_the_budget(int8_model) -> None:
    measured = footprint(int8_model)
    arena, flash = measured.arena_bytes, measured.flash_bytes
    assert arena > 0 and flash == int8_model.stat().st_size

    exact = fits(int8_model, MCUBudget(arena, flash), ram_headroom=0, flash_headroom=0)
    assert (exact.ok, exact.ram_ok, exact.flash_ok, exact.arena_bytes) == (True, True, True, arena)
    short = fits(int8_model, MCUBudget(arena - 1, flash - 1), ram_headroom=0, flash_headroom=0)
    assert (short.ok, short.ram_ok, short.flash_ok) == (False, False, False)
    assert f"arena {format_size(arena)} exceeds" in short.reason
    assert "custom budget: " in short.reason

    # the default headroom keeps a quarter of RAM for the firmware: an arena-sized budget no longer fits
    tight = fits(int8_model, MCUBudget(arena, None))
    assert not tight.ram_ok and tight.flash_ok and tight.ram_limit_bytes == int(arena * (1 - DEFAULT_RAM_HEADROOM))
    roomy = fits(int8_model, MCUBudget(2 * arena, None))
    assert roomy.ok and "25% of RAM and 25% of flash kept for the firmware" in roomy.reason

    board = fits(int8_model, resolve_budget(board="pico"))
    assert board.ok and board.reason.startswith("Raspberry Pi Pico (RP2040): arena ")
    assert board.to_dict()["budget"]["ram_bytes"] == 264 * KIB and board.to_dict()["ok"] is True


def test_a_model_tflm_cannot_run_fits_nothing(tmp_path) -> None:
    from ondevice_audit import _tensorflow

    tf, keras = _tensorflow.tensorflow(), _tensorflow.keras()
    net = keras.Sequential([keras.layers.Input((8,)), keras.layers.Dense(4), keras.layers.Activation("gelu")])
    path = tmp_path / "gelu.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(net).convert())
    result = fits(path, resolve_budget(board="esp32s3"))
    assert result.arena_bytes is None and not result.ram_ok and result.flash_ok and not result.ok
    assert "TFLM cannot run it: gelu.tflite: TensorFlow Lite Micro has no kernel for GELU" in result.reason


def test_fits_refuses_bad_headroom_and_missing_models(int8_model, tmp_path) -> None:
    with pytest.raises(UsageError, match="RAM headroom must be a share of the budget in \\[0, 1\\), got 1.5"):
        fits(int8_model, MCUBudget(MIB, MIB), ram_headroom=1.5)
    with pytest.raises(UsageError, match="model not found"):
        fits(tmp_path / "missing.tflite", MCUBudget(MIB, MIB))


@pytest.fixture
def clips() -> pd.DataFrame:
    gender = ["female"] * 10 + ["male"] * 3 + [None] * 5
    return pd.DataFrame({"gender": gender, "accent": ["us", "gb"] * 9, "label": list("ab") * 9}, index=range(100, 118))


def test_subsample_caps_every_group_and_keeps_order(clips) -> None:
    picked = stratified_subsample(clips, ["gender"], max_per_group=4, seed=0)
    counts = picked["gender"].fillna("(missing)").value_counts().to_dict()
    assert counts == {"female": 4, "male": 3, "(missing)": 4}
    assert list(picked.index) == sorted(picked.index) and set(picked.index) <= set(clips.index)
    assert picked.equals(stratified_subsample(clips, ["gender"], max_per_group=4, seed=0))
    assert not picked.equals(stratified_subsample(clips, ["gender"], max_per_group=4, seed=1))
    both = stratified_subsample(clips, ["gender", "accent"], max_per_group=1, seed=0)
    assert len(both) == 6  # one per gender x accent combination, the missing gender included
    assert stratified_subsample(clips, ["gender"], max_per_group=50).equals(clips)


def test_subsample_refuses_bad_requests(clips) -> None:
    with pytest.raises(UsageError, match="at least 1 clip per group"):
        stratified_subsample(clips, ["gender"], max_per_group=0)
    with pytest.raises(UsageError, match="no column\\(s\\) speaker"):
        stratified_subsample(clips, ["speaker"], max_per_group=3)
    with pytest.raises(UsageError, match="name at least one group column"):
        stratified_subsample(clips, [], max_per_group=3)
