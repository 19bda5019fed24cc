"""One device runner per run, the per-batch scheme it replaced, features computed on the device, targets told
apart by their Python, and latency that says when it was not measured again.

The runner runs in the TensorFlow-free device Python (see conftest), as a subprocess here or over the real sshd.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from ondevice_audit.audit import ModelOptions, ScoreOptions, TargetOptions, audit_model
from ondevice_audit.cli import app
from ondevice_audit.errors import UsageError
from ondevice_audit.frontend import AudioFrontendSpec
from ondevice_audit.report.document import validate
from ondevice_audit.report.markdown import MarkdownFormat
from ondevice_audit.report.table import TableFormat
from ondevice_audit.targets import parse_target
from ondevice_audit.targets.process import SubprocessTarget
from ondevice_audit.targets.ssh import SshTarget

OPTIONS = ScoreOptions(groups=("gender",), metric="accuracy", bootstrap=200, permutations=0, min_group_size=10)
MODEL_OPTIONS = ModelOptions(batch_size=16)


class CountingTarget(SubprocessTarget):
    """The subprocess target, counting the runner processes it starts: one ``serve`` per run, or one per batch."""

    def __init__(self, **settings) -> None:
        super().__init__(**settings)
        self.spawned = 0
        self.calls = 0

    def _spawn(self, argv: list[str]) -> subprocess.Popen[bytes]:
        self.spawned += 1
        return super()._spawn(argv)

    def _exec(self, argv: list[str]) -> subprocess.CompletedProcess[bytes]:
        self.calls += 1
        return super()._exec(argv)


def _audit(kws, model: Path, *targets, work: Path, **settings) -> dict:
    options = TargetOptions(targets=targets, work_dir=work, batch_files=48, **settings)
    report = audit_model(model, kws.manifest, OPTIONS, MODEL_OPTIONS, options)
    validate(report)
    return report


def test_one_runner_serves_every_batch_with_the_per_batch_schemes_numbers(kws, models, device_python, tmp_path):
    persistent = CountingTarget(python=str(device_python))
    per_batch = CountingTarget(python=str(device_python), runner="per-batch")
    first = _audit(kws, models.int8, persistent, work=tmp_path / "a")
    second = _audit(kws, models.int8, per_batch, work=tmp_path / "b")
    assert (persistent.spawned, persistent.calls) == (1, 0), "one runner for the run, facts included"
    assert (per_batch.spawned, per_batch.calls) == (0, 1 + 3), "facts, then a runner per batch"
    assert first["attributes"] == second["attributes"] and first["overall"] == second["overall"]
    runs = [report["comparison"]["runs"][0] for report in (first, second)]
    assert all(run["batches"] == {"batches": 3, "from_cache": 0, "retries": 0} for run in runs)
    latency = runs[0]["latency_ms"]
    assert latency["samples"] == len(kws.frame) and latency["stored"] is False and latency["stored_samples"] == 0
    assert 0 < latency["median"] <= latency["p90"] <= latency["p99"]


def test_a_rerun_marks_the_latency_of_stored_batches_as_stored(kws, models, device_python, tmp_path):
    target = SubprocessTarget(python=str(device_python))
    first = _audit(kws, models.onnx, target, work=tmp_path)["comparison"]["runs"][0]
    again = _audit(kws, models.onnx, target, work=tmp_path)["comparison"]["runs"][0]
    assert again["batches"] == {"batches": 3, "from_cache": 3, "retries": 0}
    assert again["latency_ms"]["stored"] is True and again["latency_ms"]["stored_samples"] == len(kws.frame)
    assert again["latency_ms"]["median"] == first["latency_ms"]["median"], "what the first run measured, not new"
    table = TableFormat(width=160).format(_audit(kws, models.onnx, target, work=tmp_path))
    assert "stored" in table


def test_two_ssh_targets_that_differ_only_in_their_python(
    kws, models, server, device_python, litert_only_python, tmp_path
):
    urls = (server.url(device_python), server.url(litert_only_python))
    options = TargetOptions(targets=urls, ssh_options=tuple(server.options), work_dir=tmp_path, batch_files=48)
    report = audit_model(models.int8, kws.manifest, OPTIONS, MODEL_OPTIONS, options)
    validate(report)
    labels = [run["label"] for run in report["comparison"]["runs"]]
    assert labels == [f"{server.url()}?python={device_python}", f"{server.url()}?python={litert_only_python}"]
    assert report["settings"]["targets"] == labels
    assert all(group["runs"][1]["flips"] == 0 for group in report["comparison"]["attributes"][0]["groups"])
    with pytest.raises(UsageError, match="asked for twice"):
        audit_model(models.int8, kws.manifest, OPTIONS, MODEL_OPTIONS,
                    TargetOptions(targets=(urls[0], urls[0]), ssh_options=tuple(server.options), work_dir=tmp_path))  # fmt: skip


def test_ssh_target_settings():
    target = SshTarget.from_url("ssh://pi@board:2222?python=/opt/venv/bin/python&runner=per-batch")
    assert (target.python, target.runner, target.label) == ("/opt/venv/bin/python", "per-batch", "ssh://pi@board:2222")
    assert target.spelled() == "ssh://pi@board:2222?python=/opt/venv/bin/python&runner=per-batch"
    assert SshTarget.from_url("ssh://pi@board").spelled() == "ssh://pi@board"
    assert parse_target("subprocess").runner == "persistent"
    for url, message in [("ssh://pi@board?python=", "needs the path"), ("ssh://b?runner=fast", "not 'fast'"),
                         ("ssh://b?pyhton=x", "unknown setting")]:  # fmt: skip
        with pytest.raises(UsageError, match=message):
            SshTarget.from_url(url)


def _parity_by_hand(kws, report: dict, run: int) -> None:
    """Every group of the parity section against a count over the manifest. The device's features are the same
    formulas on the same numpy, batched differently: BLAS may then sum in another order, so they may differ in
    the last bits of float32 (MFCCs run to the hundreds), never in a decision."""
    parity = report["comparison"]["runs"][run]["frontend_on_target"]
    assert parity["n"] == len(kws.frame) and parity["max_abs_diff"] < 1e-4 and parity["flips"] == 0
    (gender,) = parity["attributes"]
    counts = kws.frame["gender"].value_counts()
    assert {g["name"]: g["n"] for g in gender["groups"]} == counts.to_dict()
    assert max(g["max_abs_diff"] for g in gender["groups"]) == parity["max_abs_diff"]
    assert all(g["flip_rate"] == 0 for g in gender["groups"])
    latency, end_to_end = report["comparison"]["runs"][run]["latency_ms"], parity["end_to_end_ms"]
    assert end_to_end["median"] >= latency["median"] and end_to_end["samples"] == latency["samples"]
    assert parity["features_ms"]["median"] > 0 and parity["settings"]["kind"] == "mfcc"


def test_features_computed_on_the_device_over_ssh_through_the_cli(kws, models, server, device_python, tmp_path):
    """`audit --target local --target ssh://... --frontend-on-target`: the device computes the MFCCs from the audio
    it is sent; on the same numpy they are the host's to float32 rounding, and the run the local one clip for clip."""
    out = tmp_path / "report.json"
    ssh = [a for option in server.options for a in ("--ssh-option", option)]
    result = CliRunner().invoke(app, [
        "audit", str(models.f32), "--data", str(kws.manifest), "-g", "gender", "--metric", "accuracy",
        "--bootstrap", "200", "--permutations", "0", "--min-group-size", "10", "--batch-size", "16",
        "--target", "local", "--target", server.url(device_python), *ssh, "--work-dir", str(tmp_path / "work"),
        "--target-batch", "48", "--frontend-on-target", "--format", "json", "-o", str(out),
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    validate(report)
    assert report["comparison"]["runs"][0]["frontend_on_target"] is None, "the local run keeps the host's features"
    _parity_by_hand(kws, report, 1)
    assert all(group["runs"][1]["flips"] == 0 for group in report["comparison"]["attributes"][0]["groups"])
    markdown = MarkdownFormat().format(report)
    assert "front-end on the target" in markdown and "end to end" in markdown


def test_features_on_the_device_are_resumed_like_any_batch(kws, models, device_python, tmp_path):
    target = SubprocessTarget(python=str(device_python))
    first = _audit(kws, models.f32, target, work=tmp_path, frontend_on_target=True)
    again = _audit(kws, models.f32, target, work=tmp_path, frontend_on_target=True)
    assert again["comparison"]["runs"][0]["batches"]["from_cache"] == 3
    first_parity, again_parity = (r["comparison"]["runs"][0]["frontend_on_target"] for r in (first, again))
    assert again_parity["attributes"] == first_parity["attributes"]
    assert again_parity["end_to_end_ms"] == {**first_parity["end_to_end_ms"], "stored": True,
                                             "stored_samples": len(kws.frame)}  # fmt: skip
    plain = _audit(kws, models.f32, target, work=tmp_path)
    assert plain["comparison"]["runs"][0]["batches"]["from_cache"] == 0, "host features are other batches"
    assert plain["attributes"] == first["attributes"]


def test_frontend_on_target_refusals(kws, models, tmp_path):
    with pytest.raises(UsageError, match="needs a target that runs the device runner"):
        audit_model(models.f32, kws.manifest, OPTIONS, MODEL_OPTIONS,
                    TargetOptions(work_dir=tmp_path, frontend_on_target=True))  # fmt: skip
    raw = ModelOptions(frontend=AudioFrontendSpec(kind="raw", sample_rate=8000, clip_seconds=0.5))
    with pytest.raises(UsageError, match="computes audio features on the device; this model's inputs are raw"):
        audit_model(models.f32, kws.manifest, OPTIONS, raw,
                    TargetOptions(targets=("subprocess",), work_dir=tmp_path, frontend_on_target=True))  # fmt: skip


def test_parity_counts_only_scored_rows(kws):
    """A row that failed on some run is left out of the parity too (as of every other comparison figure)."""
    from ondevice_audit.targets.comparison import frontend_parity
    from ondevice_audit.targets.runs import FrontendRecord

    n = len(kws.frame)
    record = FrontendRecord({"kind": "mfcc"}, np.zeros((n, 3), np.float32), np.linspace(0, 1, n), np.full(n, 1e-3),
                            np.full(n, 2e-3))  # fmt: skip
    device = np.asarray(kws.frame["label"], dtype=object)
    host = device.copy()
    host[:5] = "other"
    scored = np.ones(n, dtype=bool)
    scored[[0, n - 1]] = False
    section = frontend_parity(record, device, host, kws.frame.loc[scored, ["gender"]], scored)
    assert section["n"] == n - 2 and section["flips"] == 4
    assert section["max_abs_diff"] == pytest.approx(np.linspace(0, 1, n)[n - 2])
    genders = pd.Series(kws.frame["gender"].to_numpy()[scored])
    assert {g["name"]: g["n"] for g in section["attributes"][0]["groups"]} == genders.value_counts().to_dict()


def _two_outputs(onnx_path: Path, out: Path) -> Path:
    """The ONNX model with a second output: its class scores in another order (so each output scores differently)."""
    import onnx
    from onnx import TensorProto, helper

    model = onnx.load(onnx_path)
    first = model.graph.output[0].name
    order = helper.make_tensor("order", TensorProto.INT64, [3], [2, 0, 1])
    model.graph.initializer.append(order)
    model.graph.node.append(helper.make_node("Gather", [first, "order"], ["shuffled"], axis=1))
    model.graph.output.append(helper.make_tensor_value_info("shuffled", TensorProto.FLOAT, [None, 3]))
    onnx.save(model, out)
    return out


@pytest.mark.parametrize("wanted", ["1", " 1", "shuffled"])
def test_an_output_index_or_name_chooses_the_same_output_here_and_on_the_device(wanted, kws, models, device_python,
                                                                                 tmp_path):  # fmt: skip
    """`--output " 1"` (a stray space) is index 1 on both sides, and the stored batches' key names the output."""
    from ondevice_audit.runtimes import RuntimeOptions
    from ondevice_audit.targets.local import LocalTarget

    path = _two_outputs(models.onnx, tmp_path / "two.onnx")
    inputs = kws.inputs()[:8]
    options = RuntimeOptions(output=wanted)
    with (
        LocalTarget().open(path, None, options) as here,
        SubprocessTarget(python=str(device_python)).open(path, None, options) as there,
    ):
        assert here.model.output == there.model.output == "shuffled"
        np.testing.assert_allclose(here.run(inputs, 8).scores, there.run(inputs, 8).scores, rtol=1e-5)


@pytest.mark.parametrize("wanted", ["²", "-1", "2", "", "shuffled "])
def test_an_output_the_model_lacks_is_one_line_here_and_on_the_device(wanted, models, device_python, tmp_path):
    """An index int() reads but the model lacks ("²", "-1"), or a name it lacks, is the same refusal on both sides:
    the outputs and the indices to choose from, not a crash or "no runtime here can run this model"."""
    import onnx

    from ondevice_audit.runtimes import RuntimeOptions
    from ondevice_audit.targets.local import LocalTarget

    path = _two_outputs(models.onnx, tmp_path / "two.onnx")
    first = onnx.load(path).graph.output[0].name  # Keras numbers its layers per session: dense_1, dense_2...
    for target in (LocalTarget(), SubprocessTarget(python=str(device_python))):
        with pytest.raises(UsageError) as refused:
            target.open(path, None, RuntimeOptions(output=wanted)).__enter__()
        message = str(refused.value)
        assert f"no output {wanted!r}" in message and f"{first}, shuffled (or an index from 0 to 1)" in message, message
        assert "no runtime" not in message and "\n" not in message


def test_stored_batches_of_one_output_are_not_read_back_for_another(kws, models, device_python, tmp_path):
    """A rerun with another ``--output`` runs again: the store's key names the output its scores came from."""
    import dataclasses

    path = _two_outputs(models.onnx, tmp_path / "two.onnx")
    target = SubprocessTarget(python=str(device_python))

    def audit(output: str) -> dict:
        options = TargetOptions(targets=(target,), work_dir=tmp_path / "work", batch_files=48)
        model_options = dataclasses.replace(MODEL_OPTIONS, output=output)
        return audit_model(path, kws.manifest, OPTIONS, model_options, options)

    first, shuffled, again = audit("0"), audit("shuffled"), audit("0")
    assert shuffled["comparison"]["runs"][0]["batches"]["from_cache"] == 0
    assert again["comparison"]["runs"][0]["batches"]["from_cache"] == 3
    assert shuffled["overall"] != first["overall"] and again["overall"] == first["overall"]
