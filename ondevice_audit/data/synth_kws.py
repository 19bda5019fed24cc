"""A synthetic keyword-spotting dataset spoken by espeak-ng, to exercise the tool without real recordings.

A *speaker* is one espeak-ng accent voice (``en-gb-scotland``), one voice variant (``f2``; its family gives
the ``gender`` group) and one prosody setting (speed and pitch drawn from ``seed``). Every speaker says all
ten keywords and a few other words labelled ``_unknown_``. Clips are 16 kHz mono 16-bit FLAC, exactly 1.0 s,
with the word **centred** (espeak-ng's lead-in and trailing decay below -40 dB of the peak are cut first),
where Speech-Commands-style models expect it.

The output is a pure function of the arguments: prosody and word choices come from ``numpy`` generators
seeded with ``seed`` and the speaker's own name (so a speaker is the same whichever other speakers are
generated), and espeak-ng, soxr and the FLAC encoder are deterministic.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import zlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
import soxr

from ondevice_audit.errors import PipelineError, UsageError
from ondevice_audit.progress import NullProgress, Progress

__all__ = [
    "ACCENTS",
    "ESPEAK_MISSING",
    "KEYWORDS",
    "MANIFEST_COLUMNS",
    "SAMPLE_RATE",
    "UNKNOWN_LABEL",
    "UNKNOWN_WORDS",
    "VARIANTS",
    "generate_synth_kws",
]

SAMPLE_RATE = 16_000
KEYWORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
UNKNOWN_LABEL = "_unknown_"
# Google Speech Commands' auxiliary words that fit in one second at the slowest speed.
UNKNOWN_WORDS = (
    "bed", "bird", "cat", "dog", "happy", "house", "marvin", "sheila", "tree", "wow",
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
)  # fmt: skip
# espeak-ng's own English voices; the mbrola ones need extra packages.
ACCENTS = (
    "en-us", "en-us-nyc", "en-gb", "en-gb-x-rp",
    "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-029",
)  # fmt: skip
# Variant -> gender group, balanced 4/4; f5 (breathy) and m4-m6, m8 (odd timbres) are left out on purpose.
VARIANTS = {
    "f1": "female", "f2": "female", "f3": "female", "f4": "female",
    "m1": "male", "m2": "male", "m3": "male", "m7": "male",
}  # fmt: skip
SPEED_WPM = (140, 200)  # espeak-ng's default is 175; at 140 the longest word stays well under 1 s
PITCH = (25, 75)  # espeak-ng's range is 0-99, default 50
MANIFEST_COLUMNS = ("path", "label", "gender", "voice", "accent", "speaker")
ESPEAK_MISSING = "espeak-ng not found on PATH; install it with `apt-get install espeak-ng`"


@dataclass(frozen=True)
class _Speaker:
    accent: str
    variant: str
    speed: int
    pitch: int

    @property
    def voice(self) -> str:
        return f"{self.accent}+{self.variant}"

    @property
    def id(self) -> str:
        return f"{self.accent}_{self.variant}_s{self.speed}_p{self.pitch}"


@dataclass(frozen=True)
class _Clip:
    speaker: _Speaker
    word: str
    label: str

    @property
    def path(self) -> str:
        return f"clips/{self.label}/{self.speaker.id}_{self.word}.flac"


def generate_synth_kws(
    out_dir: Path,
    *,
    seed: int = 0,
    prosody_variants: int = 2,
    unknown_words: int = 2,
    accents: Sequence[str] = ACCENTS,
    variants: Sequence[str] = tuple(VARIANTS),
    workers: int | None = None,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> pd.DataFrame:
    """Write ``clips/<label>/*.flac`` and ``manifest.csv`` into ``out_dir``; returns the manifest.

    ``len(accents) * len(variants) * prosody_variants`` speakers each say every keyword and
    ``unknown_words`` distinct words from ``UNKNOWN_WORDS``. ``workers`` espeak-ng processes run at once
    (default: CPU count, at most 4); the output does not depend on it.
    """
    progress = progress or NullProgress()
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise UsageError(ESPEAK_MISSING)
    if prosody_variants < 1:
        raise UsageError(f"prosody_variants must be at least 1, got {prosody_variants}")
    if not 0 <= unknown_words <= len(UNKNOWN_WORDS):
        raise UsageError(f"unknown_words must be between 0 and {len(UNKNOWN_WORDS)}, got {unknown_words}")
    _check_voices(exe, accents, variants)
    out_dir = Path(out_dir)
    manifest_path, clips_dir = out_dir / "manifest.csv", out_dir / "clips"
    if manifest_path.exists() or clips_dir.exists():
        if not overwrite:
            raise UsageError(f"{out_dir} already holds a dataset (manifest.csv, clips/); use --overwrite")
        manifest_path.unlink(missing_ok=True)
        shutil.rmtree(clips_dir, ignore_errors=True)

    clips = [
        clip
        for accent in accents
        for variant in variants
        for speaker in _speakers(seed, accent, variant, prosody_variants)
        for clip in _clips(seed, speaker, unknown_words)
    ]
    for label in dict.fromkeys(clip.label for clip in clips):
        (clips_dir / label).mkdir(parents=True, exist_ok=True)

    def synthesize(clip: _Clip) -> None:
        audio = _synthesize(exe, clip.speaker, clip.word)
        sf.write(out_dir / clip.path, audio, SAMPLE_RATE, format="FLAC", subtype="PCM_16")

    pool = ThreadPoolExecutor(workers or min(4, os.cpu_count() or 1))
    try:
        with progress.task("Synthesizing clips", total=len(clips)) as advance:
            for _ in pool.map(synthesize, clips):
                advance(1)
    finally:
        pool.shutdown(cancel_futures=True)  # on a failure, do not synthesize the rest first

    rows = [
        (c.path, c.label, VARIANTS[c.speaker.variant], c.speaker.voice, c.speaker.accent, c.speaker.id) for c in clips
    ]
    manifest = pd.DataFrame(rows, columns=list(MANIFEST_COLUMNS))
    manifest.to_csv(manifest_path, index=False, lineterminator="\n")
    return manifest


def _check_voices(exe: str, accents: Sequence[str], variants: Sequence[str]) -> None:
    """espeak-ng silently falls back to its default voice for unknown names, which would mislabel clips."""
    if not accents or not variants:
        raise UsageError("at least one accent and one voice variant are needed")
    bad_variants = [v for v in variants if v not in VARIANTS]
    if bad_variants:
        raise UsageError(f"no voice variant {', '.join(bad_variants)}; choose from {', '.join(VARIANTS)}")
    listing = _run(exe, ["--voices"]).decode().splitlines()[1:]
    missing = sorted(set(accents) - {line.split()[1] for line in listing if line.strip()})
    if missing:
        raise UsageError(f"espeak-ng has no voice {', '.join(missing)}; see `espeak-ng --voices=en`")


def _speakers(seed: int, accent: str, variant: str, n: int) -> list[_Speaker]:
    """``n`` distinct prosody settings; the first k do not depend on n, so small sets nest in large ones."""
    rng = np.random.default_rng([seed, zlib.crc32(f"{accent}+{variant}".encode())])
    settings: list[tuple[int, int]] = []
    while len(settings) < n:
        speed = int(rng.integers(SPEED_WPM[0], SPEED_WPM[1] + 1))
        pitch = int(rng.integers(PITCH[0], PITCH[1] + 1))
        if (speed, pitch) not in settings:
            settings.append((speed, pitch))
    return [_Speaker(accent, variant, speed, pitch) for speed, pitch in settings]


def _clips(seed: int, speaker: _Speaker, unknown_words: int) -> list[_Clip]:
    rng = np.random.default_rng([seed, zlib.crc32(speaker.id.encode())])
    picked = sorted(rng.choice(len(UNKNOWN_WORDS), size=unknown_words, replace=False))
    keywords = [_Clip(speaker, word, word) for word in KEYWORDS]
    return keywords + [_Clip(speaker, UNKNOWN_WORDS[i], UNKNOWN_LABEL) for i in picked]


def _synthesize(exe: str, speaker: _Speaker, word: str) -> np.ndarray:
    """One word as exactly one second of 16 kHz int16 audio, the word centred."""
    args = ["-v", speaker.voice, "-s", str(speaker.speed), "-p", str(speaker.pitch), "--stdout", word]
    raw, rate = sf.read(io.BytesIO(_run(exe, args)), dtype="int16")
    # Cut at -40 dB below the peak: some voices end nasals with a long, near-silent decay.
    level = np.abs(raw.astype(np.int32))
    voiced = np.flatnonzero(level > level.max() // 100)
    if voiced.size == 0:
        raise PipelineError(f"espeak-ng produced silence for {word!r} with voice {speaker.voice}")
    speech = soxr.resample(raw[voiced[0] : voiced[-1] + 1], rate, SAMPLE_RATE, quality="HQ")
    if speech.size > SAMPLE_RATE:
        raise PipelineError(f"{word!r} by {speaker.voice} at {speaker.speed} wpm is longer than 1 s")
    out = np.zeros(SAMPLE_RATE, dtype=np.int16)
    start = (SAMPLE_RATE - speech.size) // 2
    out[start : start + speech.size] = speech
    return out


def _run(exe: str, args: list[str]) -> bytes:
    result = subprocess.run([exe, *args], capture_output=True, check=False)
    if result.returncode != 0:
        lines = result.stderr.decode(errors="replace").strip().splitlines()
        raise PipelineError(f"espeak-ng {' '.join(args)} failed: {lines[-1] if lines else result.returncode}")
    return result.stdout
