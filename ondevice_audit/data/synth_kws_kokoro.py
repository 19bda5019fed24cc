"""A keyword-spotting corpus spoken by Kokoro's neural voices, in the rooms always-on devices hear.

Speakers are balanced over gender x accent (US, GB). Each cell first takes Kokoro's own voices of that
gender and accent (in a seeded order), then *pseudo-speakers*: a mix ``w * a + (1 - w) * b`` of the style
vectors of two voices of the **same** gender and accent, ``w`` in [0.3, 0.7] (a mix is a new, stable voice).
Every speaker has a fixed speaking rate (0.85-1.15 x), pitch (-2 to +2 semitones) and *room*: a
reverberation time, a direct-to-reverberant ratio, a microphone gain and a background noise (white, pink,
brown, mains hum or four-talker babble) at a signal-to-noise ratio around which each clip varies. The noise
kinds are dealt out evenly within each gender x accent cell, so the kind of room is not confounded with the
group; everything else is drawn independently per speaker.

A clip is one word: Kokoro speaks it (rate jittered by +-5 % per clip), the pitch shift is made by
resampling (synthesize slower, play faster: no phase-vocoder artefacts), the silence is cut at -40 dB of the
peak, the word is reverberated, centred in exactly 1.0 s at 16 kHz and the noise is added. Clips are Ogg/Opus
(a tenth of the size of FLAC once noise is in), 16 kHz mono, each stream's serial number derived from its path
(``data/opus.py``: libsndfile would draw it at random).

The output is a function of the arguments and the pinned model: every random choice comes from numpy
generators seeded with ``seed`` and a speaker's or clip's own name (so a speaker is the same whichever others
are generated), and Kokoro runs on one thread per process. Speech is cached in the Kokoro cache: an
interrupted run, started again with the same arguments, skips every word already spoken (``out_dir`` holds
the settings of the run under way in ``.synth-kws.json``; it is removed once ``manifest.csv`` is written).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import zlib
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import soxr

from ondevice_audit.data.opus import encode_opus
from ondevice_audit.data.synth_kws import KEYWORDS, SAMPLE_RATE, UNKNOWN_LABEL, UNKNOWN_WORDS
from ondevice_audit.data.voices.kokoro import (
    INSTALL_HINT,
    KOKORO_RATE,
    MODEL_SHA256,
    KokoroAssets,
    KokoroSynthesizer,
    KokoroVoice,
    fetch_assets,
)
from ondevice_audit.errors import PipelineError, UsageError
from ondevice_audit.progress import NullProgress, Progress

__all__ = [
    "DEFAULT_NOISE",
    "MANIFEST_COLUMNS",
    "NOISES",
    "SNR_DB",
    "NoiseSettings",
    "generate_kokoro_kws",
    "plan_speakers",
]

MANIFEST_COLUMNS = ("path", "label", "gender", "accent", "voice", "speaker", "engine", "noise", "snr_db")
NOISES = ("white", "pink", "brown", "hum", "babble")
# The room noise a speaker's clips are heard in: 5 dB is a loud kitchen or a TV next to the device, 30 dB a quiet
# room. (0-20 dB, tried first, left a DS-CNN at 72 % validation accuracy: harsher than where people say commands.)
SNR_DB = (5.0, 30.0)
GENDERS = ("female", "male")
ACCENTS = ("us", "gb")
SPEED = (0.85, 1.15)
PITCH_SEMITONES = (-2.0, 2.0)
RT60_S = (0.15, 0.6)
DRR_DB = (3.0, 15.0)
LEVEL_DBFS = (-32.0, -20.0)
SNR_JITTER_DB = 3.0
MIX_WEIGHT = (0.3, 0.7)
_STATE_FILE = ".synth-kws.json"
_SPEECH_VERSION = 1  # bump when the dry-speech processing changes: it is part of the speech cache key
# Harvard sentences (IEEE 1969, public domain) without any keyword or unknown word, for the babble noise.
BABBLE_SENTENCES = (
    "Glue the sheet to the dark blue background.",
    "It's easy to tell the depth of a well.",
    "These days a chicken leg is a rare dish.",
    "Rice is often served in round bowls.",
    "The juice of lemons makes fine punch.",
    "The box was thrown beside the parked truck.",
    "The hogs were fed chopped corn and garbage.",
    "A large size in stockings is hard to sell.",
    "The boy was there when the sun rose.",
    "A rod is used to catch pink salmon.",
    "The source of the huge river is the clear spring.",
    "Kick the ball straight and follow through.",
)
BABBLE_SEGMENTS = 8
BABBLE_TALKERS = 4


@dataclass(frozen=True)
class Room:
    noise: str
    snr_db: float  # the speaker's centre; each clip is within +-SNR_JITTER_DB of it
    rt60_s: float
    drr_db: float
    level_dbfs: float
    mains_hz: int


@dataclass(frozen=True)
class Speaker:
    id: str
    gender: str
    accent: str
    lang: str
    mix: tuple[tuple[str, float], ...]
    speed: float
    pitch: float
    room: Room

    @property
    def voice(self) -> str:
        if len(self.mix) == 1:
            return self.mix[0][0]
        return "+".join(f"{name}*{weight:.2f}" for name, weight in self.mix)


@dataclass(frozen=True)
class Clip:
    speaker: Speaker
    word: str
    label: str
    speed: float
    snr_db: float

    @property
    def path(self) -> str:
        return f"clips/{self.label}/{self.speaker.id}_{self.word}.opus"


@dataclass(frozen=True)
class Utterance:
    """What Kokoro is asked to say: the cacheable, expensive part of a clip."""

    text: str
    mix: tuple[tuple[str, float], ...]
    speed: float
    pitch: float
    lang: str

    def key(self) -> str:
        fields = [MODEL_SHA256, _SPEECH_VERSION, self.text, self.mix, round(self.speed, 4), self.pitch, self.lang]
        return hashlib.sha256(json.dumps(fields).encode()).hexdigest()


@dataclass(frozen=True)
class NoiseSettings:
    """The background noises speakers' rooms may have and the range each room's SNR is drawn from."""

    kinds: tuple[str, ...] = NOISES
    snr_db: tuple[float, float] = SNR_DB

    def __post_init__(self) -> None:
        unknown = [kind for kind in self.kinds if kind not in NOISES]
        if not self.kinds or unknown or len(set(self.kinds)) != len(self.kinds):
            raise UsageError(f"--noise takes distinct kinds among {', '.join(NOISES)} (or none), got {self.kinds}")
        low, high = self.snr_db
        if not (np.isfinite([low, high]).all() and low <= high):
            raise UsageError(f"--snr-db needs two finite numbers LOW,HIGH with LOW <= HIGH, got {self.snr_db}")


DEFAULT_NOISE = NoiseSettings()


def plan_speakers(catalogue: Sequence[KokoroVoice], n: int, seed: int, noise: NoiseSettings | None) -> list[Speaker]:
    """``n`` speakers spread evenly over gender x accent: the cell's own voices first, then mixes within it."""
    if n < 1:
        raise UsageError(f"--speakers must be at least 1, got {n}")
    speakers = []
    cells = [(gender, accent) for accent in ACCENTS for gender in GENDERS]
    for index, (gender, accent) in enumerate(cells):
        count = n // len(cells) + (index < n % len(cells))
        voices = sorted((v for v in catalogue if v.gender == gender and v.accent == accent), key=lambda v: v.name)
        if not voices:
            raise PipelineError(f"Kokoro's catalogue has no {accent} {gender} voice")
        rng = np.random.default_rng([seed, zlib.crc32(f"{gender}/{accent}".encode())])
        order = [voices[i] for i in rng.permutation(len(voices))]
        mixes: list[tuple[tuple[str, float], ...]] = [((v.name, 1.0),) for v in order[:count]]
        while len(mixes) < count:
            if len(voices) < 2:
                raise PipelineError(f"only one {accent} {gender} voice: cannot mix pseudo-speakers")
            a, b = sorted(rng.choice(len(voices), size=2, replace=False))
            weight = round(float(rng.uniform(*MIX_WEIGHT)), 2)
            mix: tuple[tuple[str, float], ...] = ((voices[a].name, weight), (voices[b].name, round(1 - weight, 2)))
            if mix not in mixes:
                mixes.append(mix)
        prefix = f"{accent}_{gender[0]}"
        kinds = _noise_kinds(noise, seed, f"{gender}/{accent}", count)
        for number, (mix, kind) in enumerate(zip(mixes, kinds, strict=True)):
            speaker_id = mix[0][0] if len(mix) == 1 else f"{prefix}_mix{number - len(order[:count]):02d}"
            speakers.append(_speaker(speaker_id, gender, accent, order[0].lang, mix, seed, kind, noise))
    return speakers


def _speaker(
    speaker_id: str, gender: str, accent: str, lang: str, mix: tuple[tuple[str, float], ...], seed: int,
    noise_kind: str, noise: NoiseSettings | None,
) -> Speaker:  # fmt: skip
    rng = np.random.default_rng([seed, zlib.crc32(speaker_id.encode())])
    speed = round(float(rng.uniform(*SPEED)), 2)
    pitch = round(float(rng.uniform(*PITCH_SEMITONES)), 1)
    room = Room(
        noise=noise_kind,
        snr_db=round(float(rng.uniform(*noise.snr_db)), 1) if noise else float("inf"),
        rt60_s=round(float(rng.uniform(*RT60_S)), 2),
        drr_db=round(float(rng.uniform(*DRR_DB)), 1),
        level_dbfs=round(float(rng.uniform(*LEVEL_DBFS)), 1),
        mains_hz=int(rng.choice([50, 60])),
    )
    return Speaker(speaker_id, gender, accent, lang, mix, speed, pitch, room)


def _noise_kinds(noise: NoiseSettings | None, seed: int, cell: str, count: int) -> list[str]:
    """The cell's speakers' noise kinds: each kind equally often (to within one), in a seeded order, so no group
    hears more babble than another by chance. The first k do not depend on ``count``."""
    if noise is None:
        return ["none"] * count
    rng = np.random.default_rng([seed, zlib.crc32(f"{cell}/noise".encode())])
    kinds: list[str] = []
    while len(kinds) < count:
        kinds += [noise.kinds[i] for i in rng.permutation(len(noise.kinds))]
    return kinds[:count]


def plan_clips(speakers: Sequence[Speaker], unknown_words: int, seed: int) -> list[Clip]:
    if not 0 <= unknown_words <= len(UNKNOWN_WORDS):
        raise UsageError(f"--unknown-words must be between 0 and {len(UNKNOWN_WORDS)}, got {unknown_words}")
    clips = []
    for speaker in speakers:
        rng = np.random.default_rng([seed, zlib.crc32(f"{speaker.id}/words".encode())])
        picked = sorted(rng.choice(len(UNKNOWN_WORDS), size=unknown_words, replace=False))
        words = [(w, w) for w in KEYWORDS] + [(UNKNOWN_WORDS[i], UNKNOWN_LABEL) for i in picked]
        for word, label in words:
            jitter = np.random.default_rng([seed, zlib.crc32(f"{speaker.id}/{word}".encode())])
            speed = round(speaker.speed * float(jitter.uniform(0.95, 1.05)), 3)
            snr = speaker.room.snr_db
            if np.isfinite(snr):
                snr = round(snr + float(jitter.uniform(-SNR_JITTER_DB, SNR_JITTER_DB)), 1)
            clips.append(Clip(speaker, word, label, speed, snr))
    return clips


def generate_kokoro_kws(
    out_dir: Path,
    *,
    speakers: int = 160,
    unknown_words: int = 4,
    seed: int = 0,
    noise: NoiseSettings | None = DEFAULT_NOISE,
    workers: int | None = None,
    overwrite: bool = False,
    assets_dir: Path | None = None,
    progress: Progress | None = None,
) -> pd.DataFrame:
    """Write ``clips/<label>/*.opus``, ``speakers.json`` and ``manifest.csv`` into ``out_dir``; returns the manifest.

    ``noise`` None: rooms without background noise. ``workers`` Kokoro processes run at once (default: the CPU
    count); the output does not depend on it. A run stopped part-way resumes when started again with the same
    arguments; another dataset in ``out_dir`` is only replaced with ``overwrite``.
    """
    progress = progress or NullProgress()
    if any(importlib.util.find_spec(module) is None for module in ("kokoro_onnx", "onnxruntime")):
        raise UsageError(INSTALL_HINT)
    out_dir = Path(out_dir)
    given = {"engine": "kokoro", "speakers": speakers, "unknown_words": unknown_words, "seed": seed,
             "noise": asdict(noise) if noise else None}  # fmt: skip
    settings = json.loads(json.dumps(given))  # as it reads back from the state file
    assets = fetch_assets(assets_dir)
    plan = plan_speakers(assets.catalogue, speakers, seed, noise)
    clips = plan_clips(plan, unknown_words, seed)
    _prepare_out_dir(out_dir, settings, overwrite)
    speech_dir = Path(assets.model).parent / "speech"
    babble = _babble_utterances(assets.catalogue, seed) if any(s.room.noise == "babble" for s in plan) else []
    _speak_all(assets, speech_dir, [_utterance(clip) for clip in clips] + babble, workers, progress)
    bank = _babble_bank([_load_speech(speech_dir, u) for u in babble], seed) if babble else None
    for label in dict.fromkeys(clip.label for clip in clips):
        (out_dir / "clips" / label).mkdir(parents=True, exist_ok=True)
    with progress.task("Placing words in rooms", total=len(clips)) as advance:
        for clip in clips:
            audio = render(clip, _load_speech(speech_dir, _utterance(clip)), bank, seed)
            (out_dir / clip.path).write_bytes(encode_opus(audio, SAMPLE_RATE, serial=zlib.crc32(clip.path.encode())))
            advance(1)
    manifest = pd.DataFrame(
        [(c.path, c.label, c.speaker.gender, c.speaker.accent, c.speaker.voice, c.speaker.id, "kokoro",
          c.speaker.room.noise, c.snr_db) for c in clips],
        columns=list(MANIFEST_COLUMNS),
    )  # fmt: skip
    (out_dir / "speakers.json").write_text(json.dumps([asdict(s) for s in plan], indent=1) + "\n")
    manifest.to_csv(out_dir / "manifest.csv", index=False, lineterminator="\n")
    (out_dir / _STATE_FILE).unlink()
    return manifest


def _prepare_out_dir(out_dir: Path, settings: dict[str, Any], overwrite: bool) -> None:
    """Refuse to write over a dataset, unless told to or it is an unfinished run of these same settings."""
    manifest_path, clips_dir, state = out_dir / "manifest.csv", out_dir / "clips", out_dir / _STATE_FILE
    if manifest_path.exists() or clips_dir.exists():
        if not (overwrite or (not manifest_path.exists() and _read_state(state) == settings)):
            raise UsageError(
                f"{out_dir} already holds a dataset (manifest.csv or clips/) that is not an unfinished run of these "
                "settings; use --overwrite to replace it"
            )
        manifest_path.unlink(missing_ok=True)
        shutil.rmtree(clips_dir, ignore_errors=True)  # clips are rendered again in seconds from the speech cache
    out_dir.mkdir(parents=True, exist_ok=True)
    state.write_text(json.dumps(settings, indent=1) + "\n")


def _read_state(state: Path) -> Any:
    try:
        return json.loads(state.read_text())
    except (OSError, ValueError):
        return None


def _speak_all(
    assets: KokoroAssets, speech_dir: Path, utterances: Sequence[Utterance], workers: int | None, progress: Progress
) -> None:
    """Every utterance not in the speech cache yet, spoken by ``workers`` Kokoro processes."""
    unique = list(dict.fromkeys(utterances))  # the babble may repeat a sentence
    todo = [u for u in unique if not _speech_path(speech_dir, u).exists()]
    if len(todo) < len(unique):
        progress.note(f"{len(unique) - len(todo)} of {len(unique)} utterances already spoken (speech cache)")
    if not todo:
        return
    workers = min(workers or os.cpu_count() or 1, len(todo))
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=_start_worker,
                             initargs=(assets, speech_dir)) as pool:  # fmt: skip
        with progress.task("Speaking words with Kokoro", total=len(todo)) as advance:
            for _ in pool.map(_speak_cached, todo):
                advance(1)


def _utterance(clip: Clip) -> Utterance:
    # Pitch by resampling: speak slower by the pitch ratio, then play faster by it (duration back to `speed`).
    return Utterance(clip.word, clip.speaker.mix, clip.speed, clip.speaker.pitch, clip.speaker.lang)


def _babble_utterances(catalogue: Sequence[KokoroVoice], seed: int) -> list[Utterance]:
    """Talkers balanced over gender and accent, so the babble favours no group."""
    rng = np.random.default_rng([seed, zlib.crc32(b"babble")])
    utterances = []
    for _ in range(BABBLE_SEGMENTS):
        for talker in range(BABBLE_TALKERS):
            gender, accent = GENDERS[talker % 2], ACCENTS[(talker // 2) % 2]
            voices = sorted((v for v in catalogue if v.gender == gender and v.accent == accent), key=lambda v: v.name)
            voice = voices[int(rng.integers(len(voices)))]
            text = BABBLE_SENTENCES[int(rng.integers(len(BABBLE_SENTENCES)))]
            utterances.append(Utterance(text, ((voice.name, 1.0),), 1.0, 0.0, voice.lang))
    return utterances


_WORKER: dict[str, object] = {}


def _start_worker(assets: KokoroAssets, speech_dir: Path) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    _WORKER["synth"] = KokoroSynthesizer(assets)
    _WORKER["dir"] = speech_dir


def _speak_cached(utterance: Utterance) -> None:
    speech_dir = _WORKER["dir"]
    assert isinstance(speech_dir, Path)
    path = _speech_path(speech_dir, utterance)
    if path.exists():
        return
    synth = _WORKER["synth"]
    assert isinstance(synth, KokoroSynthesizer)
    audio = dry_speech(synth, utterance)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npy")
    np.save(tmp, audio)
    tmp.replace(path)


def _speech_path(speech_dir: Path, utterance: Utterance) -> Path:
    key = utterance.key()
    return speech_dir / key[:2] / f"{key}.npy"


def _load_speech(speech_dir: Path, utterance: Utterance) -> np.ndarray:
    return np.load(_speech_path(speech_dir, utterance))


def dry_speech(synth: KokoroSynthesizer, utterance: Utterance) -> np.ndarray:
    """The utterance at 16 kHz, pitch-shifted, silence cut at -40 dB of the peak; float32.

    A word longer than a second (slow speakers, long words) is spoken up to three times 10 % faster.
    """
    ratio = 2.0 ** (utterance.pitch / 12.0)
    speed = utterance.speed
    for _ in range(4):
        raw = synth.speak(utterance.text, synth.style(utterance.mix), speed / ratio, utterance.lang)
        audio = soxr.resample(raw, KOKORO_RATE * ratio, SAMPLE_RATE, quality="HQ").astype(np.float32)
        level = np.abs(audio)
        voiced = np.flatnonzero(level > level.max() / 100)
        if voiced.size == 0:
            raise PipelineError(f"Kokoro produced silence for {utterance.text!r} ({utterance.mix})")
        audio = audio[voiced[0] : voiced[-1] + 1]
        if audio.size <= SAMPLE_RATE * 0.95 or len(utterance.text.split()) > 1:
            return audio
        speed *= 1.1
    raise PipelineError(f"{utterance.text!r} by {utterance.mix} stays longer than 1 s even spoken faster")


def _babble_bank(sentences: Sequence[np.ndarray], seed: int) -> np.ndarray:
    """Segments of four talkers at once, each talker's speech at the same level, joined end to end."""
    rng = np.random.default_rng([seed, zlib.crc32(b"babble-bank")])
    segments = []
    for start in range(0, len(sentences), BABBLE_TALKERS):
        talkers = sentences[start : start + BABBLE_TALKERS]
        length = max(len(t) for t in talkers)
        segment = np.zeros(length, dtype=np.float64)
        for talker in talkers:
            offset = int(rng.integers(0, length - len(talker) + 1))
            segment[offset : offset + len(talker)] += talker / (np.sqrt(np.mean(talker**2)) + 1e-12)
        segments.append(segment)
    return np.concatenate(segments)


def render(clip: Clip, dry: np.ndarray, babble: np.ndarray | None, seed: int) -> np.ndarray:
    """The clip as heard: reverberated in the speaker's room, centred in one second, noise added; float32."""
    room = clip.speaker.room
    rng = np.random.default_rng([seed, zlib.crc32(f"{clip.speaker.id}/{clip.word}/room".encode())])
    wet = _reverberate(dry.astype(np.float64), room, rng)
    active = dry.astype(np.float64)
    speech_rms = np.sqrt(np.mean(active**2)) + 1e-12
    gain = 10.0 ** (room.level_dbfs / 20.0) / speech_rms
    out = np.zeros(SAMPLE_RATE, dtype=np.float64)
    start = (SAMPLE_RATE - dry.size) // 2
    placed = wet[: SAMPLE_RATE - start]
    out[start : start + placed.size] = placed * gain
    if room.noise != "none":
        noise = _noise(room, rng, babble)
        noise_rms = 10.0 ** ((room.level_dbfs - clip.snr_db) / 20.0)
        out += noise / (np.sqrt(np.mean(noise**2)) + 1e-12) * noise_rms
    return np.clip(out, -1.0, 32767 / 32768).astype(np.float32)


def _reverberate(dry: np.ndarray, room: Room, rng: np.random.Generator) -> np.ndarray:
    """An exponentially decaying noise tail (the late reverberation) behind the direct sound."""
    from scipy.signal import fftconvolve

    length = int(room.rt60_s * SAMPLE_RATE)
    t = np.arange(length) / SAMPLE_RATE
    tail = rng.standard_normal(length) * np.exp(-6.908 * t / room.rt60_s)
    tail[0] = 0.0
    tail *= np.sqrt(10.0 ** (-room.drr_db / 10.0) / (np.sum(tail**2) + 1e-12))
    tail[0] = 1.0
    return fftconvolve(dry, tail)


def _noise(room: Room, rng: np.random.Generator, babble: np.ndarray | None) -> np.ndarray:
    n = SAMPLE_RATE
    if room.noise == "babble":
        assert babble is not None
        start = int(rng.integers(0, babble.size - n))
        return babble[start : start + n]
    if room.noise == "hum":
        t = np.arange(n) / SAMPLE_RATE
        harmonics = sum(np.sin(2 * np.pi * room.mains_hz * k * t + rng.uniform(0, 2 * np.pi)) / k for k in range(1, 8))
        return harmonics + 0.05 * rng.standard_normal(n)
    white = rng.standard_normal(n)
    if room.noise == "white":
        return white
    exponent = {"pink": 0.5, "brown": 1.0}[room.noise]
    spectrum = np.fft.rfft(white)
    freqs = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
    spectrum[1:] /= (freqs[1:] / freqs[1]) ** exponent
    spectrum[0] = 0.0
    return np.fft.irfft(spectrum, n)
