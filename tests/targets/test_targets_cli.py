"""`targets check` and `audit --target/--reference` through the real CLI: facts, clear errors, exit codes."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from ondevice_audit.cli import app
from ondevice_audit.report.document import validate

runner = CliRunner()


def _ssh_options(server, **replace: str) -> list[str]:
    options = dict(o.split("=", 1) for o in server.options) | replace
    return [a for key, value in options.items() for a in ("--ssh-option", f"{key}={value}")]


def test_check_reports_python_architecture_runtimes_and_disk():
    result = runner.invoke(app, ["targets", "check", "subprocess", "--json"])
    assert result.exit_code == 0, result.output
    facts = json.loads(result.stdout)
    assert facts["target"] == "subprocess" and facts["python"] and facts["machine"] and facts["free_disk_bytes"] > 0
    runtimes = {r["name"]: r for r in facts["runtimes"]}
    assert runtimes["litert"]["usable"] and runtimes["onnxruntime"]["version"]
    assert runtimes["tflite_runtime"]["usable"] is False


def test_check_says_no_runtime_on_the_device_runs_the_model(models, server, litert_only_python, tmp_path):
    args = [
        "targets",
        "check",
        server.url(litert_only_python),
        "--model",
        str(models.onnx),
        "--work-dir",
        str(tmp_path),
    ]
    result = runner.invoke(app, [*args, *_ssh_options(server)])
    assert result.exit_code == 2
    assert "cannot run kws.onnx" in result.stderr and "onnxruntime: not installed" in result.stderr
    assert "runtime litert" in result.stdout  # the facts are shown before the error


def test_check_says_which_runtime_runs_the_model_on_the_device(models, server, device_python, tmp_path):
    args = ["targets", "check", server.url(device_python), "--model", str(models.int8), "--work-dir", str(tmp_path)]
    result = runner.invoke(app, [*args, *_ssh_options(server), "--json"])
    assert result.exit_code == 0, result.output
    model = json.loads(result.stdout)["model"]
    assert (model["runtime"], model["input_dtype"], model["output_shape"]) == ("litert", "int8", [None, 3])


def test_an_unknown_host_key_is_refused_not_retried(models, server, tmp_path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    args = ["targets", "check", server.url(), "--work-dir", str(tmp_path)]
    result = runner.invoke(app, [*args, *_ssh_options(server, UserKnownHostsFile=str(empty))])
    assert result.exit_code == 2
    assert "host key verification failed" in result.stderr and "UserKnownHostsFile" in result.stderr


@pytest.mark.parametrize(
    ("target", "extra", "message"),
    [
        ("pi", [], "unknown target 'pi'"),
        ("ssh://pi:secret@host", [], "passwords are not accepted"),
        ("ssh://-oProxyCommand=x", [], "is not a host name"),
        ("ssh://host", ["--ssh-option", "StrictHostKeyChecking=no"], "host keys must be checked"),
        ("ssh://host", ["--ssh-option", "nonsense"], "must look like Key=Value"),
    ],
)
def test_bad_targets_are_one_line_usage_errors(target, extra, message):
    result = runner.invoke(app, ["targets", "check", target, *extra])
    assert result.exit_code == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_an_unreachable_device_says_what_to_check(server, tmp_path):
    closed = f"ssh://{server.user}@127.0.0.1:1"
    result = runner.invoke(app, ["targets", "check", closed, "--work-dir", str(tmp_path), *_ssh_options(server)])
    assert result.exit_code == 3  # the device is away: nothing the user typed is wrong, so a pipeline failure
    assert "Connection refused" in result.stderr and "check that the device is on" in result.stderr


def test_audit_cli_compares_targets_and_a_reference(kws, models, tmp_path):
    args = ["audit", str(models.int8), "--data", str(kws.manifest), "-g", "gender", "--metric", "accuracy",
            "--min-group-size", "10", "--bootstrap", "100", "--permutations", "0", "--reference", str(models.f32),
            "--target", "local", "--target", "subprocess", "--target-batch", "100", "--work-dir", str(tmp_path),
            "-f", "json"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    validate(report)
    runs = report["comparison"]["runs"]
    assert [r["target"] for r in runs] == ["local", "local", "subprocess"]
    assert [r["batches"]["batches"] for r in runs] == [2, 2, 2]
    stored = list((tmp_path / "batches").rglob("*.npz"))
    assert len(stored) == 2, "only the subprocess target's batches are kept to resume"


def test_a_runtime_for_another_format_is_refused(kws, models, tmp_path):
    args = ["audit", str(models.int8), "--data", str(kws.manifest), "-g", "gender", "--bootstrap", "0",
            "--permutations", "0", "--min-group-size", "10", "--target", "subprocess", "--runtime", "litert",
            "--runtime", "onnxruntime", "--work-dir", str(tmp_path)]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert "runtime onnxruntime runs onnx models, not tflite" in result.stderr


@pytest.mark.slow
def test_two_tflite_interpreters_on_the_device_runner(kws, models, tmp_path):
    """LiteRT and TensorFlow's own tf.lite interpreter on the same int8 model (imports TensorFlow: slow)."""
    args = ["audit", str(models.int8), "--data", str(kws.manifest), "-g", "gender", "--bootstrap", "100",
            "--permutations", "0", "--min-group-size", "10", "--target", "subprocess", "--runtime", "litert",
            "--runtime", "tf_lite", "--work-dir", str(tmp_path), "-f", "json"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    comparison = json.loads(result.stdout)["comparison"]
    assert [r["label"] for r in comparison["runs"]] == ["subprocess (litert)", "subprocess (tf_lite)"]
    assert comparison["overall"]["runs"][1]["flip_rate"] is not None
