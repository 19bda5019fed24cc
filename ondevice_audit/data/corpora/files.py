"""Listing media files in a corpus folder, and checking libsndfile can decode the formats found.

Audio is decoded by soundfile, i.e. libsndfile: no ffmpeg. MP3 (Common Voice) needs libsndfile >= 1.1.0 and
Opus (MSWC) >= 1.0.29; the soundfile wheels bundle a recent enough libsndfile, a system libsndfile may not be.
Without support every clip would fail later, one by one, so the import stops first with one line saying how
to fix it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import soundfile as sf

from ondevice_audit.data.interface import DataError

__all__ = ["AUDIO_SUFFIXES", "IMAGE_SUFFIXES", "Listing", "check_decoders", "list_files"]

AUDIO_SUFFIXES = frozenset({".wav", ".flac", ".mp3", ".opus", ".ogg", ".oga", ".aif", ".aiff"})
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})

# suffix -> (what libsndfile calls it, whether this libsndfile has it, oldest libsndfile that does)
_DECODERS = {
    ".mp3": ("MP3", lambda: "MP3" in sf.available_formats(), "1.1.0"),
    ".opus": ("Opus", lambda: "OGG" in sf.available_formats() and "OPUS" in sf.available_subtypes("OGG"), "1.0.29"),
}


def check_decoders(suffixes: Iterable[str]) -> None:
    """Raise one ``DataError`` naming the format and the fix when libsndfile cannot decode ``suffixes``."""
    for suffix in sorted(set(suffixes) & set(_DECODERS)):
        name, available, since = _DECODERS[suffix]
        if not available():
            raise DataError(
                f"the clips are {name} ({suffix}) but this libsndfile ({sf.__libsndfile_version__}) cannot decode "
                f"{name}; it needs libsndfile >= {since}: `pip install --upgrade soundfile` (its wheels bundle one) "
                f"or upgrade the system libsndfile soundfile uses"
            )


@dataclass
class Listing:
    files: list[str] = field(default_factory=list)
    """Media files, relative and ``/``-separated."""
    undecodable: list[str] = field(default_factory=list)
    """Media files whose names are not UTF-8, with the bad bytes as ``\\xff`` escapes: to be reported.

    Neither a UTF-8 manifest nor soundfile can hold such a name, so they cannot be imported.
    """
    ignored: int = 0
    """Files with other suffixes (README, CSVs, stray files)."""


def list_files(folder: Path, suffixes: frozenset[str], relative_to: Path) -> Listing:
    """Every file under ``folder`` with one of ``suffixes`` (any case), sorted; hidden files and folders skipped."""
    listing = Listing()
    for current, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(names):
            if name.startswith("."):
                continue
            if os.path.splitext(name)[1].lower() not in suffixes:
                listing.ignored += 1
                continue
            relative = Path(os.path.relpath(os.path.join(current, name), relative_to)).as_posix()
            try:
                relative.encode("utf-8")
            except UnicodeEncodeError:
                listing.undecodable.append(os.fsencode(relative).decode("utf-8", errors="backslashreplace"))
                continue
            listing.files.append(relative)
    return listing
