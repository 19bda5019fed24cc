"""Detector benchmarks (`run.py --only detectors`), and the streaming test detector they share with the tests.

- streaming: the int8 streaming detector below (``[1, 3, 40]`` micro frames in, state in a resource variable,
  uint8 probability out) over 2 000 clips' precomputed micro features: the audit's streaming runtime
  (``runtimes/streaming.py``: a fresh interpreter per clip, three frames per call, smoothing, the maximum)
  against the same done by hand on LiteRT's interpreter. Target: <= 1.5x. The whole ``audit --stream``
  command on the same clips (reading the files and computing the front-end too) is printed beside it.
- micro front-end: the tool's micro front-end over 2 000 one-second clips against calling ``pymicro-features``
  directly on the same decoded 16-bit samples, 10 ms of audio per call. Target: <= 1.2x, the same values.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

_STATE_FRAMES = 12


def streaming_detector(
    path: Path, weights: np.ndarray | None = None, offset: float = 12.0, calls: np.ndarray | None = None
) -> Path:
    """int8 ``[1, 3, 40]`` in, uint8 probability out, the last 12 frames kept in a resource variable: the
    shape of a microWakeWord model, built here (nothing is downloaded). Its probability is the sigmoid of
    ``weights`` (40 of them; default: seeded random ones) times the mean of the kept frames less ``offset``,
    quantized on ``calls`` (``(k, 3, 40)`` frames, fed in order as a stream; default: random frames)."""
    chosen = np.random.default_rng(0).standard_normal((40, 1)).astype(np.float32) * 0.3 if weights is None else weights
    from ondevice_audit import _tensorflow

    tf = _tensorflow.tensorflow()

    class Streaming(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.state = tf.Variable(tf.zeros([1, _STATE_FRAMES, 40]), trainable=False)
            self.weights = tf.constant(np.asarray(chosen, np.float32).reshape(40, 1))

        @tf.function(input_signature=[tf.TensorSpec([1, 3, 40], tf.float32)])
        def __call__(self, frames):  # type: ignore[no-untyped-def]
            state = tf.concat([self.state[:, 3:, :], frames], axis=1)
            self.state.assign(state)
            return tf.sigmoid(tf.matmul(tf.reduce_mean(state, axis=1) - offset, self.weights))

    module = Streaming()
    converter = tf.lite.TFLiteConverter.from_concrete_functions([module.__call__.get_concrete_function()], module)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if calls is None:
        calls = np.random.default_rng(1).uniform(0, 26, (64, 3, 40)).astype(np.float32)
    converter.representative_dataset = lambda: ([np.asarray(call, np.float32)[None]] for call in calls)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type, converter.inference_output_type = tf.int8, tf.uint8
    converter.experimental_enable_resource_variables = True
    path.write_bytes(converter.convert())
    return path


def feed_by_hand(model: Path, frames: np.ndarray, smooth: int) -> float:
    """One clip's probability as a wake-word engine computes it: a fresh interpreter, three frames per call,
    quantized in and dequantized out, a moving mean of ``smooth`` calls, the maximum."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(model))
    interpreter.allocate_tensors()
    source, sink = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    scale, zero = source["quantization"]
    out_scale, out_zero = sink["quantization"]
    probabilities = []
    for start in range(0, len(frames) - 2, 3):
        quantized = np.clip(np.round(frames[start : start + 3] / scale + zero), -128, 127).astype(np.int8)[None]
        interpreter.set_tensor(source["index"], quantized)
        interpreter.invoke()
        probabilities.append((float(interpreter.get_tensor(sink["index"])[0, 0]) - out_zero) * out_scale)
    return float(np.convolve(probabilities, np.full(smooth, 1 / smooth), mode="valid").max())


def _alternated(sides: dict[str, object], repeats: int) -> dict[str, float]:
    """Best wall time of each side, the sides alternated so both see the same moments of a shared machine."""
    best = {name: float("inf") for name in sides}
    for _ in range(repeats):
        for name, run in sides.items():
            started = time.perf_counter()
            run()  # type: ignore[operator]
            best[name] = min(best[name], time.perf_counter() - started)
    return best


def bench_streaming(work: Path, n: int = 2000, smooth: int = 5) -> list[tuple[str, float, str]]:
    import subprocess
    import sys

    from streaming import clip_corpus

    from ondevice_audit.data import read_manifest
    from ondevice_audit.frontend import MicroFrontendSpec, build_frontend
    from ondevice_audit.runtimes import RuntimeOptions, load_runtime
    from ondevice_audit.runtimes.streaming import DetectorOutput, StreamSettings

    manifest = clip_corpus(work / "clips", n, ["yes", "no", "up", "down"])
    model = streaming_detector(work / "streaming-detector.tflite")
    spec = MicroFrontendSpec(pad_ms=300)
    files = [Path(p) for p in read_manifest(manifest).frame["file"]]
    features = build_frontend(spec).transform(files).inputs
    settings = StreamSettings(DetectorOutput(), smooth=smooth)

    def tool() -> np.ndarray:
        runtime = load_runtime(model, None, RuntimeOptions(stream=settings))
        try:
            return runtime.run_all(features).scores[:, 0]
        finally:
            runtime.close()

    def by_hand() -> np.ndarray:
        return np.array([feed_by_hand(model, clip[..., 0], smooth) for clip in features])

    diff = float(np.abs(tool() - by_hand()).max())
    best = _alternated({"tool": tool, "hand": by_hand}, repeats=3)
    command = [sys.executable, "-m", "ondevice_audit", "audit", str(model), "--data", str(manifest), "-g", "gender",
               "--task", "detect", "--positive-label", "yes", "--features", "micro", "--stream", "--pad-ms", "300",
               "--smooth", str(smooth), "--threshold", "0.5", "--bootstrap", "0", "--permutations", "0",
               "-o", str(work / "streaming-report.json")]  # fmt: skip
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    whole = time.perf_counter() - started
    ratio = best["tool"] / best["hand"]
    print(f"streaming detector, {n} clips of {features.shape[1]} frames: audit's runtime {best['tool']:.2f} s, "
          f"by hand {best['hand']:.2f} s, max |diff| {diff:.1e}; the whole audit command {whole:.2f} s")  # fmt: skip
    verdict = "PASS" if ratio <= 1.5 and diff <= 1e-6 else "MISS"
    return [
        (f"streaming audit {n} clips / raw interpreter loop (x, <= 1.5)", ratio, verdict),
        ("streaming: the whole audit command (s)", whole, "INFO"),
    ]


def bench_micro_frontend(work: Path, n: int = 2000) -> list[tuple[str, float, str]]:
    from pymicro_features import MicroFrontend as Package
    from streaming import clip_corpus

    from ondevice_audit.data import read_manifest
    from ondevice_audit.frontend import MicroFrontendSpec, build_frontend
    from ondevice_audit.frontend.audio import decode_clip

    manifest = clip_corpus(work / "clips", n, ["yes", "no", "up", "down"])
    files = [Path(p) for p in read_manifest(manifest).frame["file"]]
    spec = MicroFrontendSpec()
    frontend = build_frontend(spec)

    def package() -> np.ndarray:
        clips = []
        for path in files:
            audio = np.clip(np.round(decode_clip(path, spec) * 32768.0), -32768, 32767).astype("<i2").tobytes()
            frontend_state, frames, offset = Package(), [], 0
            while offset + 320 <= len(audio):
                output = frontend_state.process_samples(audio[offset : offset + 320])
                offset += output.samples_read * 2
                if output.features:
                    frames.append(output.features)
            clips.append(np.asarray(frames, dtype=np.float32)[: spec.input_shape[0]])
        return np.stack(clips)

    def tool() -> np.ndarray:
        return frontend.transform(files).inputs[..., 0]

    diff = float(np.abs(tool() - package()).max())
    best = _alternated({"tool": tool, "package": package}, repeats=5)
    ratio = best["tool"] / best["package"]
    print(f"micro front-end, {n} clips: the tool {best['tool']:.2f} s, pymicro-features directly "
          f"{best['package']:.2f} s, max |diff| {diff:.1e}")  # fmt: skip
    verdict = "PASS" if ratio <= 1.2 and diff == 0 else "MISS"
    return [(f"micro front-end {n} clips / the package directly (x, <= 1.2)", ratio, verdict)]
