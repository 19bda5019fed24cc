"""An audit on an SSH device: one persistent device runner against the previous per-batch scheme, side by side.

The device is this machine reached through the tests' own OpenSSH server on 127.0.0.1 (its own host key, checked)
and a Python that has numpy and the runtimes but no TensorFlow or ondevice_audit (tests/targets/conftest.py), as a
board would. Both schemes audit the bundled model over the whole bundled corpus (1 536 clips) with batches of 32
(`--batch-size 32 --target-batch 32`: 48 batches), as fresh CLI processes, each from an empty work folder (no
stored batch), alternating, best of `repeats`; their reports must agree to the last digit.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _fixtures():
    """tests/targets/conftest.py as a module: ``SshServer`` and ``_device_python``."""
    spec = importlib.util.spec_from_file_location("targets_conftest", ROOT / "tests" / "targets" / "conftest.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _audit(url: str, options: list[str], folder: Path, name: str) -> tuple[float, dict]:
    report = folder / f"{name}.json"
    command = [sys.executable, "-m", "ondevice_audit", "audit", str(ROOT / "models" / "kws-ds-cnn" / "model.tflite"),
               "--data", str(ROOT / "datasets" / "synth-kws" / "manifest.csv"), "-g", "gender", "--target", url,
               *(a for option in options for a in ("--ssh-option", option)), "--batch-size", "32",
               "--target-batch", "32", "--work-dir", str(folder / f"work-{name}"), "--format", "json",
               "-o", str(report)]  # fmt: skip
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - started, json.loads(report.read_text())


def bench_ssh(work: Path, repeats: int = 2) -> list[tuple[str, float, str]]:
    fixtures = _fixtures()
    if not fixtures.SSHD.exists():
        print("ssh audit: skipped, openssh-server is not installed (make system-deps installs it)")
        return []
    folder = Path(tempfile.mkdtemp(prefix="bench-ssh-"))
    (folder / "sshd").mkdir()
    server = fixtures.SshServer(folder / "sshd")
    try:
        python = fixtures._device_python(folder / "device", ("numpy", "ai_edge_litert", "onnxruntime"))
        server.start()
        urls = {"persistent": server.url(python), "per-batch": f"{server.url(python)}&runner=per-batch"}
        seconds: dict[str, float] = {}
        reports: dict[str, dict] = {}
        for round_ in range(repeats):
            for scheme in ("persistent", "per-batch") if round_ % 2 == 0 else ("per-batch", "persistent"):
                elapsed, reports[scheme] = _audit(urls[scheme], server.options, folder, f"{scheme}-{round_}")
                print(f"ssh audit, round {round_ + 1}: {scheme} {elapsed:.1f} s")
                seconds[scheme] = min(elapsed, seconds.get(scheme, elapsed))
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)
    persistent, per_batch = (reports[s]["comparison"]["runs"][0] for s in ("persistent", "per-batch"))
    assert reports["persistent"]["attributes"] == reports["per-batch"]["attributes"], "the schemes disagree"
    assert persistent["batches"]["batches"] == per_batch["batches"]["batches"] == 48
    ratio = seconds["per-batch"] / seconds["persistent"]
    latency = {s: r["comparison"]["runs"][0]["latency_ms"] for s, r in reports.items()}
    print(f"ssh audit, 1536 clips in 48 batches of 32, best of {repeats}: persistent runner {seconds['persistent']:.1f} s, "
          f"per-batch {seconds['per-batch']:.1f} s ({ratio:.1f}x); latency p50/p90/p99 ms: persistent "
          + "/".join(f"{latency['persistent'][k]:.3f}" for k in ("median", "p90", "p99"))
          + ", per-batch " + "/".join(f"{latency['per-batch'][k]:.3f}" for k in ("median", "p90", "p99")))  # fmt: skip
    return [
        ("ssh audit, per-batch scheme / persistent runner (x, >= 2.5)", ratio, "PASS" if ratio >= 2.5 else "MISS"),
        ("ssh audit, persistent runner, 1536 clips (s)", seconds["persistent"], "INFO"),
        ("ssh audit, per-batch scheme, 1536 clips (s)", seconds["per-batch"], "INFO"),
    ]
