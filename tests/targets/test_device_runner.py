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


def _serve(python: Path | str, folder: Path, model: Path) -> subprocess.Popen[bytes]:
    argv = [str(python), str(folder / "device_runner.py"), "serve", "--model", str(model)]
    return subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_serve_loads_once_and_answers_every_batch_on_one_channel(models, device_python, device_folder):
    """Batches of several sizes through one runner process; a batch it cannot run is an error frame, and the
    runner goes on; closing stdin ends it with status 0."""
    from ondevice_audit.targets.channel import RunnerChannel

    shutil.copy(models.int8, device_folder / "model.tflite")
    channel = RunnerChannel(_serve(device_python, device_folder, device_folder / "model.tflite"))
    hello = channel.hello()
    assert hello["model"]["runtime"] == "litert" and hello["protocol"] == device_runner.PROTOCOL
    assert hello["requests"] == ["run", "stream", "close"]
    runtime = load_runtime(models.int8)
    for n, batch in ((10, 4), (3, 4), (7, 2)):
        inputs = _inputs(n)
        reply, outputs = channel.exchange({"command": "run", "batch_size": batch}, {"inputs": inputs})
        assert reply["samples"] == n and reply["peak_memory_bytes"] > 0
        np.testing.assert_array_equal(outputs["scores"], runtime.run_all(inputs, batch).scores)
        assert outputs["latency"].shape == (n,) and (outputs["latency"] > 0).all()
    reply, outputs = channel.exchange({"command": "run", "batch_size": 4}, {"inputs": np.zeros((2, 3), np.float32)})
    assert reply["kind"] == "inputs" and "shape [2, 3]" in reply["error"] and outputs == {}
    reply, _ = channel.exchange({"command": "stream", "batch_size": 4}, {"inputs": _inputs(2)[:, 0, 0]})
    assert reply["kind"] == "inputs" and "(clips, calls, ...)" in reply["error"], "a stream request holds clips"
    reply, _ = channel.exchange({"command": "run", "batch_size": 4}, {"inputs": _inputs(2)})
    assert reply["samples"] == 2, "an error frame does not end the runner"
    channel.close()
    assert channel._process.returncode == 0


class _CountingModel:
    """A stand-in with the runner's model interface: what matters here is which calls are timed."""

    max_batch = None

    def __init__(self) -> None:
        self.warm_size = None
        self.calls: list[int] = []

    def run(self, inputs: np.ndarray) -> np.ndarray:
        self.calls.append(len(inputs))
        return inputs[:, :1]


def test_only_warmed_up_calls_are_timed():
    """A chunk of a size the model did not run last (the first, the short last one) runs once untimed first:
    tensor allocation and weight packing are not inference latency."""
    model = _CountingModel()
    scores, latency = device_runner.run_chunks(model, np.ones((70, 2), np.float32), 32)
    assert model.calls == [32, 32, 32, 6, 6] and scores.shape == (70, 1) and latency.shape == (70,)
    device_runner.run_chunks(model, np.ones((64, 2), np.float32), 32)
    assert model.calls[5:] == [32, 32, 32], "the size changed back: warmed once more, then timed"


@pytest.mark.parametrize("settings", [{"sample_rate": 16000}, {"sample_rate": 8000, "n_mels": 20, "fmax": 3500.0}])
def test_the_runners_filterbank_and_window_are_librosas(settings):
    """The device computes MFCC and log-mel with numpy alone: its filterbank is librosa's bit for bit, its window
    scipy's (the host front-end's), its DCT scipy's orthonormal DCT-II."""
    import librosa
    import scipy.fft

    rate, n_mels = settings["sample_rate"], settings.get("n_mels", 40)
    n_fft = rate * 40 // 1000
    expected = librosa.filters.mel(sr=rate, n_fft=n_fft, n_mels=n_mels, fmin=20.0, fmax=settings.get("fmax"))
    ours = device_runner.mel_filterbank(rate, n_fft, n_mels, 20.0, settings.get("fmax"))
    assert ours.dtype == expected.dtype and np.array_equal(ours, expected)
    for window in ("hann", "hamming"):
        np.testing.assert_allclose(device_runner.periodic_window(window, n_fft),
                                   librosa.filters.get_window(window, n_fft, fftbins=True), rtol=0, atol=1e-15)  # fmt: skip
    dct = scipy.fft.dct(np.eye(n_mels), type=2, norm="ortho", axis=0)[:10].astype(np.float32)
    np.testing.assert_allclose(device_runner.dct_basis(10, n_mels), dct, rtol=0, atol=1e-6)


def test_features_on_the_device_equal_the_hosts(kws, models, device_python, device_folder):
    """Audio in, MFCCs computed by the runner in the device's Python (numpy only), the model run on them and on the
    host's features: on the same numpy the two feature sets differ at most in float32 rounding (BLAS may sum a
    batch of another size in another order), and the decisions not at all."""
    import dataclasses

    from ondevice_audit.frontend import build_frontend
    from ondevice_audit.frontend.audio import decode_clip
    from ondevice_audit.targets.channel import RunnerChannel

    paths = [kws.manifest.parent / p for p in kws.frame["path"][:9]]
    host = build_frontend(kws.spec).transform(paths).inputs
    audio = np.stack([decode_clip(path, kws.spec) for path in paths])
    shutil.copy(models.onnx, device_folder / "model.onnx")
    channel = RunnerChannel(_serve(device_python, device_folder, device_folder / "model.onnx"))
    channel.hello()
    header = {"command": "run", "batch_size": 4, "frontend": dataclasses.asdict(kws.spec)}
    reply, outputs = channel.exchange(header, {"audio": audio, "inputs": host})
    channel.close()
    assert "error" not in reply, reply
    assert outputs["feature_diff"].shape == (9,) and outputs["feature_diff"].max() < 1e-4
    np.testing.assert_allclose(outputs["scores"], outputs["host_scores"], rtol=0, atol=1e-5)
    np.testing.assert_array_equal(outputs["host_scores"], load_runtime(models.onnx).run_all(host, 4).scores)
    assert (outputs["scores"].argmax(1) == outputs["host_scores"].argmax(1)).all()
    assert (outputs["feature_latency"] > 0).all() and outputs["latency"].shape == (9,)


@pytest.mark.parametrize(("kind", "window", "rate"), [("mfcc", "hamming", 16000), ("logmel", "hann", 16000),
                                                       ("logmel", "hamming", 8000)])  # fmt: skip
def test_the_runners_features_equal_the_host_front_end(kind, window, rate):
    """The runner's numpy front-end against the host's (librosa filterbank, scipy FFT and DCT) on tones and noise,
    both with BLAS on one thread as each runs: equal to the last bit."""
    import dataclasses

    from threadpoolctl import threadpool_limits

    from ondevice_audit.frontend import AudioFrontendSpec, build_frontend

    spec = AudioFrontendSpec(kind=kind, window=window, sample_rate=rate)
    rng = np.random.default_rng(1)
    t = np.arange(spec.n_samples) / rate
    clips = np.concatenate([0.1 * rng.standard_normal((6, spec.n_samples)), 0.4 * np.sin(2 * np.pi * 440 * t)[None]])
    clips = clips.astype(np.float32)
    with threadpool_limits(1, user_api="blas"):
        host = build_frontend(spec).features(clips)
        device = device_runner.SpectralFeatures(dataclasses.asdict(spec))(clips)
    assert device.shape == host.shape == (7, *spec.input_shape)
    np.testing.assert_array_equal(device, host)


def test_a_front_end_the_device_lacks_is_one_error(device_python, device_folder, models):
    from ondevice_audit.targets.channel import RunnerChannel

    shutil.copy(models.onnx, device_folder / "model.onnx")
    channel = RunnerChannel(_serve(device_python, device_folder, device_folder / "model.onnx"))
    channel.hello()
    audio = np.zeros((2, 16000), np.float32)
    reply, _ = channel.exchange({"command": "run", "batch_size": 2, "frontend": {"kind": "micro"}}, {"audio": audio})
    assert reply["kind"] == "frontend" and "pymicro-features" in reply["error"]
    reply, _ = channel.exchange({"command": "run", "batch_size": 2, "frontend": {"kind": "image"}}, {"audio": audio})
    assert reply["kind"] == "frontend" and "not 'image'" in reply["error"]
    channel.close()


def _mean_model(path: Path, frames: int, channels: int) -> None:
    """An ONNX model whose one score is the mean of its ``(frames, channels, 1)`` input: any features will do."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["input"], ["score"], axes=[1, 2, 3], keepdims=1)],
        "mean",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["n", frames, channels, 1])],
        [helper.make_tensor_value_info("score", TensorProto.FLOAT, ["n", 1, 1, 1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))


@pytest.mark.skipif(importlib.util.find_spec("pymicro_features") is None, reason="pymicro-features is not installed")
def test_the_micro_front_end_on_the_device_is_the_packages(micro_python, device_folder):
    """A device that has pymicro-features computes the TFLite Micro front-end itself: its features equal the
    package's, fed the same 16-bit audio 10 ms at a time here (an independent loop)."""
    from pymicro_features import MicroFrontend

    from ondevice_audit.targets.channel import RunnerChannel

    rng = np.random.default_rng(0)
    audio = (0.2 * rng.standard_normal((3, 16000))).astype(np.float32)
    expected = []
    for clip in audio:
        frontend, frames = MicroFrontend(), []
        pcm = np.clip(np.round(clip.astype(np.float64) * 32768), -32768, 32767).astype("<i2")
        for start in range(0, 16000, 160):
            output = frontend.process_samples(pcm[start : start + 160].tobytes())
            if output.features:
                frames.append(output.features)
        expected.append(frames)
    host = np.asarray(expected, dtype=np.float32)[..., None]
    _mean_model(device_folder / "model.onnx", host.shape[1], host.shape[2])
    channel = RunnerChannel(_serve(micro_python, device_folder, device_folder / "model.onnx"))
    channel.hello()
    header = {"command": "run", "batch_size": 2, "frontend": {"kind": "micro", "sample_rate": 16000}}
    reply, outputs = channel.exchange(header, {"audio": audio, "inputs": host})
    channel.close()
    assert "error" not in reply, reply
    assert host.shape == (3, 98, 40, 1)
    np.testing.assert_array_equal(outputs["feature_diff"], np.zeros(3))
    np.testing.assert_allclose(outputs["scores"][:, 0], host.mean(axis=(1, 2, 3)), rtol=1e-5)


def test_the_runner_is_python_3_7_syntax():
    """Boards run old Pythons (Raspberry Pi OS Buster, JetPack 4: 3.7): no newer syntax in the one file sent."""
    import ast

    ast.parse(Path(device_runner.__file__).read_text(), feature_version=(3, 7))
