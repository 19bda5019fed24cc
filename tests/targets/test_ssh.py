"""ssh:// targets against a real OpenSSH server on 127.0.0.1 (see conftest), with host keys checked.

The device's Python is the TensorFlow-free venv, so these runs go exactly as on a board: runner and model
copied into a ``mktemp -d`` folder, batches as ``.npz`` files over scp, the folder removed at the end (the
``server`` fixture fails a test that leaves one behind).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from ondevice_audit.audit import ModelOptions, ScoreOptions, TargetOptions, audit_model
from ondevice_audit.cli import app
from ondevice_audit.progress import Advance, NullProgress
from ondevice_audit.report.document import validate
from ondevice_audit.targets import TargetUnreachable
from ondevice_audit.targets.local import LocalTarget
from ondevice_audit.targets.ssh import SshTarget

OPTIONS = ScoreOptions(groups=("gender",), metric="accuracy", bootstrap=200, permutations=0, min_group_size=10)
MODEL_OPTIONS = ModelOptions(batch_size=16)


def _targets(server, device_python, work: Path, *targets: str, **settings) -> TargetOptions:
    names = tuple(server.url(device_python) if t == "ssh" else t for t in targets)
    return TargetOptions(targets=names, ssh_options=tuple(server.options), work_dir=work, batch_files=48, **settings)


@pytest.fixture(scope="module")
def local_reports(kws, models) -> dict[str, dict]:
    return {name: audit_model(getattr(models, name), kws.manifest, OPTIONS, MODEL_OPTIONS) for name in ("int8", "onnx")}


@pytest.mark.parametrize("name", ["int8", "onnx"])
def test_scores_on_the_device_equal_local_scores(kws, models, server, device_python, name):
    path, inputs = getattr(models, name), kws.inputs()[:40]
    remote = SshTarget.from_url(server.url(device_python), server.options).run(path, inputs, 16)
    local = LocalTarget().run(path, inputs, 16)
    np.testing.assert_array_equal(remote.scores, local.scores)
    assert remote.latency.shape == (40,) and remote.peak_memory_bytes > 0


@pytest.mark.parametrize("name", ["int8", "onnx"])
def test_audit_through_ssh_equals_local(kws, models, server, device_python, local_reports, tmp_path, name):
    report = audit_model(getattr(models, name), kws.manifest, OPTIONS, MODEL_OPTIONS,
                              _targets(server, device_python, tmp_path, "local", "ssh"))  # fmt: skip
    validate(report)
    assert report["attributes"] == local_reports[name]["attributes"]
    comparison = report["comparison"]
    device = comparison["runs"][1]
    assert device["target"] == server.url() and device["device"]["machine"] and device["batches"]["batches"] == 3
    assert device["runtime"] == ("litert" if name == "int8" else "onnxruntime")
    for group in [comparison["overall"], *comparison["attributes"][0]["groups"]]:
        local_run, ssh_run = group["runs"]
        assert ssh_run["flips"] == 0 and ssh_run["metric"] == local_run["metric"]
    rb = comparison["attributes"][0]["rb"][1]
    assert rb["difference"] == 0 and rb["ci"] == [0, 0]


class _CutAfterFirstBatch(NullProgress):
    """Kills every open SSH connection (the runner's session with it) once the first batch is in: the next batch
    goes out on a channel the server dropped."""

    def __init__(self, server):
        self.server = server
        self.cuts: list[int] = []

    @contextmanager
    def task(self, description: str, total: int | None = None) -> Iterator[Advance]:
        def advance(n: int = 1) -> None:
            if description.startswith("Auditing") and not self.cuts:
                self.cuts.append(self.server.cut_connections())

        yield advance


def test_a_connection_cut_mid_run_is_retried_with_the_same_numbers(
    kws, models, server, device_python, local_reports, tmp_path
):
    progress = _CutAfterFirstBatch(server)
    report = audit_model(models.int8, kws.manifest, OPTIONS, MODEL_OPTIONS,
                         _targets(server, device_python, tmp_path, "ssh", backoff_seconds=0.2), progress)  # fmt: skip
    assert progress.cuts and progress.cuts[0] >= 1, "the runner's connection was never cut"
    batches = report["comparison"]["runs"][0]["batches"]
    assert batches["retries"] >= 1 and batches["batches"] == 3
    assert report["attributes"] == local_reports["int8"]["attributes"]
    assert report["overall"] == local_reports["int8"]["overall"]


class _DropServerAfterFirstBatch(NullProgress):
    def __init__(self, server):
        self.server = server

    @contextmanager
    def task(self, description: str, total: int | None = None) -> Iterator[Advance]:
        def advance(n: int = 1) -> None:
            if description.startswith("Auditing") and self.server.process is not None:
                self.server.stop()

        yield advance


def test_an_audit_stopped_by_a_lost_device_resumes_without_rerunning_finished_batches(
    kws, models, server, device_python, local_reports, tmp_path
):
    options = _targets(server, device_python, tmp_path, "ssh", retries=1, backoff_seconds=0.05)
    with pytest.raises(TargetUnreachable, match="run the same command again to resume"):
        audit_model(models.int8, kws.manifest, OPTIONS, MODEL_OPTIONS, options, _DropServerAfterFirstBatch(server))
    assert len(server.remote_folders()) == 1, "the device went away with its folder, which is remembered"
    server.start()
    report = audit_model(models.int8, kws.manifest, OPTIONS, MODEL_OPTIONS, options)
    assert report["comparison"]["runs"][0]["batches"] == {"batches": 3, "from_cache": 1, "retries": 0}
    assert report["attributes"] == local_reports["int8"]["attributes"]
    # the server fixture checks that the remembered folder was removed by this second run


def test_a_hostile_model_path_executes_nothing(kws, models, server, device_python, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "models; touch PWNED1"
    folder.mkdir()
    hostile = folder / """x; touch PWNED.tflite it's "a" $(touch PWNED2) `touch PWNED3` -o ProxyCommand=x.tflite"""
    shutil.copy(models.int8, hostile)
    options = [a for o in server.options for a in ("--ssh-option", o)]
    args = ["targets", "check", server.url(device_python), "--model", str(hostile), "--work-dir", str(tmp_path)]
    result = CliRunner().invoke(app, [*args, *options, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["model"]["runtime"] == "litert"
    report = audit_model(
        hostile, kws.manifest, OPTIONS, MODEL_OPTIONS, _targets(server, device_python, tmp_path, "ssh")
    )
    assert report["inputs"][0]["path"] == str(hostile)
    anywhere = [tmp_path, server.root, kws.manifest.parent, Path.cwd(), Path.home(), Path("/tmp"), Path("/")]
    found = [
        p
        for root in anywhere
        for p in (root.rglob("PWNED*") if root in (tmp_path, server.root) else root.glob("PWNED*"))
    ]
    assert found == []
