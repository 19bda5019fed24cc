"""A real 32-cell sweep: 2 sample rates x 2 features x 2 sparsities x 2 quantizations x TFLite/ONNX.

Real TF training, tfmot pruning, TFLite and ONNX export and inference on the tone dataset (~2-3 min on 2
cores). Checks every cell, TFLite/ONNX agreement, sparsity in the files, a warm rerun that trains nothing,
and that a sweep SIGKILLed midway and resumed with ``--jobs 2`` ends with the uninterrupted results.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from ondevice_audit.export.metadata import read_metadata
from ondevice_audit.report.document import load_report
from ondevice_audit.sweep import load_matrix, run_sweep

pytestmark = pytest.mark.slow

FACTORS = """
sample_rate = [8000, 16000]
features = ["mfcc", "logmel"]
architecture = "cnn-one-fstride4"
quantization = ["f32", "int8"]
export = ["tflite", "onnx"]
[pruning]
final_sparsity = [0, 0.5]
learning_rate = 0.001
"""
TIMING = ["latency_ms"]
"""Measured anew whenever inference runs; every other column must be reproduced exactly."""


def children(pid: int) -> list[int]:
    """Live processes whose parent is ``pid`` (Linux /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, parent = stat.read_text().rsplit(")", 1)[1].split()[:2]
        except OSError:
            continue
        if int(parent) == pid and state not in "ZX":
            found.append(int(stat.parent.name))
    return found


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in "ZX"
    except OSError:
        return False


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "ondevice_audit", "sweep", *args, "--quiet"]


def test_full_matrix_warm_rerun_and_resume_after_sigkill(tone_dataset: Path, tmp_path: Path, write_matrix) -> None:
    path = write_matrix(tmp_path, tone_dataset, FACTORS, epochs=3, latency_samples=10)
    matrix = load_matrix(path)
    assert len(matrix.cells) == 32

    started = time.perf_counter()
    full = run_sweep(matrix, tmp_path / "full", cache_dir=tmp_path / "cache-a")
    cold = time.perf_counter() - started
    results = full.results
    assert len(results) == 32 and results["status"].eq("ok").all()
    assert full.cache["misses"] == {"features": 4, "train": 4, "prune": 4, "export": 32, "infer": 32, "score": 32}
    for _, row in results.iterrows():
        folder = tmp_path / "full" / "cells" / row["cell"]
        assert load_report(folder / "report.json")["settings"]["sweep"]["cell"] == row["cell"]
        model = folder / ("model" + ("" if row["quantization"] == "f32" else "-int8") + "." + row["export"])
        assert read_metadata(model).extra["quantization"] == row["quantization"]

    # Sparsity read from the exported weights: within 2 points of what was asked, in every format.
    for _, row in results.iterrows():
        assert abs(row["achieved_sparsity"] - row["pruning.final_sparsity"]) <= 0.02, row["cell"]

    # TFLite (LiteRT) and ONNX (ONNX Runtime) files of the same float32 model predict the same classes.
    design = ["sample_rate", "features", "pruning.final_sparsity", "quantization"]
    pairs = results.pivot(index=design, columns="export", values="cell")
    agreement = {}
    for key, cells in pairs.iterrows():
        tflite, onnx = (
            pd.read_csv(tmp_path / "full" / "cells" / cells[f] / "predictions.csv") for f in ("tflite", "onnx")
        )
        agreement[key] = float((tflite["prediction"] == onnx["prediction"]).mean())
    f32 = [share for key, share in agreement.items() if key[-1] == "f32"]
    int8 = [share for key, share in agreement.items() if key[-1] == "int8"]
    print(f"cold 32 cells: {cold:.1f} s; TFLite/ONNX top-1 agreement f32 {min(f32):.3f}, int8 {min(int8):.3f}")
    assert len(f32) == 8 and min(f32) >= 0.99
    assert min(int8) >= 0.9

    # A second run on the same cache trains, prunes, exports and runs nothing, and gives the same table.
    started = time.perf_counter()
    warm = run_sweep(matrix, tmp_path / "warm", cache_dir=tmp_path / "cache-a")
    print(f"warm rerun: {time.perf_counter() - started:.1f} s, hits {warm.cache['hits']}")
    assert sum(warm.cache["misses"].values()) == 0
    assert warm.cache["hits"] == {"features": 4, "train": 4, "prune": 4, "export": 32, "infer": 32, "score": 32}
    pd.testing.assert_frame_equal(warm.results, results)

    # SIGKILL a fresh sweep (own cache) once a few cells are done, then --resume it with two worker processes.
    out, cache = tmp_path / "killed", tmp_path / "cache-b"
    child = subprocess.Popen(cli("--matrix", str(path), "--out", str(out), "--cache", str(cache)))
    deadline = time.monotonic() + 600
    while len(list(out.glob("cells/*/report.json"))) < 4:
        assert child.poll() is None, "the sweep ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.5)
    workers = children(child.pid)
    assert workers, "the sweep runs its tasks in worker processes"
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=60)
    assert not (out / "results.csv").exists()
    deadline = time.monotonic() + 30
    while any(alive(pid) for pid in workers):  # orphaned workers notice and exit, freeing TensorFlow's memory
        assert time.monotonic() < deadline, f"workers {workers} outlived their sweep"
        time.sleep(0.5)
    subprocess.run(
        cli("--matrix", str(path), "--out", str(out), "--cache", str(cache), "--resume", "--jobs", "2"), check=True
    )
    resumed = pd.read_csv(out / "results.csv")
    uninterrupted = pd.read_csv(tmp_path / "full" / "results.csv")
    pd.testing.assert_frame_equal(resumed.drop(columns=TIMING), uninterrupted.drop(columns=TIMING))
    # TFLite files are bit for bit the same; tf2onnx may name a few constants in another order from one run
    # to the next (its graph optimisation is not ordered deterministically), so ONNX files are compared by
    # size (in the table) and predictions.
    for _, row in uninterrupted.iterrows():
        cells = [run / "cells" / row["cell"] for run in (out, tmp_path / "full")]
        if row["export"] == "tflite":
            digests = [load_report(cell / "report.json")["model"]["sha256"] for cell in cells]
            assert digests[0] == digests[1], row["cell"]
        predictions = [pd.read_csv(cell / "predictions.csv") for cell in cells]
        pd.testing.assert_frame_equal(predictions[0], predictions[1])
    summary = pd.read_json(out / "summary.json", typ="series")
    assert summary["cache"]["hits"]["score"] >= 4 and summary["cache"]["misses"]["score"] <= 28
