"""`sweep --executor ray` on a real two-node Ray cluster on this machine: a head node and a worker node started
with `ray start`, each with one CPU and a resource of its own, the cache on a folder both see.

The same matrix through `--address HOST:PORT` (the driver joins the cluster) and `ray://HOST:PORT` (Ray's client:
the driver runs on the head's client server) gives the local executor's results cell for cell and file for file;
with the worker node killed (SIGKILL to every process of it) while it runs a task, the sweep finishes on the head
with that task's cells failed, and `--resume` finishes them. The sweeps run as separate processes, as a user runs
them; the cluster uses token authentication with a token of its own (Ray's default for a new cluster).
Slow (about 5 minutes on 2 busy cores): `pytest -m slow tests/sweep/test_ray_cluster.py`.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

pytestmark = pytest.mark.slow

RAY = Path(sys.executable).with_name("ray")
TIMING = {"latency_ms"}
"""Columns that measure this machine's speed, not the model."""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _session(leader: int) -> list[int]:
    """Every process of the session ``leader`` started (a `ray start --block` and all it spawned)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getsid(int(entry.name)) == leader:
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


class RayCluster:
    """A head and a worker node on 127.0.0.1, each a `ray start --block` in a session of its own, so each node
    can be killed (and the whole cluster stopped) by process id without touching any other Ray on the machine."""

    def __init__(self, root: Path):
        self.temp = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))  # Ray's socket paths must stay short
        self.root = root
        self.port, self.client_port = _free_port(), _free_port()
        self.env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16),
                    "RAY_USAGE_STATS_ENABLED": "0"}  # fmt: skip
        self.nodes: dict[str, subprocess.Popen[bytes]] = {}

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _start(self, name: str, *args: str) -> None:
        common = ["--block", "--node-ip-address=127.0.0.1", "--num-cpus=1", f'--resources={{"{name}": 1}}',
                  "--object-store-memory=100000000", "--disable-usage-stats"]  # fmt: skip
        log = (self.root / f"{name}.log").open("wb")
        self.nodes[name] = subprocess.Popen([str(RAY), "start", *common, *args], env=self.env, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip

    def start(self) -> None:
        self._start("head", "--head", f"--port={self.port}", f"--ray-client-server-port={self.client_port}",
                    f"--temp-dir={self.temp}", "--include-dashboard=false")  # fmt: skip
        self.wait_for(1)
        self._start("worker", f"--address={self.address}")
        self.wait_for(2)

    def alive(self) -> int:
        probe = (f"import ray; ray.init(address={self.address!r}, logging_level='ERROR', log_to_driver=False); "
                 "print(sum(node['Alive'] for node in ray.nodes()))")  # fmt: skip
        done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=self.env, timeout=120)
        return int(done.stdout.strip()) if done.stdout.strip().isdigit() else 0

    def wait_for(self, nodes: int, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while self.alive() != nodes:
            if time.monotonic() > deadline:
                logs = {name: (self.root / f"{name}.log").read_text()[-2000:] for name in self.nodes}
                raise RuntimeError(f"the Ray cluster did not reach {nodes} node(s): {logs}")
            time.sleep(1)

    def kill(self, name: str) -> None:
        node = self.nodes.pop(name, None)
        if node is None:
            return
        for pid in _session(node.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                continue
        node.wait()

    def tasks_running_on(self, name: str) -> bool:
        """Whether a sweep task runs in a worker process of node ``name`` (Ray titles it after the function)."""
        node = self.nodes.get(name)
        for pid in _session(node.pid) if node else []:
            try:
                if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"ray::_run_in_worker"):
                    return True
            except OSError:
                continue
        return False

    def stop(self) -> None:
        for name in list(self.nodes):
            self.kill(name)
        shutil.rmtree(self.temp, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RayCluster]:
    started = time.perf_counter()
    running = RayCluster(tmp_path_factory.mktemp("ray-cluster"))
    try:
        running.start()
        print(f"two-node Ray cluster up in {time.perf_counter() - started:.1f} s")
        yield running
    finally:
        running.stop()


def _sweep(matrix: Path, out: Path, cache: Path, env: dict[str, str], *options: str) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "ondevice_audit", "sweep", "-m", str(matrix), "--out", str(out),
               "--cache", str(cache), "--jobs", "2", "-q", *options]  # fmt: skip
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _finished(process: subprocess.Popen[str], timeout: float = 900) -> tuple[int, str]:
    output, _ = process.communicate(timeout=timeout)
    return process.returncode, output


def _same_results(expected: Path, got: Path) -> None:
    local, other = pd.read_csv(expected / "results.csv"), pd.read_csv(got / "results.csv")
    compared = [column for column in local.columns if column not in TIMING]
    assert local["status"].eq("ok").all() and len(local) == 2
    pd.testing.assert_frame_equal(local[compared], other[compared], check_exact=True)
    for cell in local["cell"]:
        for path in (expected / "cells" / cell).iterdir():
            if path.suffix in (".tflite", ".csv"):
                assert path.read_bytes() == (got / "cells" / cell / path.name).read_bytes(), path.name


@pytest.fixture(scope="module")
def matrix(tmp_path_factory: pytest.TempPathFactory, tone_dataset: Path, write_matrix) -> Path:
    factors = 'architecture = "ds-cnn"\nquantization = "int8"\n[pruning]\nfinal_sparsity = [0, 0.5]\n'
    return write_matrix(tmp_path_factory.mktemp("cluster-matrix"), tone_dataset, factors)


def test_a_sweep_on_two_nodes_through_address_and_client_equals_the_local_executor(
    cluster: RayCluster, matrix: Path, tmp_path: Path
) -> None:
    shared = tmp_path / "shared"  # the cache folder every node sees
    timings = {}
    runs = {"local": (), "address": ("--executor", "ray", "--address", cluster.address),
            "client": ("--executor", "ray", "--address", f"ray://127.0.0.1:{cluster.client_port}")}  # fmt: skip
    for name, options in runs.items():
        started = time.perf_counter()
        code, output = _finished(_sweep(matrix, tmp_path / name, shared / name, cluster.env, *options))
        timings[name] = time.perf_counter() - started
        assert code == 0, output
    print("sweep seconds: " + ", ".join(f"{name} {seconds:.0f}" for name, seconds in timings.items()))
    for name in ("address", "client"):
        _same_results(tmp_path / "local", tmp_path / name)
        summary = json.loads((tmp_path / name / "summary.json").read_text())
        assert sum(summary["cache"]["misses"].values()) == 9 and summary["cache"]["root"] == str(shared / name)
        assert not list((shared / name).glob(".ray-sweep-*")), "the driver's marker is removed"
    nodes = {json.loads(path.read_text())["pid"] for path in (shared / "address").glob("*/*/*/timing.json")}
    assert len(nodes) >= 2, "tasks ran in more than one worker process"


def test_a_worker_node_killed_mid_sweep_fails_its_task_and_resume_finishes(
    cluster: RayCluster, tmp_path: Path, tone_dataset: Path, write_matrix
) -> None:
    """Two feature sets start at once, one on each node (one CPU each): the worker node is killed while its task
    runs. The head finishes the other cells; `--resume` on the head alone finishes the rest."""
    matrix = write_matrix(tmp_path, tone_dataset, 'architecture = "ds-cnn"\nfeatures = ["mfcc", "logmel"]\n')
    options = ("--executor", "ray", "--address", cluster.address)
    sweep = _sweep(matrix, tmp_path / "run", tmp_path / "cache", cluster.env, *options)
    deadline = time.monotonic() + 300
    while not cluster.tasks_running_on("worker"):
        assert sweep.poll() is None and time.monotonic() < deadline, "no task ever ran on the worker node"
        time.sleep(0.05)
    cluster.kill("worker")
    _, output = _finished(sweep)  # its exit status with some cells failed is the CLI's business, not this test's
    results = pd.read_csv(tmp_path / "run" / "results.csv")
    assert "failed" in set(results["status"]), output
    assert results.loc[results["status"] == "failed", "error"].str.contains("the Ray worker running it failed").all()
    code, output = _finished(_sweep(matrix, tmp_path / "run", tmp_path / "cache", cluster.env, *options, "--resume"))
    assert code == 0, output
    assert pd.read_csv(tmp_path / "run" / "results.csv")["status"].eq("ok").all()
