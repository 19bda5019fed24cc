"""MFCC, log-mel and raw-waveform front-ends, computed a batch of clips at a time.

The numbers are librosa's (``melspectrogram(center=False)``, ``power_to_db(ref=1, amin=1e-10, top_db=None)``,
``mfcc``'s orthonormal DCT-II), computed as a few whole-batch array operations: frames are a strided view, the
FFT runs in float64 as librosa's does (float32 would move quiet mel bands of a pure tone by ~0.02 dB), and the
mel filterbank and DCT are matrices built once. Sub-batches of files are decoded and transformed on a thread
pool: libsndfile, soxr, the FFT and the matrix products release the GIL (BLAS runs one thread per pool thread).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import scipy.fft
import scipy.signal
import soundfile as sf
import soxr
from threadpoolctl import ThreadpoolController

from ondevice_audit.frontend.interface import (
    AudioFrontendSpec,
    Frontend,
    FrontendBatch,
    InputFacts,
    MicroFrontendSpec,
    SampleError,
)

__all__ = ["AudioFrontend", "decode_clip"]

_SUB_BATCH = 8
"""Files one thread decodes and transforms at a time: the float64 frames (8 x 49 x 640 x 8 B = 2 MB at the
defaults) and the spectra stay in the CPU cache; 64 at a time costs a fifth more CPU time, 4 no less than 8."""
_THREADS = min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


@functools.cache
def _thread_pools() -> ThreadpoolController:
    """Found once: looking up the loaded BLAS libraries takes ~10 ms in a process that has loaded TensorFlow."""
    return ThreadpoolController()


@functools.cache
def _dct_basis(n_mfcc: int, n_mels: int) -> np.ndarray:
    return scipy.fft.dct(np.eye(n_mels), type=2, norm="ortho", axis=0)[:n_mfcc].astype(np.float32)


@functools.cache
def _window(name: str, length: int) -> np.ndarray:
    """The periodic window librosa uses (``get_window(fftbins=True)`` is scipy's)."""
    return scipy.signal.get_window(name, length, fftbins=True)


def _hz_to_mel(hz: float | np.ndarray) -> np.ndarray:
    """Slaney's mel scale (librosa's default, ``htk=False``): linear below 1 kHz, logarithmic above."""
    hz = np.asarray(hz, dtype=np.float64)
    linear = hz / _MEL_HZ_STEP
    log = _MIN_LOG_MEL + np.log(np.maximum(hz, _MIN_LOG_HZ) / _MIN_LOG_HZ) / _LOG_STEP
    return np.where(hz >= _MIN_LOG_HZ, log, linear)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    linear = _MEL_HZ_STEP * mel
    log = _MIN_LOG_HZ * np.exp(_LOG_STEP * (mel - _MIN_LOG_MEL))
    return np.where(mel >= _MIN_LOG_MEL, log, linear)


_MEL_HZ_STEP = 200.0 / 3
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _MEL_HZ_STEP
_LOG_STEP = np.log(6.4) / 27.0


@functools.cache
def _mel_basis(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float | None) -> np.ndarray:
    """librosa's ``filters.mel`` (Slaney scale and area normalisation), bit for bit, without importing librosa:
    librosa pulls numba and LLVM (~150 MB) into the core install for these few lines of numpy.
    Triangles between mel-spaced edges, computed in float64 and stored as float32 as librosa does."""
    top = float(sample_rate) / 2 if fmax is None else fmax
    fft_hz = np.fft.rfftfreq(n_fft, d=1.0 / sample_rate)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(fmin), _hz_to_mel(top), n_mels + 2))
    widths = np.diff(edges)
    ramps = np.subtract.outer(edges, fft_hz)
    rising = -ramps[:-2] / widths[:-1, None]
    falling = ramps[2:] / widths[1:, None]
    weights = np.maximum(0, np.minimum(rising, falling)).astype(np.float32)
    weights = (weights * (2.0 / (edges[2:] - edges[:-2]))[:, None]).astype(np.float32)
    return np.ascontiguousarray(weights.T, dtype=np.float32)


def decode_clip(
    path: Path, spec: AudioFrontendSpec | MicroFrontendSpec, facts: InputFacts | None = None
) -> np.ndarray:
    """Mono float32 waveform at ``spec.sample_rate``, cut or zero-padded at the end to the clip length, with
    ``spec.pad_ms`` of silence before and after; what was changed is counted in ``facts``."""
    if not path.is_file():
        raise SampleError("file not found")
    try:
        # SoundFile.read directly, not sf.read: a third less per-file overhead on one-second clips
        with sf.SoundFile(str(path)) as file:
            audio, rate = file.read(dtype="float32", always_2d=True), file.samplerate
    except (sf.LibsndfileError, RuntimeError, ValueError) as exc:
        raise SampleError(f"unreadable audio ({exc})") from None
    if audio.size == 0:
        raise SampleError("empty audio")
    # the mean over one channel is that channel, and costs ~35 us a clip
    mono = audio[:, 0] if audio.shape[1] == 1 else audio.mean(axis=1)
    if rate != spec.sample_rate:
        mono = soxr.resample(mono, rate, spec.sample_rate, quality="HQ").astype(np.float32)
    n, pad = spec.n_samples, spec.pad_samples
    if facts is not None:
        facts.record(len(audio) / rate, n, len(mono), rate, spec.sample_rate, audio.shape[1])
    clip = mono[:n] if len(mono) >= n else np.pad(mono, (0, n - len(mono)))
    return np.pad(clip, (pad, pad)) if pad else clip


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
        with _thread_pools().limit(limits=1, user_api="blas"):  # the same bits as ``transform``
            return self.features(decode_clip(path, self.spec)[None, :])[0]

    def transform(self, paths: Sequence[Path]) -> FrontendBatch:
        starts = list(range(0, len(paths), _SUB_BATCH)) or [0]
        # The pool splits the batch over the cores; BLAS threads on top would only compete for them (and spin).
        # One BLAS thread also for a single sub-batch: the sums' order, and so the last bits of the features,
        # must not depend on the batch size or on the thread count the process was given (Ray sets it to 1).
        with _thread_pools().limit(limits=1, user_api="blas"), ThreadPoolExecutor(min(_THREADS, len(starts))) as pool:
            parts = list(pool.map(lambda start: self._transform(paths[start : start + _SUB_BATCH]), starts))
        ok = np.concatenate([part.ok for part in parts])
        failures = {
            start + i: reason for start, part in zip(starts, parts, strict=True) for i, reason in part.failures.items()
        }
        facts = InputFacts()
        for part in parts:
            facts.merge(part.facts)
        if not ok.any():
            return FrontendBatch(np.zeros((0, *self.spec.input_shape), np.float32), ok, failures, facts)
        return FrontendBatch(np.concatenate([part.inputs for part in parts]), ok, failures, facts)

    def _transform(self, paths: Sequence[Path]) -> FrontendBatch:
        clips: list[np.ndarray] = []
        ok = np.zeros(len(paths), dtype=bool)
        failures: dict[int, str] = {}
        facts = InputFacts()
        for i, path in enumerate(paths):
            try:
                clips.append(decode_clip(path, self.spec, facts))
                ok[i] = True
            except SampleError as exc:
                failures[i] = str(exc)
        if not clips:
            return FrontendBatch(np.zeros((0, *self.spec.input_shape), np.float32), ok, failures, facts)
        return FrontendBatch(self.features(np.stack(clips)), ok, failures, facts)

    def features(self, clips: np.ndarray) -> np.ndarray:
        """``(batch, samples)`` waveforms to ``(batch, *spec.input_shape)`` model inputs."""
        s = self.spec
        if s.kind == "raw":
            return clips.astype(np.float32)
        frames = np.lib.stride_tricks.sliding_window_view(clips, s.win_length, axis=-1)[:, :: s.hop_length]
        spectrum = scipy.fft.rfft(frames * _window(s.window, s.win_length), axis=-1).astype(np.complex64)
        power = np.square(spectrum.real) + np.square(spectrum.imag)
        # one 2-D product: a stack of small ones costs a BLAS call (and its threads' wake-up) per clip
        mel = power.reshape(-1, power.shape[-1]) @ _mel_basis(s.sample_rate, s.win_length, s.n_mels, s.fmin, s.fmax)
        mel = mel.reshape(*power.shape[:-1], s.n_mels)
        # top_db=None: a clipping threshold would depend on the loudest clip of the batch.
        features = 10.0 * np.log10(np.maximum(mel, np.float32(1e-10)))
        if s.kind == "mfcc":
            features = (features.reshape(-1, s.n_mels) @ _dct_basis(s.n_mfcc, s.n_mels).T).reshape(
                *features.shape[:-1], s.n_mfcc
            )
        return np.ascontiguousarray(features[..., None], dtype=np.float32)
