"""The device runner on its own, in a Python that has no TensorFlow (and no ondevice_audit) to import.

The device Python is a ``--without-pip`` venv exposing only numpy and the runtimes under test (see conftest),
so the runner is proven to need nothing else. tflite_runtime is not tested: its wheels are built against
numpy 1 and it is not installable next to numpy 2 (which this project pins); the runner supports it all the
same. ``tensorflow.lite`` (``tf_lite``) needs TensorFlow, so it runs in the project's Python, marked slow.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ondevice_audit.runtimes import load_runtime
from ondevice_audit.targets import device_runner


def _inputs(n: int = 10) -> np.ndarray:
    return np.random.default_rng(0).normal(size=(n, 24, 10, 1)).astype(np.float32)


def _runner(python: Path | str, folder: Path, *args: str) -> tuple[int, dict]:
    done = subprocess.run([str(python), str(folder / "device_runner.py"), *args], capture_output=True, text=True)
    return done.returncode, json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture
def device_folder(tmp_path: Path) -> Path:
    shutil.copy(device_runner.__file__, tmp_path / "device_runner.py")
    return tmp_path


@pytest.mark.parametrize(("model", "runtime"), [("f32", "litert"), ("int8", "litert"), ("onnx", "onnxruntime")])
def test_runner_without_tensorflow_matches_the_host_runtime(models, device_python, device_folder, model, runtime):
    path = getattr(models, model)
    local_model = device_folder / f"model{path.suffix}"
    shutil.copy(path, local_model)
    inputs = _inputs(10)
    np.savez(device_folder / "in.npz", inputs=inputs)
    status, reply = _runner(device_python, device_folder, "run", "--model", str(local_model), "--inputs",
                            str(device_folder / "in.npz"), "--outputs", str(device_folder / "out.npz"),
                            "--batch-size", "4")  # fmt: skip
    assert status == 0, reply
    assert reply["runtime"] == runtime and reply["peak_memory_bytes"] > 0
    with np.load(device_folder / "out.npz") as out:
        scores, latency = out["scores"], out["latency"]
    expected = load_runtime(path).run_all(inputs, 4).scores
    np.testing.assert_array_equal(scores, expected)  # int8: the runner (de)quantises exactly as the host does
    assert latency.shape == (10,) and (latency > 0).all()
    assert not (device_folder / "in.npz").exists(), "the runner removes its inputs once read"


def test_facts_report_runtimes_and_which_one_runs_a_model(models, litert_only_python, device_folder):
    shutil.copy(models.onnx, device_folder / "model.onnx")
    shutil.copy(models.int8, device_folder / "model.tflite")
    status, facts = _runner(litert_only_python, device_folder, "facts", "--model", str(device_folder / "model.onnx"))
    assert status == 0
    runtimes = {r["name"]: r for r in facts["runtimes"]}
    assert runtimes["litert"]["usable"] and runtimes["litert"]["version"]
    assert runtimes["onnxruntime"]["note"] == "not installed" and runtimes["tf_lite"]["note"] == "not installed"
    assert facts["machine"] and facts["python"] and facts["free_disk_bytes"] > 0
    assert "model" not in facts and "onnxruntime: not installed" in facts["model_error"]
    status, facts = _runner(litert_only_python, device_folder, "facts", "--model", str(device_folder / "model.tflite"))
    assert facts["model"]["runtime"] == "litert" and facts["model"]["input_dtype"] == "int8"


def test_run_reports_errors_as_json_with_a_kind(device_python, device_folder):
    (device_folder / "model.tflite").write_bytes(b"not a model")
    np.savez(device_folder / "in.npz", inputs=_inputs(2))
    status, reply = _runner(device_python, device_folder, "run", "--model", str(device_folder / "model.tflite"),
                            "--inputs", str(device_folder / "in.npz"), "--outputs", str(device_folder / "o.npz"))  # fmt: skip
    assert status == 3 and reply["kind"] == "runtime" and "litert" in reply["error"]


@pytest.mark.parametrize("kernels", ["builtin", "ref"])
def test_runner_kernels_match_the_host_runtime_of_the_same_kernels(models, device_python, device_folder, kernels):
    shutil.copy(models.int8, device_folder / "model.tflite")
    inputs = _inputs(12)
    np.savez(device_folder / "in.npz", inputs=inputs)
    model = str(device_folder / "model.tflite")
    status, reply = _runner(device_python, device_folder, "run", "--model", model, "--kernels", kernels, "--threads",
                            "2", "--inputs", str(device_folder / "in.npz"), "--outputs", str(device_folder / "o.npz"))  # fmt: skip
    assert status == 0, reply
    with np.load(device_folder / "o.npz") as out:
        expected = load_runtime(models.int8, f"litert-{kernels}").run_all(inputs).scores
        np.testing.assert_array_equal(out["scores"], expected)
    status, facts = _runner(device_python, device_folder, "facts", "--model", model, "--kernels", kernels,
                            "--threads", "2")  # fmt: skip
    assert facts["model"]["kernels"] == ("reference" if kernels == "ref" else "optimized")
    assert (facts["model"]["delegate"], facts["model"]["threads"]) == (None, 2)
    litert = next(r for r in facts["runtimes"] if r["name"] == "litert")
    assert litert["kernels"] == ["default", "builtin", "ref"]


def test_runner_default_kernels_say_which_delegate_ran(models, device_python, device_folder):
    shutil.copy(models.int8, device_folder / "model.tflite")
    status, facts = _runner(device_python, device_folder, "facts", "--model", str(device_folder / "model.tflite"))
    host = load_runtime(models.int8, "litert").describe()
    assert facts["model"]["delegate"] == host.delegate and host.delegate.startswith("XNNPACK (")
    assert (facts["model"]["kernels"], facts["model"]["threads"]) == ("optimized", 1)


def test_kernels_of_an_onnx_model_are_refused(models, device_python, device_folder):
    shutil.copy(models.onnx, device_folder / "model.onnx")
    status, reply = _runner(device_python, device_folder, "facts", "--model", str(device_folder / "model.onnx"),
                            "--kernels", "ref")  # fmt: skip
    assert status == 0 and "--kernels ref chooses a TFLite interpreter's kernels" in reply["model_error"]


@pytest.mark.skipif(importlib.util.find_spec("tflite_runtime") is None, reason="tflite_runtime needs numpy 1")
def test_tflite_runtime(models, device_folder):
    shutil.copy(models.int8, device_folder / "model.tflite")
    np.savez(device_folder / "in.npz", inputs=_inputs(3))
    status, reply = _runner(sys.executable, device_folder, "run", "--runtime", "tflite_runtime", "--model",
                            str(device_folder / "model.tflite"), "--inputs", str(device_folder / "in.npz"),
                            "--outputs", str(device_folder / "out.npz"))  # fmt: skip
    assert status == 0 and reply["runtime"] == "tflite_runtime"


@pytest.mark.slow
def test_tensorflow_lite_interpreter_matches_litert(models, device_folder):
    shutil.copy(models.int8, device_folder / "model.tflite")
    inputs = _inputs(6)
    np.savez(device_folder / "in.npz", inputs=inputs)
    status, reply = _runner(sys.executable, device_folder, "run", "--runtime", "tf_lite", "--model",
                            str(device_folder / "model.tflite"), "--inputs", str(device_folder / "in.npz"),
                            "--outputs", str(device_folder / "out.npz"))  # fmt: skip
    assert status == 0 and reply["runtime"] == "tf_lite"
    with np.load(device_folder / "out.npz") as out:
        assert (out["scores"].argmax(1) == load_runtime(models.int8).run_all(inputs).scores.argmax(1)).all()
