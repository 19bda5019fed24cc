"""Ogg/Opus files that are a function of their audio: libsndfile's encoder with a fixed stream serial number.

libsndfile draws each Ogg stream's serial number at random, so two encodings of the same samples differ in
every page header (the serial and the page checksum over it) though the Opus packets are the same. Generated
datasets are meant to be byte-identical when regenerated, so the serial is set to one the caller chooses and
each page's CRC recomputed (Ogg's CRC-32: polynomial 0x04C11DB7, MSB first, initial value 0, over the page
with its CRC field zeroed; RFC 3533).
"""

from __future__ import annotations

import io

import numpy as np
import soundfile as sf

from ondevice_audit.errors import PipelineError

__all__ = ["encode_opus", "ogg_crc"]

_HEADER = 27  # bytes before a page's segment table
_SERIAL = slice(14, 18)
_CRC = slice(22, 26)


def _crc_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        value = byte << 24
        for _ in range(8):
            value = ((value << 1) ^ 0x04C11DB7) if value & 0x80000000 else value << 1
        table.append(value & 0xFFFFFFFF)
    return tuple(table)


_TABLE = _crc_table()


def ogg_crc(page: bytes | bytearray | memoryview) -> int:
    """The CRC of one Ogg page whose CRC field holds zeros."""
    crc = 0
    for byte in page:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ _TABLE[(crc >> 24) ^ byte]
    return crc


def encode_opus(audio: np.ndarray, sample_rate: int, serial: int) -> bytes:
    """``audio`` (mono float) as an Ogg/Opus file whose every page carries stream serial ``serial`` (32 bits)."""
    buffer = io.BytesIO()
    sf.write(buffer, audio, sample_rate, format="OGG", subtype="OPUS")
    data = bytearray(buffer.getvalue())
    offset = 0
    while offset < len(data):
        if data[offset : offset + 4] != b"OggS" or offset + _HEADER > len(data):
            raise PipelineError(f"libsndfile wrote an Ogg stream without a page at byte {offset}")
        segments = data[offset + _HEADER - 1]
        end = offset + _HEADER + segments + sum(data[offset + _HEADER : offset + _HEADER + segments])
        page = memoryview(data)[offset:end]
        page[_SERIAL] = serial.to_bytes(4, "little")
        page[_CRC] = bytes(4)
        page[_CRC] = ogg_crc(page).to_bytes(4, "little")
        offset = end
    return bytes(data)
