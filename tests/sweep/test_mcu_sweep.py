"""A microcontroller budget in the sweep: per-cell TFLM fit columns, and a selection among cells that fit."""

from __future__ import annotations

import json
import math
import tomllib
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from ondevice_audit.cli import app
from ondevice_audit.errors import UsageError
from ondevice_audit.sweep import analyse, parse_matrix

runner = CliRunner()
MCU_COLUMNS = ["arena_bytes", "flash_bytes", "fits_mcu", "mcu_reason"]


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mcu-cache")


@pytest.fixture(scope="module")
def matrix(tmp_path_factory: pytest.TempPathFactory, tone_dataset: Path, write_matrix) -> Path:
    return write_matrix(
        tmp_path_factory.mktemp("mcu"), tone_dataset, 'architecture = "ds-cnn"\nquantization = ["f32", "int8", "f16"]\n'
    )


def sweep(matrix: Path, out: Path, cache: Path, *budget: str) -> pd.DataFrame:
    result = runner.invoke(app, ["sweep", "-m", str(matrix), "--out", str(out), "--cache", str(cache), *budget])
    assert result.exit_code == 0, result.output
    return pd.read_csv(out / "results.csv")


@pytest.fixture(scope="module")
def on_board(matrix: Path, cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("board") / "run"
    sweep(matrix, out, cache, "--board", "nano33ble", "--jobs", "2")
    return out


def test_every_cell_is_checked_and_f16_does_not_fit(on_board: Path) -> None:
    results = pd.read_csv(on_board / "results.csv").set_index("quantization")
    assert list(results.columns[-4:]) == MCU_COLUMNS
    assert results.loc["int8", "fits_mcu"] and results.loc["f32", "fits_mcu"]
    assert 0 < results.loc["int8", "arena_bytes"] < results.loc["f32", "arena_bytes"]
    assert (results["flash_bytes"] == results["size_bytes"]).all()
    assert not results.loc["f16", "fits_mcu"] and math.isnan(results.loc["f16", "arena_bytes"])
    assert "TFLM cannot run it" in results.loc["f16", "mcu_reason"]
    assert results.loc["int8", "mcu_reason"].startswith("Arduino Nano 33 BLE Sense (nRF52840): arena")
    summary = json.loads((on_board / "summary.json").read_text())["analysis"]
    assert summary["budget"] == {"label": "Arduino Nano 33 BLE Sense (nRF52840)", "fitting_cells": 2}
    assert "f16" not in {results.reset_index().set_index("cell").loc[c, "quantization"] for c in summary["pareto"]}
    assert "2 finished cell(s) fit it" in (on_board / "summary.md").read_text()


def test_the_selection_skips_a_cell_that_does_not_fit(on_board: Path, matrix: Path, cache: Path, tmp_path) -> None:
    measured = pd.read_csv(on_board / "results.csv").set_index("quantization")
    ram = math.ceil(measured.loc["int8", "arena_bytes"] / 0.75)  # the arena may use 75 % of RAM
    results = sweep(matrix, tmp_path / "tight", cache, "--mcu-ram", f"{ram}B")  # from the cache: checks only
    fitting = results.set_index("quantization")["fits_mcu"]
    assert fitting.to_dict() == {"f32": False, "int8": True, "f16": False}
    int8 = results.loc[results["quantization"] == "int8", "cell"].item()
    selection = json.loads((tmp_path / "tight" / "summary.json").read_text())["analysis"]["selection"]
    assert {selection[k] for k in ("most_accurate", "least_biased", "least_biased_within")} == {int8}
    assert "exceeds" in results.loc[results["quantization"] == "f32", "mcu_reason"].item()


def test_a_budget_restricts_the_selection_to_cells_that_fit() -> None:
    results = pd.DataFrame(
        {
            "cell": ["a", "b", "c"],
            "status": "ok",
            "quantization": ["f32", "int8", "f16"],
            "accuracy": [0.95, 0.90, 0.96],
            "rb": [0.05, 0.10, 0.01],
            "size_bytes": [4000, 1000, 2000],
            "latency_ms": [1.0, 1.0, 1.0],
            "fits_mcu": [False, True, False],
        }
    )
    free = analyse(results, ["quantization"], "accuracy", 10.0)
    assert (free.most_accurate, free.least_biased, free.least_biased_within) == ("c", "c", "c")
    bound = analyse(results, ["quantization"], "accuracy", 10.0, budget="tiny")
    assert (bound.most_accurate, bound.least_biased, bound.least_biased_within) == ("b", "b", "b")
    assert (
        bound.pareto == ("b",)
        and bound.fitting == 1
        and "Among the 1 finished cell(s) that fit tiny" in (bound.to_markdown())
    )


def test_a_tflm_runtime_cell_runs_and_matches_litert(
    on_board: Path, tone_dataset: Path, cache: Path, tmp_path: Path, write_matrix
) -> None:
    path = write_matrix(tmp_path, tone_dataset, 'architecture = "ds-cnn"\nquantization = "int8"\nruntime = "tflm"\n')
    results = sweep(path, tmp_path / "run", cache, "--board", "pico")
    litert = pd.read_csv(on_board / "results.csv").set_index("quantization").loc["int8"]
    row = results.iloc[0]
    assert row["status"] == "ok" and row["runtime"] == "tflm" and row["fits_mcu"]
    assert row["accuracy"] == pytest.approx(litert["accuracy"], abs=0.02)  # the same int8 file on another runtime


@pytest.mark.parametrize(
    ("deployment", "named"),
    [('board = "uno"', "unknown board 'uno'"), ('mcu_ram = "lots"', "cannot read size 'lots'"),
     ("mcu_flash = 1024", "deployment.mcu_flash = 1024 must be a string"), ('ram = "1KiB"', "deployment.ram")],
)  # fmt: skip
def test_a_bad_deployment_table_is_refused(deployment: str, named: str) -> None:
    text = f'[data]\nmanifest = "m.csv"\ngroups = ["gender"]\n[deployment]\n{deployment}\n'
    with pytest.raises(UsageError) as caught:
        parse_matrix(tomllib.loads(text), Path("x.toml"))
    assert named in str(caught.value)


def test_the_budget_can_be_written_in_the_matrix() -> None:
    text = '[data]\nmanifest = "m.csv"\ngroups = ["gender"]\n[deployment]\nboard = "esp32s3"\nmcu_ram = "300KiB"\n'
    budget = parse_matrix(tomllib.loads(text), Path("x.toml")).deployment.budget()
    assert budget is not None and budget.ram_bytes == 300 * 1024 and budget.flash_bytes == 8 * 1024 * 1024


def test_a_bad_board_option_is_a_usage_error(matrix: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["sweep", "-m", str(matrix), "--out", str(tmp_path / "o"), "--board", "uno"])
    assert result.exit_code == 2 and "unknown board 'uno'" in result.output
