"""MFCC, log-mel and raw-waveform front-ends (librosa), computed a batch of clips at a time."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import scipy.fft
import soundfile as sf
import soxr

from ondevice_audit.frontend.interface import AudioFrontendSpec, Frontend, FrontendBatch, SampleError

__all__ = ["AudioFrontend", "decode_clip"]


@functools.cache
def _dct_basis(n_mfcc: int, n_mels: int) -> np.ndarray:
    return scipy.fft.dct(np.eye(n_mels), type=2, norm="ortho", axis=0)[:n_mfcc].astype(np.float32)


def decode_clip(path: Path, spec: AudioFrontendSpec) -> np.ndarray:
    """Mono float32 waveform at ``spec.sample_rate``, cut or zero-padded at the end to the clip length."""
    if not path.is_file():
        raise SampleError("file not found")
    try:
        audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, ValueError) as exc:
        raise SampleError(f"unreadable audio ({exc})") from None
    if audio.size == 0:
        raise SampleError("empty audio")
    mono = audio.mean(axis=1)
    if rate != spec.sample_rate:
        mono = soxr.resample(mono, rate, spec.sample_rate, quality="HQ").astype(np.float32)
    n = spec.n_samples
    if len(mono) >= n:
        return mono[:n]
    return np.pad(mono, (0, n - len(mono)))


class AudioFrontend(Frontend):
    def __init__(self, spec: AudioFrontendSpec):
        self.spec = spec
        s = spec
        detail = (
            ""
            if s.kind == "raw"
            else (f", {s.n_mfcc} MFCC of" if s.kind == "mfcc" else ",")
            + f" {s.n_mels} mels, {s.frame_length_ms:g} ms {s.window} frames, hop {s.frame_step:g} of a frame"
        )
        self.description = f"{s.kind} @ {s.sample_rate} Hz{detail}"

    def load_one(self, path: Path) -> np.ndarray:
        return self.features(decode_clip(path, self.spec)[None, :])[0]

    def transform(self, paths: Sequence[Path]) -> FrontendBatch:
        clips: list[np.ndarray] = []
        ok = np.zeros(len(paths), dtype=bool)
        failures: dict[int, str] = {}
        for i, path in enumerate(paths):
            try:
                clips.append(decode_clip(path, self.spec))
                ok[i] = True
            except SampleError as exc:
                failures[i] = str(exc)
        if not clips:
            return FrontendBatch(np.zeros((0, *self.spec.input_shape), np.float32), ok, failures)
        return FrontendBatch(self.features(np.stack(clips)), ok, failures)

    def features(self, clips: np.ndarray) -> np.ndarray:
        """``(batch, samples)`` waveforms to ``(batch, *spec.input_shape)`` model inputs."""
        import librosa  # imported here: its first use JIT-compiles, and `score` never needs it

        s = self.spec
        if s.kind == "raw":
            return clips.astype(np.float32)
        power = librosa.feature.melspectrogram(
            y=clips,
            sr=s.sample_rate,
            n_fft=s.win_length,
            hop_length=s.hop_length,
            win_length=s.win_length,
            window=s.window,
            center=False,
            power=2.0,
            n_mels=s.n_mels,
            fmin=s.fmin,
            fmax=s.fmax,
        )
        # top_db=None: a clipping threshold would depend on the loudest clip of the batch.
        logmel = librosa.power_to_db(power, ref=1.0, amin=1e-10, top_db=None)
        if s.kind == "mfcc":
            # librosa.feature.mfcc's DCT-II (ortho) as one matrix product: the same numbers, without a DCT along a
            # strided middle axis of the whole batch
            logmel = np.matmul(_dct_basis(s.n_mfcc, s.n_mels), logmel)
        return np.ascontiguousarray(np.swapaxes(logmel, 1, 2)[..., None], dtype=np.float32)
