"""Streaming detectors on targets outside this process: the int8 ``[1, 3, 40]`` stateful TFLite detector (state in
a resource variable, uint8 output) and a stateless windowed ONNX detector, run by the device runner over SSH on
the TensorFlow-free device Python, against the same models run here and fed by hand.

The host cuts the windows and reduces the per-call outputs (``runtimes/streaming.py``); the runner makes the calls,
a fresh interpreter per clip. So the numbers must be the local ones exactly, not approximately.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from ondevice_audit.cli import app
from ondevice_audit.data import read_manifest
from ondevice_audit.frontend import MicroFrontendSpec, build_frontend
from ondevice_audit.report.document import validate
from ondevice_audit.runtimes import RuntimeOptions
from ondevice_audit.runtimes.streaming import DetectorOutput, StreamSettings
from ondevice_audit.targets.local import LocalTarget
from ondevice_audit.targets.ssh import SshTarget

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))  # the detector the benchmark times
from detectors import feed_by_hand, streaming_detector  # noqa: E402

PAD_MS, SMOOTH = 500, 3
STREAM = ["--task", "detect", "--positive-label", "yes", "--features", "micro", "--stream", "--smooth", str(SMOOTH),
          "--pad-ms", str(PAD_MS), "--at-far", "0.3", "--metric", "far"]  # fmt: skip
WEIGHTS, OFFSET = np.full(40, 0.1, np.float32), 20.0
"""Both detectors' probability: sigmoid(0.1 * sum over channels of (frames' mean - 20)), which on these clips
spreads the louder negatives' scores (from 0.09 to 0.19 quantized): at the threshold that accepts 30 % of them,
false accepts differ from clip to clip and group to group (the benchmark's random weights saturate every clip)."""


@pytest.fixture(scope="module")
def features(micro_data: Path) -> np.ndarray:
    files = [Path(p) for p in read_manifest(micro_data).frame["file"]]
    return build_frontend(MicroFrontendSpec(pad_ms=PAD_MS)).transform(files).inputs


@pytest.fixture(scope="module")
def stateful(tmp_path_factory: pytest.TempPathFactory, features: np.ndarray) -> Path:
    """Quantized on the calls of three clips (a 'yes', a 'no', an 'other'), as an export calibrates on data."""
    calls = features[:6:2, : features.shape[1] // 3 * 3, :, 0].reshape(-1, 3, 40)
    return streaming_detector(tmp_path_factory.mktemp("stream") / "stream.tflite", WEIGHTS, OFFSET, calls)


@pytest.fixture(scope="module")
def windowed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A stateless ONNX detector over 9 micro frames (``[N, 9, 40]``), weighted as the stateful one."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes = [
        helper.make_node("ReduceMean", ["frames"], ["mean"], axes=[1], keepdims=0),
        helper.make_node("Sub", ["mean", "offset"], ["centred"]),
        helper.make_node("MatMul", ["centred", "weights"], ["logit"]),
        helper.make_node("Sigmoid", ["logit"], ["probability"]),
    ]
    graph = helper.make_graph(
        nodes, "windowed", [helper.make_tensor_value_info("frames", TensorProto.FLOAT, [None, 9, 40])],
        [helper.make_tensor_value_info("probability", TensorProto.FLOAT, [None, 1])],
        [numpy_helper.from_array(WEIGHTS.reshape(40, 1), "weights"),
         numpy_helper.from_array(np.array(OFFSET, np.float32), "offset")],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    path = tmp_path_factory.mktemp("windowed") / "windowed.onnx"
    onnx.save(model, path)
    return path


@pytest.mark.parametrize("runner", ["persistent", "per-batch"])
def test_a_stateful_detector_streams_on_the_device_as_here(stateful, features, server, device_python, runner):
    """Clip by clip, the device's scores are the local ones bit for bit, and what a wake-word engine computes."""
    options = RuntimeOptions(stream=StreamSettings(DetectorOutput(), smooth=SMOOTH))
    target = SshTarget.from_url(f"{server.url(device_python)}&runner={runner}", server.options)
    with target.open(stateful, None, options) as session:
        remote = session.run(features, 16)
        model = session.model
    with LocalTarget().open(stateful, None, options) as session:
        local = session.run(features, 16)
        assert model.input_shape == session.model.input_shape == [1, None, 40]
    np.testing.assert_array_equal(remote.scores, local.scores)
    by_hand = [feed_by_hand(stateful, clip[..., 0], SMOOTH) for clip in features]
    np.testing.assert_allclose(remote.scores[:, 0], by_hand, rtol=0, atol=1e-6)
    assert remote.scores.shape == (len(features), 1) and np.ptp(remote.scores) > 0.1, "scores that tell clips apart"
    assert remote.latency.shape == (len(features),) and (remote.latency > 0).all()


def _audit(manifest: Path, model: Path, *extra: str) -> dict:
    result = CliRunner().invoke(app, ["audit", str(model), "--data", str(manifest), "-g", "gender", "--bootstrap",
                                      "200", "--permutations", "0", "--min-group-size", "5", "-f", "json", *extra])  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    validate(report)
    return report


def _ssh(server, device_python, work: Path) -> list[str]:
    options = [a for option in server.options for a in ("--ssh-option", option)]
    return ["--target", server.url(device_python), *options, "--work-dir", str(work)]


def test_streaming_audit_over_ssh_equals_local(stateful, micro_data, server, device_python, tmp_path):
    """`audit --stream --target ssh://...`: per group the local audit's numbers; with `--target local` in front,
    no clip decides otherwise."""
    local = _audit(micro_data, stateful, *STREAM)
    remote = _audit(micro_data, stateful, *STREAM, *_ssh(server, device_python, tmp_path / "remote"))
    assert remote["attributes"] == local["attributes"] and remote["detection"] == local["detection"]
    assert remote["comparison"]["runs"][0]["target"] == server.url()
    (identity,) = (tmp_path / "remote").glob("batches/*/*/identity.json")
    assert json.loads(json.loads(identity.read_text())["stream"])["smooth"] == SMOOTH, "stored clip scores say how"
    both = _audit(micro_data, stateful, *STREAM, "--target", "local", *_ssh(server, device_python, tmp_path / "both"))
    comparison = both["comparison"]
    for group in [comparison["overall"], *comparison["attributes"][0]["groups"]]:
        here, there = group["runs"]
        assert there["flips"] == 0 and there["metric"] == here["metric"]
    assert comparison["attributes"][0]["rb"][1]["difference"] == 0
    assert sorted(g["metrics"]["far"] for g in both["attributes"][0]["groups"]) == [0.125, 1 / 3], "groups differ"


def test_a_windowed_onnx_detector_slides_on_the_device_as_here(windowed, micro_data, server, device_python, tmp_path):
    """A stateless model over longer audio (`--hop-ms`): its windows go to the device as an ordinary batch."""
    flags = [*STREAM, "--hop-ms", "30"]
    local = _audit(micro_data, windowed, *flags)
    assert local["detection"]["stream"]["stateful"] is False and local["detection"]["stream"]["hop_frames"] == 3
    both = _audit(micro_data, windowed, *flags, "--target", "local", *_ssh(server, device_python, tmp_path))
    assert both["attributes"] == local["attributes"]
    for group in [both["comparison"]["overall"], *both["comparison"]["attributes"][0]["groups"]]:
        assert group["runs"][1]["flips"] == 0 and group["runs"][1]["metric"] == group["runs"][0]["metric"]


def test_streaming_and_features_on_the_target_is_one_line(stateful, micro_data, tmp_path):
    result = CliRunner().invoke(app, ["audit", str(stateful), "--data", str(micro_data), "-g", "gender", *STREAM,
                                      "--target", "subprocess", "--frontend-on-target", "--work-dir", str(tmp_path)])  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "--frontend-on-target and a streaming detector" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("model", "flags", "problem"),
    [
        ("stateful", ["--stream", "--hop-ms", "30"], "--hop-ms: stream.tflite keeps state between calls"),
        ("stateful", ["--stream", "--hop-ms", "30", "--target", "subprocess"], "--hop-ms: stream.tflite keeps state"),
        ("windowed", ["--stream", "--hop-ms", "0"], r"--hop-ms 0 is shorter than one feature frame \(10 ms\)"),
        ("windowed", ["--stream", "--hop-ms", "4"], r"--hop-ms 4 is shorter than one feature frame \(10 ms\)"),
        ("windowed", ["--no-stream", "--hop-ms", "30"], "--hop-ms apply to streaming detectors: add --stream"),
        ("stateful", ["--stream", "--pad-ms", "1e12"], r"--pad-ms.*less than or equal to 10000"),
        ("stateful", ["--stream", "--smooth", "500", "--target", "subprocess"], "fewer than --smooth 500"),
        ("stateful", ["--stream", "--clip-seconds", "0.02", "--target", "subprocess"], "raise --pad-ms"),
    ],
)
def test_streaming_settings_that_cannot_be_honoured_are_one_line(request, micro_data, tmp_path, model, flags, problem):
    """A hop a stateful model would ignore, one rounded to no hop at all, padding that would ask for terabytes, more
    smoothing than a clip has calls, clips shorter than a window: exit 2 and one line, before the device is used."""
    import re

    path = request.getfixturevalue(model)
    base = [flag for flag in STREAM if flag not in ("--stream", "--smooth", str(SMOOTH), "--pad-ms", str(PAD_MS))]
    result = CliRunner().invoke(app, ["audit", str(path), "--data", str(micro_data), "-g", "gender", *base, *flags,
                                      "--work-dir", str(tmp_path)])  # fmt: skip
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.exit_code == 2 and len(errors) == 1 and "Traceback" not in result.output, result.output
    assert re.search(problem, errors[0]), errors[0]


def test_a_stateful_detector_with_a_float_output_streams_on_the_device_as_here(micro_data, tmp_path):
    """Not every streaming model is quantized: a float32 one (no uint8 output to dequantize) gives the same
    numbers through the device runner as here."""
    from ondevice_audit import _tensorflow

    tf = _tensorflow.tensorflow()

    class Streaming(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.state = tf.Variable(tf.zeros([1, 12, 40]), trainable=False)

        @tf.function(input_signature=[tf.TensorSpec([1, 3, 40], tf.float32)])
        def __call__(self, frames):
            state = tf.concat([self.state[:, 3:, :], frames], axis=1)
            self.state.assign(state)
            return tf.sigmoid(tf.matmul(tf.reduce_mean(state, axis=1) - OFFSET, WEIGHTS.reshape(40, 1)))

    module = Streaming()
    converter = tf.lite.TFLiteConverter.from_concrete_functions([module.__call__.get_concrete_function()], module)
    converter.experimental_enable_resource_variables = True
    path = tmp_path / "float.tflite"
    path.write_bytes(converter.convert())
    local = _audit(micro_data, path, *STREAM)
    assert local["detection"]["stream"]["stateful"] is True
    remote = _audit(micro_data, path, *STREAM, "--target", "subprocess", "--work-dir", str(tmp_path / "work"))
    assert remote["attributes"] == local["attributes"] and remote["detection"] == local["detection"]
