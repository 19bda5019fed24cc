"""Google Speech Commands v2 as it ships, with the bias study's gender lists or a speaker CSV."""

from __future__ import annotations

from pathlib import Path

import pytest

from ondevice_audit.data.corpora import get_adapter

FILES = [
    "yes/aa11_nohash_0.wav", "yes/aa11_nohash_1.wav", "yes/bb22_nohash_0.wav", "yes/cc33_nohash_0.wav",
    "no/aa11_nohash_0.wav", "no/bb22_nohash_0.wav", "no/dd44_nohash_0.wav",
    "cat/cc33_nohash_0.wav", "Bed/dd44_nohash_2.wav", "yes/not-a-speech-commands-name.wav",
]  # fmt: skip


@pytest.fixture
def commands(tmp_path: Path, write_audio, write_lines) -> Path:
    root = tmp_path / "speech_commands_v0.02"
    for path in FILES:
        write_audio(root / path)
    write_audio(root / "_background_noise_" / "white_noise.wav", seconds=2.0)
    write_lines(root / "validation_list.txt", ["no/bb22_nohash_0.wav", "yes/bb22_nohash_0.wav"])
    write_lines(root / "testing_list.txt", ["yes/cc33_nohash_0.wav", "cat/cc33_nohash_0.wav", "yes/gone_nohash_0.wav"])
    (root / "LICENSE").write_text("CC-BY-4.0\n")
    return root


def test_layout_gives_speakers_splits_and_the_standard_keywords(commands: Path) -> None:
    result = get_adapter("speech-commands").read(commands)
    frame = result.frame.set_index("path")
    assert list(result.frame.columns) == ["path", "label", "split", "speaker", "word"]
    assert len(frame) == 9 and not any("_background_noise_" in p for p in frame.index)
    assert frame.loc["yes/aa11_nohash_1.wav", ["label", "split", "speaker"]].tolist() == ["yes", "train", "aa11"]
    assert frame.loc["no/bb22_nohash_0.wav", "split"] == "dev"
    assert frame.loc["cat/cc33_nohash_0.wav", ["label", "split", "word"]].tolist() == ["_unknown_", "test", "cat"]
    assert frame.loc["Bed/dd44_nohash_2.wav", "label"] == "_unknown_"
    assert result.problem_counts() == {"malformed file name": 1, "missing file": 1}
    assert {p.file for p in result.problems} == {"yes/not-a-speech-commands-name.wav", "yes/gone_nohash_0.wav"}


def test_keywords_and_all_words(commands: Path) -> None:
    chosen = get_adapter("speech-commands").read(commands, keywords="cat,bed").frame
    assert chosen["label"].value_counts().to_dict() == {"_unknown_": 7, "cat": 1, "bed": 1}
    every = get_adapter("speech-commands").read(commands, all_words=True).frame
    assert set(every["label"]) == {"yes", "no", "cat", "Bed"}


def test_gender_lists_of_the_bias_study_give_a_gender_column(commands: Path, write_lines) -> None:
    write_lines(
        commands / "training_list_male.txt", ["yes/aa11_nohash_0.wav", "yes/aa11_nohash_1.wav", "no/aa11_nohash_0.wav"]
    )
    write_lines(commands / "validation_list_female.txt", ["no/bb22_nohash_0.wav", "yes/bb22_nohash_0.wav"])
    write_lines(commands / "testing_list_female.txt", ["yes/cc33_nohash_0.wav", "yes/aa11_nohash_0.wav"])
    result = get_adapter("speech-commands").read(commands)
    gender = result.frame.set_index("path")["gender"]
    assert gender["yes/aa11_nohash_0.wav"] == "female"  # listed twice: the first list (sorted by name) wins
    assert gender["no/bb22_nohash_0.wav"] == "female" and gender["no/aa11_nohash_0.wav"] == "male"
    assert gender["no/dd44_nohash_0.wav"] == ""
    assert result.groups == ("gender",)
    conflict = [p for p in result.problems if p.kind == "unknown value"]
    assert [(p.file, p.reason) for p in conflict] == [
        ("yes/aa11_nohash_0.wav", "in the female and male lists; kept as female")
    ]
    assert any("3 clip(s) are in no list (gender missing)" in note for note in result.notes)


def test_speaker_groups_csv(commands: Path, write_lines) -> None:
    groups = write_lines(
        commands.parent / "speakers.csv", ["speaker,gender,age", "aa11,male,30s", "bb22,female,20s", "aa11,female,40s"]
    )
    result = get_adapter("speech-commands").read(commands, groups=groups)
    frame = result.frame.set_index("path")
    assert frame.loc["yes/aa11_nohash_0.wav", ["gender", "age"]].tolist() == ["male", "30s"]
    assert frame.loc["no/dd44_nohash_0.wav", ["gender", "age"]].tolist() == ["", ""]
    assert result.groups == ("gender", "age")
    kinds = result.problem_counts()
    assert kinds["duplicate path"] == 1 and kinds["no group values"] == 2  # speakers cc33 and dd44
