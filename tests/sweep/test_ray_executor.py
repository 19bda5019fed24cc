"""`sweep --executor ray` on a local Ray instance started here, against the local executor (~90 s on 2 cores).

Both executors run the same 2-cell matrix (features, a base model, a pruning fine-tune, int8 exports) from
separate empty caches; every metric, RB and size column and every exported file must be the same, and so must
features computed in shards. Ray is not mocked: the instance is real, with 2 CPUs, and the slow test kills one
of its workers for real.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from ondevice_audit.cli import app
from ondevice_audit.errors import UsageError
from ondevice_audit.sweep import Cache, load_matrix, run_sweep
from ondevice_audit.sweep.pools.ray import RayPool
from ondevice_audit.sweep.stages import build_plan, prepare_context
from ondevice_audit.sweep.stages import features as features_stage

runner = CliRunner()
TIMING = {"latency_ms"}
"""Columns that measure this machine's speed, not the model."""


@pytest.fixture(scope="module")
def ray_instance() -> Iterator[None]:
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def matrix(tmp_path_factory: pytest.TempPathFactory, tone_dataset: Path, write_matrix) -> Path:
    factors = 'architecture = "ds-cnn"\nquantization = "int8"\n[pruning]\nfinal_sparsity = [0, 0.5]\n'
    return write_matrix(tmp_path_factory.mktemp("ray-matrix"), tone_dataset, factors)


@pytest.fixture(scope="module")
def both_runs(tmp_path_factory: pytest.TempPathFactory, matrix: Path, ray_instance: None) -> dict[str, Path]:
    """The same matrix run by each executor into its own folder and its own empty cache."""
    root = tmp_path_factory.mktemp("executors")
    for executor in ("local", "ray"):
        result = runner.invoke(
            app,
            ["sweep", "-m", str(matrix), "--out", str(root / executor), "--cache", str(root / f"cache-{executor}"),
             "--executor", executor, "--jobs", "2", "-q"],
        )  # fmt: skip
        assert result.exit_code == 0, result.output
    return {"root": root, "local": root / "local", "ray": root / "ray"}


def test_ray_gives_the_local_executors_results_cell_by_cell(both_runs: dict[str, Path]) -> None:
    local = pd.read_csv(both_runs["local"] / "results.csv")
    ray = pd.read_csv(both_runs["ray"] / "results.csv")
    assert len(local) == 2 and local["status"].eq("ok").all()
    compared = [column for column in local.columns if column not in TIMING]
    assert {"accuracy", "rb", "rb_ci_low", "rb.accent", "size_bytes", "achieved_sparsity"} <= set(compared)
    pd.testing.assert_frame_equal(local[compared], ray[compared], check_exact=True)
    for cell in local["cell"]:
        local_file = next((both_runs["local"] / "cells" / cell).glob("*.tflite"))
        assert local_file.read_bytes() == (both_runs["ray"] / "cells" / cell / local_file.name).read_bytes()
        local_predictions = (both_runs["local"] / "cells" / cell / "predictions.csv").read_text()
        assert local_predictions == (both_runs["ray"] / "cells" / cell / "predictions.csv").read_text()
    # The shared work was shared on Ray too: one feature set, one base model, one pruning fine-tune.
    for executor in ("local", "ray"):
        summary = pd.read_json(both_runs[executor] / "summary.json", typ="series")
        assert summary["cache"]["misses"] == {"features": 1, "train": 1, "prune": 1, "export": 2, "infer": 2,
                                              "score": 2}  # fmt: skip
    assert not list((both_runs["root"] / "cache-ray").glob(".ray-sweep-*"))  # the marker is gone


def test_feature_shards_on_ray_join_to_the_unsharded_features_bit_for_bit(
    both_runs: dict[str, Path], matrix: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Splits of more than 64 clips become shard tasks of 64 (as a corpus of more than 16 384 clips would); the
    joined features are those the unsharded Ray run computed, and the cells those of the local executor."""
    monkeypatch.setattr(features_stage, "SHARD_CLIPS", 64)
    parsed = load_matrix(matrix)
    cache = both_runs["root"] / "cache-shards"
    result = run_sweep(parsed, both_runs["root"] / "shards", cache_dir=cache, jobs=2, executor="ray")
    context = prepare_context(parsed, cache)
    sizes = [len(context.frames[split]) for split in ("train", "val", "test")]
    shards = sum(-(-size // 64) for size in sizes if size > 64)
    assert shards >= 3 and result.cache["misses"]["features"] == 1 + shards
    local = pd.read_csv(both_runs["local"] / "results.csv")
    sharded = pd.read_csv(both_runs["root"] / "shards" / "results.csv")
    compared = [column for column in local.columns if column not in TIMING]
    pd.testing.assert_frame_equal(local[compared], sharded[compared], check_exact=True)
    key = next(k for k, task in build_plan(context, Cache(cache)).tasks.items()
               if task.stage == "features" and task.settings.shard is None)  # fmt: skip
    with np.load(Cache(cache).entry("features", key) / "features.npz") as joined, np.load(
        Cache(both_runs["root"] / "cache-ray").entry("features", key) / "features.npz"
    ) as whole:
        assert joined.files == whole.files
        for name in whole.files:
            assert joined[name].dtype == whole[name].dtype and np.array_equal(joined[name], whole[name])


def test_a_second_ray_run_on_the_same_cache_is_all_hits(both_runs: dict[str, Path], matrix: Path) -> None:
    again = run_sweep(load_matrix(matrix), both_runs["root"] / "again", cache_dir=both_runs["root"] / "cache-ray",
                      executor="ray")  # fmt: skip
    assert sum(again.cache["misses"].values()) == 0 and sum(again.cache["hits"].values()) == 9
    first, second = (pd.read_csv(both_runs["root"] / run / "results.csv") for run in ("ray", "again"))
    compared = [column for column in first.columns if column not in TIMING]
    pd.testing.assert_frame_equal(first[compared], second[compared], check_exact=True)


@pytest.mark.slow
def test_a_ray_worker_that_dies_fails_its_task_and_the_sweep_goes_on(
    tmp_path: Path, tone_dataset: Path, write_matrix, ray_instance: None
) -> None:
    """The first running task (one of the two feature sets) loses its worker to SIGKILL, as to the OOM killer."""
    path = write_matrix(tmp_path, tone_dataset, 'architecture = "ds-cnn"\nfeatures = ["mfcc", "logmel"]\n')
    killed: list[int] = []

    def kill_the_first_running_task() -> None:
        deadline = time.monotonic() + 120
        while not killed and time.monotonic() < deadline:
            listing = subprocess.run(["ps", "-eo", "pid=,args="], capture_output=True, text=True).stdout
            for pid, _, title in (line.strip().partition(" ") for line in listing.splitlines()):
                if title.startswith("ray::_run_in_worker"):  # Ray's process title while a task runs
                    os.kill(int(pid), signal.SIGKILL)
                    killed.append(int(pid))
                    return
            time.sleep(0.02)

    killer = threading.Thread(target=kill_the_first_running_task)
    killer.start()
    result = run_sweep(load_matrix(path), tmp_path / "run", cache_dir=tmp_path / "cache", jobs=2, executor="ray")
    killer.join()
    assert killed
    assert sorted(result.results["status"]) == ["failed", "ok"]
    error = result.results.loc[result.results["status"] == "failed", "error"].item()
    assert error.startswith("features: the Ray worker running it failed (")
    assert result.cache["failed"]["features"] == 1 and result.cache["misses"]["score"] == 1
    resumed = run_sweep(load_matrix(path), tmp_path / "run", cache_dir=tmp_path / "cache", jobs=2, executor="ray",
                        resume=True)  # fmt: skip
    assert resumed.results["status"].eq("ok").all() and resumed.cache["misses"]["features"] == 1


def test_a_worker_that_cannot_see_the_cache_stops_the_sweep_with_one_line(
    tmp_path: Path, matrix: Path, ray_instance: None
) -> None:
    """As on a cluster whose nodes do not share --cache: the worker does not find the driver's marker file."""
    context = prepare_context(load_matrix(matrix), tmp_path)
    task = next(iter(build_plan(context, Cache(tmp_path)).tasks.values()))
    pool = RayPool(1, context, None)
    try:
        next(tmp_path.glob(".ray-sweep-*")).unlink()
        future = pool.submit(task)
        error = future.exception(timeout=60)
        with pytest.raises(UsageError, match=r"cannot see the cache folder .* needs --cache on a filesystem every"):
            pool.worker_loss(error)
    finally:
        pool.close()
    assert not list(tmp_path.glob("features/*/*"))  # nothing was computed into the void


def test_without_ray_the_message_says_how_to_get_it(
    tmp_path: Path, matrix: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError, as when it is not installed
    result = runner.invoke(app, ["sweep", "-m", str(matrix), "--out", str(tmp_path / "run"), "--executor", "ray"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "error: --executor ray needs Ray, which is not installed: pip install 'ondevice-audit[ray]'"
    ]
    assert not (tmp_path / "run").exists()  # refused before any work


def test_unknown_executor_and_address_without_ray_are_refused(tmp_path: Path, matrix: Path) -> None:
    args = ["sweep", "-m", str(matrix), "--out", str(tmp_path / "run")]
    unknown = runner.invoke(app, [*args, "--executor", "dask"])
    assert unknown.exit_code == 2 and "unknown executor 'dask'; choose one of local, ray" in unknown.output
    stray = runner.invoke(app, [*args, "--address", "auto"])
    assert stray.exit_code == 2 and "--address is for --executor ray" in stray.output


def test_an_unreachable_cluster_is_one_line_and_exit_2(tmp_path: Path, matrix: Path) -> None:
    """In a process of its own: this one already has a Ray connection, which a sweep would reuse."""
    env = {**os.environ, "RAY_CLIENT_INITIAL_CONNECTION_TIMEOUT_S": "1", "RAY_CLIENT_MAX_CONNECTION_TIMEOUT_S": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "ondevice_audit", "sweep", "-m", str(matrix), "--out", str(tmp_path / "run"),
         "--cache", str(tmp_path / "cache"), "--executor", "ray", "--address", "ray://127.0.0.1:1", "-q"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: could not connect to Ray at --address ray://127.0.0.1:1")


def test_help_and_local_sweeps_never_import_ray() -> None:
    code = (
        "import sys; from typer.testing import CliRunner; from ondevice_audit.cli import app; "
        "import ondevice_audit.sweep.executor; assert CliRunner().invoke(app, ['sweep', '--help']).exit_code == 0; "
        "print('ray' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
