"""The TensorFlow Lite Micro audio front-end, from maintained implementations rather than a re-implementation.

With microWakeWord's settings (16 kHz, 30 ms window, 10 ms step, 40 channels, 125-7500 Hz, PCAN on) the
features come from ``pymicro-features``, a binding of TFLM's own front-end C code, which runs without
TensorFlow. Other settings (a 20 ms step and 10 channels, as MLPerf Tiny KWS models use) come from
TensorFlow's configurable ``audio_microfrontend`` op. Both give TFLM's 16-bit values scaled by 1/25.6, as
microWakeWord feeds its models; on the same audio they agree within one scaled step on a handful of bins.
Clips are read as 16-bit samples, as a microphone driver delivers them.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from ondevice_audit.errors import UsageError
from ondevice_audit.frontend.audio import decode_clip
from ondevice_audit.frontend.interface import Frontend, InputFacts, MicroFrontendSpec

__all__ = ["MicroFrontend", "PACKAGE_SETTINGS", "micro_features"]

SCALE = 0.0390625
"""1/25.6: TFLM's uint16 features to the float range microWakeWord models are trained on."""
PACKAGE_SETTINGS = MicroFrontendSpec()
"""The settings ``pymicro-features`` computes (its front-end is compiled with them)."""
_CHUNK = 320
"""Bytes fed to the package at a time: 10 ms of 16 kHz 16-bit audio, as a device's audio callback does."""


def _package_features(samples: np.ndarray) -> np.ndarray:
    from pymicro_features import MicroFrontend as Package

    frontend = Package()
    audio = samples.astype("<i2").tobytes()
    frames, offset = [], 0
    while offset + _CHUNK <= len(audio):
        output = frontend.process_samples(audio[offset : offset + _CHUNK])
        offset += output.samples_read * 2
        if output.features:
            frames.append(output.features)
    return np.asarray(frames, dtype=np.float32).reshape(-1, PACKAGE_SETTINGS.channels)


def _op_features(samples: np.ndarray, spec: MicroFrontendSpec) -> np.ndarray:
    from ondevice_audit import _tensorflow

    tf = _tensorflow.tensorflow()
    from tensorflow.lite.experimental.microfrontend.python.ops import audio_microfrontend_op

    try:
        features = audio_microfrontend_op.audio_microfrontend(
            tf.constant(samples.astype(np.int16)), sample_rate=spec.sample_rate, window_size=round(spec.window_ms),
            window_step=round(spec.step_ms), num_channels=spec.channels, upper_band_limit=spec.upper_band_limit,
            lower_band_limit=spec.lower_band_limit, enable_pcan=spec.enable_pcan,
            min_signal_remaining=spec.min_signal_remaining, out_scale=1, out_type=tf.uint16,
        )  # fmt: skip
    except tf.errors.OpError as exc:
        raise UsageError(f"the micro front-end cannot run with these settings ({exc.message.splitlines()[0]})") from None
    return features.numpy().astype(np.float32) * SCALE


def micro_features(samples: np.ndarray, spec: MicroFrontendSpec) -> np.ndarray:
    """``(frames, channels)`` features of 16-bit ``samples``: the package's with its settings, else the op's."""
    package = dataclasses.replace(spec, clip_seconds=PACKAGE_SETTINGS.clip_seconds, pad_ms=0.0) == PACKAGE_SETTINGS
    if package:
        try:
            return _package_features(samples)
        except ImportError:
            pass  # the op computes the same front-end
    return _op_features(samples, spec)


class MicroFrontend(Frontend):
    def __init__(self, spec: MicroFrontendSpec):
        self.spec = spec
        pad = f", {spec.pad_ms:g} ms padding" if spec.pad_ms else ""
        self.description = (
            f"micro @ {spec.sample_rate} Hz, {spec.channels} channels, {spec.window_ms:g} ms window every "
            f"{spec.step_ms:g} ms (TFLM front-end){pad}"
        )

    def load_one(self, path: Path) -> np.ndarray:
        return self.load_counted(path, InputFacts())

    def load_counted(self, path: Path, facts: InputFacts) -> np.ndarray:
        waveform = decode_clip(path, self.spec, facts)
        samples = np.clip(np.round(waveform * 32768.0), -32768, 32767)
        frames = micro_features(samples, self.spec)
        expected = self.spec.input_shape
        if frames.shape[0] != expected[0]:  # the package emits a frame per full window, as the op does
            frames = frames[: expected[0]] if frames.shape[0] > expected[0] else np.pad(
                frames, ((0, expected[0] - frames.shape[0]), (0, 0))
            )
        return frames[..., None]
