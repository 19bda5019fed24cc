"""Runtime- and compression-induced disparity through ``audit_model``, on local and subprocess targets."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ondevice_audit.audit import ModelOptions, ScoreOptions, TargetOptions, audit_model
from ondevice_audit.errors import UsageError
from ondevice_audit.report.document import validate
from ondevice_audit.report.markdown import MarkdownFormat
from ondevice_audit.report.table import TableFormat
from ondevice_audit.runtimes import load_runtime
from ondevice_audit.targets.process import SubprocessTarget

OPTIONS = ScoreOptions(groups=("gender",), metric="accuracy", bootstrap=200, permutations=0, min_group_size=10)


def _predictions(kws, model) -> np.ndarray:
    return np.asarray(kws.labels)[load_runtime(model).run_all(kws.inputs()).scores.argmax(axis=1)]


@pytest.fixture(scope="module")
def int8_vs_f32(kws, models, device_python, tmp_path_factory):
    """int8 against its float32 base, locally and on the device runner in a Python without TensorFlow."""
    device = SubprocessTarget(python=str(device_python))
    return audit_model(
        models.int8,
        kws.manifest,
        OPTIONS,
        ModelOptions(batch_size=16),
        TargetOptions(
            targets=("local", device), reference=models.f32, work_dir=tmp_path_factory.mktemp("work"), batch_files=64
        ),
    )


def test_flip_rates_and_forgotten_clips_per_group_match_a_hand_count(kws, models, int8_vs_f32):
    report = int8_vs_f32
    validate(report)
    comparison = report["comparison"]
    labels = [run["label"] for run in comparison["runs"]]
    assert labels == ["kws-f32.tflite @ local", "kws-int8.tflite @ local", "kws-int8.tflite @ subprocess"]
    f32, int8 = _predictions(kws, models.f32), _predictions(kws, models.int8)
    truth = kws.frame["label"].to_numpy()
    total_flips = 0
    for group in comparison["attributes"][0]["groups"]:
        members = (kws.frame["gender"] == group["name"]).to_numpy()
        flips = int((f32[members] != int8[members]).sum())
        forgotten = int(((f32[members] == truth[members]) & (int8[members] != truth[members])).sum())
        reference, local, device = group["runs"]
        assert reference["flips"] is None
        for run in (local, device):  # the device runner's int8 (de)quantisation gives the same labels
            assert (run["flips"], run["forgotten"]) == (flips, forgotten)
            assert run["flip_rate"] == pytest.approx(flips / members.sum())
            assert run["forgotten_share"] == pytest.approx(forgotten / members.sum())
        assert group["reference_correct"] == int((f32[members] == truth[members]).sum())
        assert local["metric"] == pytest.approx((int8[members] == truth[members]).mean())
        total_flips += flips
    assert total_flips > 0, "int8 should change some predictions of this tiny model"
    rb = comparison["attributes"][0]["rb"]
    assert rb[0]["difference"] is None and rb[1]["difference"] == rb[2]["difference"]
    assert rb[1]["ci"][0] <= rb[1]["difference"] <= rb[1]["ci"][1]


def test_latency_and_peak_memory_per_target(int8_vs_f32):
    runs = int8_vs_f32["comparison"]["runs"]
    for run in runs:
        assert 0 < run["latency_ms"]["median"] <= run["latency_ms"]["p90"]
        assert run["batches"]["batches"] == 3  # 144 clips in batches of 64
    assert runs[1]["peak_memory_bytes"] is None, "in-process memory would be the host's"
    assert runs[2]["peak_memory_bytes"] > 10 * 2**20
    assert runs[2]["device"]["python"] and runs[2]["runtime"] == "litert"


def test_main_report_is_the_audited_model_on_the_first_target(kws, models, int8_vs_f32):
    plain = audit_model(models.int8, kws.manifest, OPTIONS)
    assert int8_vs_f32["attributes"] == plain["attributes"]
    assert int8_vs_f32["overall"] == plain["overall"]
    assert int8_vs_f32["model"]["sha256"] == plain["model"]["sha256"]
    assert [i["role"] for i in int8_vs_f32["inputs"]] == ["model", "manifest", "reference model"]


def test_renderers_show_the_comparison(int8_vs_f32):
    markdown = MarkdownFormat().format(int8_vs_f32)
    assert "## Comparison of runs" in markdown and "flips \\#2" in markdown and "paired 95% CI" in markdown
    table = TableFormat(width=200).format(int8_vs_f32)
    assert "forgotten #3" in table and "kws-int8.tflite @ subprocess" in table


def test_same_target_twice_is_refused(kws, models):
    with pytest.raises(UsageError, match="asked for twice"):
        audit_model(models.f32, kws.manifest, OPTIONS, target_options=TargetOptions(targets=("local", "local")))


def test_runner_only_runtime_on_local_says_where_it_runs(kws, models):
    with pytest.raises(UsageError, match="use --target subprocess"):
        audit_model(models.f32, kws.manifest, OPTIONS, target_options=TargetOptions(runtimes=("tf_lite",)))


def test_kernel_choice_runs_on_the_device_runner_as_in_process(kws, models, device_python, tmp_path):
    """``litert-ref`` names the same kernels on a device: the runner's scores equal this process's, the report
    names the runtime as asked, with its kernels and threads, and the stored batches of the two kernel choices
    are kept apart."""
    device = SubprocessTarget(python=str(device_python))
    report = audit_model(models.int8, kws.manifest, OPTIONS, ModelOptions(threads=2),
                         TargetOptions(targets=(device,), runtimes=("litert-ref", "litert"), work_dir=tmp_path))  # fmt: skip
    validate(report)
    runs = report["comparison"]["runs"]
    assert [(run["runtime"], run["kernels"], run["threads"]) for run in runs] == [
        ("litert-ref", "reference", 2), ("litert", "optimized", 2)]  # fmt: skip
    assert runs[1]["delegate"].startswith("XNNPACK (") and runs[0]["delegate"] is None
    assert (report["model"]["runtime"], report["settings"]["threads"]) == ("litert-ref", 2)
    stored = [json.loads(path.read_text()) for path in (tmp_path / "batches").glob("*/*/identity.json")]
    assert sorted((i["runtime"], i["kernels"], i["threads"]) for i in stored) == [
        ("litert", "optimized", "2"), ("litert-ref", "reference", "2")]  # fmt: skip
    local = np.asarray(kws.labels)[load_runtime(models.int8, "litert-ref").run_all(kws.inputs()).scores.argmax(1)]
    flips = int((local != _predictions(kws, models.int8)).sum())
    assert report["comparison"]["overall"]["runs"][1]["flips"] == flips
