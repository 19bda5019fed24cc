"""The espeak-ng keyword dataset generator, and the copy of its output bundled in ``datasets/synth-kws``."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from ondevice_audit.data.synth_kws import KEYWORDS, UNKNOWN_LABEL, UNKNOWN_WORDS, generate_synth_kws
from ondevice_audit.errors import ExitCode, UsageError

BUNDLED = Path(__file__).resolve().parents[2] / "datasets" / "synth-kws"
COLUMNS = ["path", "label", "gender", "voice", "accent", "speaker"]
TINY = {"accents": ("en-us", "en-gb-scotland"), "variants": ("f1", "m1"), "prosody_variants": 1, "unknown_words": 2}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "kws"
    generate_synth_kws(out, seed=0, **TINY)
    return out


def _audio(root: Path, manifest: pd.DataFrame) -> dict[str, np.ndarray]:
    return {p: sf.read(root / p, dtype="int16")[0] for p in manifest["path"]}


def test_manifest_lists_every_keyword_and_unknown_words_per_speaker(tiny: Path) -> None:
    manifest = pd.read_csv(tiny / "manifest.csv")
    assert list(manifest.columns) == COLUMNS
    assert len(manifest) == 4 * (len(KEYWORDS) + 2)
    assert set(manifest["accent"]) == {"en-us", "en-gb-scotland"}
    assert set(manifest["voice"]) == {"en-us+f1", "en-us+m1", "en-gb-scotland+f1", "en-gb-scotland+m1"}
    variant = manifest["voice"].str.split("+").str[1]
    assert (manifest["voice"].str.split("+").str[0] == manifest["accent"]).all()
    assert (manifest["gender"] == variant.map({"f1": "female", "m1": "male"})).all()
    genders = manifest.drop_duplicates("speaker")["gender"]
    assert genders.value_counts().to_dict() == {"female": 2, "male": 2}
    for speaker, rows in manifest.groupby("speaker"):
        assert speaker.startswith(rows["voice"].iloc[0].replace("+", "_") + "_s")
        assert sorted(rows.loc[rows["label"] != UNKNOWN_LABEL, "label"]) == sorted(KEYWORDS)
        unknown = rows.loc[rows["label"] == UNKNOWN_LABEL, "path"].str.extract(r"_([a-z]+)\.flac$")[0]
        assert len(set(unknown)) == 2 and set(unknown) <= set(UNKNOWN_WORDS)
    for row in manifest.itertuples():
        assert row.path.startswith(f"clips/{row.label}/{row.speaker}_") and row.path.endswith(".flac")


def test_clips_are_one_second_16k_mono_speech_centred(tiny: Path) -> None:
    manifest = pd.read_csv(tiny / "manifest.csv")
    for path in manifest["path"]:
        info = sf.info(tiny / path)
        assert (info.format, info.subtype, info.samplerate, info.channels, info.frames) == (
            "FLAC",
            "PCM_16",
            16_000,
            1,
            16_000,
        )
        audio = sf.read(tiny / path, dtype="float32")[0]
        assert np.sqrt(np.mean(audio**2)) > 0.01, path
        word = np.flatnonzero(audio)  # the padding is exact digital silence
        lead, tail = word[0], len(audio) - 1 - word[-1]
        assert abs(lead - tail) <= 1 and lead > 0, (path, lead, tail)
        assert 0.15 < (word[-1] - word[0]) / 16_000 < 0.9, path  # a word, not a click or the whole second


def test_same_arguments_give_identical_dataset(tiny: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    generate_synth_kws(again, seed=0, workers=1, **TINY)
    assert (again / "manifest.csv").read_bytes() == (tiny / "manifest.csv").read_bytes()
    manifest = pd.read_csv(tiny / "manifest.csv")
    first, second = _audio(tiny, manifest), _audio(again, manifest)
    for path in manifest["path"]:
        np.testing.assert_array_equal(first[path], second[path])


def test_speakers_sound_different(tiny: Path) -> None:
    manifest = pd.read_csv(tiny / "manifest.csv")
    yes = manifest[manifest["label"] == "yes"]
    clips = _audio(tiny, yes)
    assert len(clips) == 4
    for a, b in itertools.combinations(clips.values(), 2):
        assert not np.array_equal(a, b)
        assert abs(np.corrcoef(a.astype(float), b.astype(float))[0, 1]) < 0.9


def test_other_seed_changes_prosody_not_layout(tiny: Path, tmp_path: Path) -> None:
    other = generate_synth_kws(tmp_path / "seed1", seed=1, **TINY)
    manifest = pd.read_csv(tiny / "manifest.csv")
    assert set(other["speaker"]).isdisjoint(manifest["speaker"])
    assert sorted(other["voice"]) == sorted(manifest["voice"])
    assert (other["label"] != UNKNOWN_LABEL).sum() == (manifest["label"] != UNKNOWN_LABEL).sum()


def test_missing_espeak_is_a_usage_error_saying_how_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    with pytest.raises(UsageError) as error:
        generate_synth_kws(tmp_path / "out", **TINY)
    assert str(error.value) == "espeak-ng not found on PATH; install it with `apt-get install espeak-ng`"
    assert error.value.exit_code == ExitCode.USAGE == 2
    assert not (tmp_path / "out").exists()


def test_unknown_accent_is_rejected_instead_of_falling_back(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"^espeak-ng has no voice en-xx; see `espeak-ng --voices=en`$"):
        generate_synth_kws(tmp_path, **{**TINY, "accents": ("en-us", "en-xx")})


def test_existing_dataset_needs_overwrite(tiny: Path, tmp_path: Path) -> None:
    out = tmp_path / "kws"
    small = {**TINY, "accents": ("en-us",), "variants": ("m1",), "unknown_words": 0}
    generate_synth_kws(out, **small)
    with pytest.raises(UsageError, match=r"already holds a dataset .*use --overwrite$"):
        generate_synth_kws(out, **small)
    stale = out / "clips" / "yes" / "stale.flac"
    stale.write_bytes(b"")
    manifest = generate_synth_kws(out, overwrite=True, **small)
    assert not stale.exists()
    assert len(manifest) == len(KEYWORDS)
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*.flac")) == sorted(manifest["path"])


def test_bundled_dataset_is_complete_balanced_and_small(tiny: Path) -> None:
    manifest = pd.read_csv(BUNDLED / "manifest.csv")
    assert list(manifest.columns) == COLUMNS
    assert len(manifest) >= 900
    for path in manifest["path"]:
        info = sf.info(BUNDLED / path)
        assert (info.samplerate, info.channels, info.frames) == (16_000, 1, 16_000), path
    speakers = manifest.drop_duplicates("speaker")
    assert len(speakers) >= 60
    assert speakers["gender"].value_counts().to_dict() == {"female": len(speakers) // 2, "male": len(speakers) // 2}
    assert set(manifest["label"]) == {*KEYWORDS, UNKNOWN_LABEL}
    assert manifest.groupby("speaker")["label"].apply(lambda labels: set(KEYWORDS) <= set(labels)).all()
    assert manifest["accent"].nunique() >= 6
    total = sum(p.stat().st_size for p in BUNDLED.rglob("*") if p.is_file())
    assert total <= 15_000_000
    # Speakers do not depend on which others are generated: the tiny set's are in the bundled one.
    assert set(pd.read_csv(tiny / "manifest.csv")["speaker"]) <= set(speakers["speaker"])
