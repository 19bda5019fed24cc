"""Ogg/Opus with a fixed serial number: the same bytes every time, the same audio as libsndfile's own file."""

from __future__ import annotations

import io

import numpy as np
import soundfile as sf

from ondevice_audit.data.opus import encode_opus, ogg_crc


def _pages(data: bytes) -> list[bytes]:
    pages, offset = [], 0
    while offset < len(data):
        segments = data[offset + 26]
        end = offset + 27 + segments + sum(data[offset + 27 : offset + 27 + segments])
        pages.append(data[offset:end])
        offset = end
    return pages


def _audio() -> np.ndarray:
    t = np.arange(16_000) / 16_000
    return (0.2 * np.sin(2 * np.pi * 440 * t) + 0.01 * np.random.default_rng(0).standard_normal(t.size)).astype(
        np.float32
    )


def test_the_crc_is_libogg_s() -> None:
    buffer = io.BytesIO()
    sf.write(buffer, _audio(), 16_000, format="OGG", subtype="OPUS")
    pages = _pages(buffer.getvalue())
    assert len(pages) >= 2
    for page in pages:  # libogg's own checksums, checked by recomputing them
        assert ogg_crc(page[:22] + bytes(4) + page[26:]) == int.from_bytes(page[22:26], "little")


def test_encoding_is_byte_identical_and_decodes_to_libsndfile_s_audio() -> None:
    audio = _audio()
    first, second = encode_opus(audio, 16_000, serial=1234), encode_opus(audio, 16_000, serial=1234)
    assert first == second
    assert {int.from_bytes(page[14:18], "little") for page in _pages(first)} == {1234}
    plain = io.BytesIO()
    sf.write(plain, audio, 16_000, format="OGG", subtype="OPUS")
    plain.seek(0)
    expected, _ = sf.read(plain, dtype="float32")
    decoded, rate = sf.read(io.BytesIO(first), dtype="float32")
    assert rate == 16_000
    np.testing.assert_array_equal(decoded, expected)
