"""A sweep whose ``target`` factor names an ssh:// device (the real sshd of conftest, a TensorFlow-free Python):
its cells run there and are compared with the baseline run here."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from ondevice_audit.cli import app
from ondevice_audit.report.document import load_report

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "models" / "kws-ds-cnn" / "model.onnx"
MATRIX = """
model = "{model}"
target = ["local", "{target}"]
[data]
manifest = "{manifest}"
groups = ["gender"]
metric = "accuracy"
split = [0.5, 0.17, 0.33]
min_group_size = 5
bootstrap = 100
permutations = 100
"""


def test_a_sweep_runs_its_cells_on_an_ssh_target_and_compares_them_with_the_baseline(
    tmp_path: Path, server, device_python
) -> None:
    manifest = pd.read_csv(ROOT / "datasets" / "synth-kws-neural" / "manifest.csv")  # the data the model knows
    speakers = sorted(manifest["speaker"].unique())[::5]  # 32 speakers, 448 clips
    (tmp_path / "clips").symlink_to(ROOT / "datasets" / "synth-kws-neural" / "clips")
    manifest[manifest["speaker"].isin(speakers)].to_csv(tmp_path / "manifest.csv", index=False)
    url = server.url(device_python)
    (tmp_path / "matrix.toml").write_text(MATRIX.format(model=MODEL, target=url, manifest=tmp_path / "manifest.csv"))
    ssh = [argument for option in server.options for argument in ("--ssh-option", option)]

    result = CliRunner().invoke(
        app,
        ["sweep", "-m", str(tmp_path / "matrix.toml"), "--out", str(tmp_path / "run"),
         "--cache", str(tmp_path / "cache"), *ssh],
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    results = pd.read_csv(tmp_path / "run" / "results.csv")
    assert results["status"].eq("ok").all(), results["error"].tolist()
    assert sorted(results["target"]) == sorted(["local", "local", url])  # the baseline runs here
    results = results[results["cell"] != "baseline"].set_index("target")
    on_device = results.loc[url]
    # the same ONNX file on ONNX Runtime in the device's Python: the same answer for every held-out clip
    assert on_device["n_compared"] == results.loc["local", "n_compared"] > 100
    assert on_device["flip_rate"] == 0 and on_device["forgotten"] == 0 and on_device["metric_delta"] == 0
    report = load_report(tmp_path / "run" / "cells" / on_device["cell"] / "report.json")
    assert report["model"]["target"] == url.split("?")[0]  # the device Python is a connection detail
    assert report["comparison"]["runs"][1]["label"].endswith(f"(onnxruntime) on {report['model']['target']}")
