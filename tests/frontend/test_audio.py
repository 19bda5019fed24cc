"""Audio front-end: batched features equal a per-clip librosa computation; decoding edge cases."""

from __future__ import annotations

import librosa
import numpy as np
import pytest
import soundfile as sf

from ondevice_audit.frontend import AudioFrontendSpec, FrontendError, build_frontend


def _tone(freq, seconds, rate, channels=1):
    t = np.arange(int(seconds * rate)) / rate
    wave = (0.4 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return np.stack([wave] * channels, axis=1) if channels > 1 else wave


@pytest.mark.parametrize("kind", ["mfcc", "logmel"])
@pytest.mark.parametrize("window", ["hann", "hamming"])
def test_batched_features_match_per_clip_librosa(tmp_path, kind, window):
    spec = AudioFrontendSpec(kind=kind, window=window, n_mels=32, n_mfcc=13, frame_length_ms=30, frame_step=0.5)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(5):
        path = tmp_path / f"{i}.wav"
        sf.write(path, (0.2 * rng.standard_normal(16000)).astype(np.float32), 16000, subtype="FLOAT")
        paths.append(path)
    batch = build_frontend(spec).transform(paths)
    assert batch.inputs.shape == (5, *spec.input_shape) and batch.ok.all()
    for row, path in zip(batch.inputs, paths, strict=True):
        clip, _ = sf.read(path, dtype="float32")
        mel = librosa.feature.melspectrogram(y=clip, sr=16000, n_fft=480, hop_length=240, win_length=480,
                                             window=window, center=False, n_mels=32, fmin=20.0)  # fmt: skip
        reference = librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=None)
        if kind == "mfcc":
            reference = librosa.feature.mfcc(S=reference, n_mfcc=13)
        np.testing.assert_allclose(row[..., 0], reference.T, atol=1e-3, rtol=1e-4)


def test_resampling_stereo_padding_and_trimming(tmp_path):
    spec = AudioFrontendSpec(kind="logmel", n_mels=40)
    sf.write(tmp_path / "8k.wav", _tone(1000, 1.0, 8000), 8000)
    sf.write(tmp_path / "16k.wav", _tone(1000, 1.0, 16000), 16000)
    sf.write(tmp_path / "stereo_short.wav", _tone(1000, 0.5, 16000, channels=2), 16000)
    sf.write(tmp_path / "long.flac", _tone(1000, 2.5, 16000), 16000)
    batch = build_frontend(spec).transform(
        [tmp_path / n for n in ("8k.wav", "16k.wav", "stereo_short.wav", "long.flac")]
    )
    assert batch.ok.all()
    strongest = batch.inputs[..., 0].mean(axis=1).argmax(axis=1)
    assert len(set(strongest.tolist())) == 1  # the 1 kHz tone lands in the same mel band after resampling
    # the half-second clip is zero-padded: its last frames are silent, the full clips' are not
    assert batch.inputs[2, -5:].max() <= -99.0 < -40.0 < batch.inputs[1, -5:].max()


def test_bad_files_become_failures_not_errors(tmp_path):
    (tmp_path / "garbage.wav").write_bytes(b"RIFF1234WAVEfmt nonsense")
    (tmp_path / "empty.wav").write_bytes(b"")
    sf.write(tmp_path / "zero_length.wav", np.zeros(0, np.float32), 16000)
    sf.write(tmp_path / "good.wav", _tone(440, 1.0, 16000), 16000)
    names = ["garbage.wav", "missing.wav", "empty.wav", "zero_length.wav", "good.wav"]
    batch = build_frontend(AudioFrontendSpec()).transform([tmp_path / n for n in names])
    assert batch.ok.tolist() == [False, False, False, False, True]
    assert batch.failures[1] == "file not found"
    assert batch.failures[3] == "empty audio"
    assert batch.failures[0].startswith("unreadable audio")
    assert batch.inputs.shape == (1, 49, 10, 1)


def test_settings_are_checked():
    with pytest.raises(FrontendError, match="n_mfcc"):
        AudioFrontendSpec(n_mfcc=50, n_mels=40)
    with pytest.raises(FrontendError, match="frame step"):
        AudioFrontendSpec(frame_step=1.5)
    with pytest.raises(FrontendError, match="unknown window"):
        AudioFrontendSpec(window="kaiser")  # type: ignore[arg-type]


def test_input_shapes():
    assert AudioFrontendSpec().input_shape == (49, 10, 1)
    assert AudioFrontendSpec(kind="logmel", sample_rate=8000, n_mels=32).input_shape == (49, 32, 1)
    assert AudioFrontendSpec(kind="raw", sample_rate=8000).input_shape == (8000,)
