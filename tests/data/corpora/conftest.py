"""Helpers that write tiny corpora in the exact formats they ship in (audio made with soundfile)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

_FORMATS = {
    ".wav": ("WAV", "PCM_16"),
    ".flac": ("FLAC", "PCM_16"),
    ".opus": ("OGG", "OPUS"),
    ".mp3": ("MP3", "MPEG_LAYER_III"),
}


def _write_audio(path: Path, rate: int = 16_000, seconds: float = 0.25) -> Path:
    """A short tone in the format the suffix names (Opus and MP3 through libsndfile, as the corpora ship)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(rate * seconds)) / rate
    fmt, subtype = _FORMATS[path.suffix.lower()]
    sf.write(path, (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), rate, format=fmt, subtype=subtype)
    return path


def _write_lines(path: Path, lines: Sequence[str | bytes], end: str = "\n") -> Path:
    """Text lines as UTF-8; a ``bytes`` line is written as is (to plant invalid UTF-8)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join((x if isinstance(x, bytes) else x.encode()) + end.encode() for x in lines))
    return path


@pytest.fixture
def write_audio() -> Callable[..., Path]:
    return _write_audio


@pytest.fixture
def write_lines() -> Callable[..., Path]:
    return _write_lines
