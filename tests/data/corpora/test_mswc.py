"""MSWC as it ships: <lang>_splits.csv or per-split CSVs, 48 kHz Opus under clips/<word>/."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import soundfile as sf

from ondevice_audit.data import read_manifest
from ondevice_audit.data.corpora import get_adapter, write_manifest
from ondevice_audit.data.interface import DataError
from ondevice_audit.errors import UsageError

HEADER = "SET,LINK,WORD,VALID,SPEAKER,GENDER"
# (set, word, file, valid, speaker, gender)
CLIPS = [
    ("TRAIN", "yes", "common_voice_en_1.opus", "True", "spk_a", "MALE"),
    ("TRAIN", "yes", "common_voice_en_2.opus", "True", "spk_b", "FEMALE"),
    ("TRAIN", "yes", "common_voice_en_3.opus", "True", "spk_c", "OTHER"),
    ("DEV", "yes", "common_voice_en_4.opus", "True", "spk_d", ""),
    ("TRAIN", "no", "common_voice_en_5.opus", "True", "spk_a", "MALE"),
    ("TEST", "no", "common_voice_en_6.opus", "True", "spk_e", "NAN"),
    ("TEST", "no", "common_voice_en_7.opus", "True", "spk_e", "FEMALE"),
    ("TRAIN", "cat", "common_voice_en_8.opus", "True", "spk_b", "FEMALE"),
    ("TRAIN", "dog", "common_voice_en_9.opus", "True", "spk_f", "bogus"),
    ("TRAIN", "yes", "common_voice_en_10.opus", "False", "NA", ""),
]


@pytest.fixture
def mswc(tmp_path: Path, write_audio, write_lines) -> Path:
    root = tmp_path / "en"
    for _, word, name, *_ in CLIPS:
        write_audio(root / "clips" / word / name, rate=48_000)
    lines = [HEADER] + [f"{s},{w}/{n},{w},{v},{spk},{g}" for s, w, n, v, spk, g in CLIPS]
    lines += [
        "TRAIN,no/common_voice_en_5.opus,no,True,spk_a,MALE",  # duplicate of an earlier row
        "TRAIN,yes/missing.opus,yes,True,spk_g,MALE",  # audio not on disk
        "TRAIN,yes/common_voice_en_1.opus,yes,True",  # two fields short
        b"TRAIN,yes/caf\xe9.opus,yes,True,spk_h,MALE",  # Latin-1, not UTF-8
        "DEV,common_voice_en_11.opus,cat,True,spk_g,MALE",  # bare LINK: clips/<WORD>/<LINK>
    ]
    write_audio(root / "clips" / "cat" / "common_voice_en_11.opus", rate=48_000)
    write_lines(root / "en_splits.csv", lines)
    return root


def test_splits_csv_becomes_a_manifest_with_normalised_gender_and_every_problem_counted(mswc: Path) -> None:
    result = get_adapter("mswc").read(mswc, keywords="yes,no")
    frame = result.frame
    assert list(frame.columns) == ["path", "label", "split", "speaker", "gender", "word", "gender_raw"]
    assert len(frame) == 10  # 9 valid clips + the bare-LINK one; invalid, duplicate, missing and bad rows left out
    row = frame.set_index("path").loc["clips/yes/common_voice_en_2.opus"]
    assert (row["label"], row["split"], row["speaker"], row["gender"], row["gender_raw"]) == (
        "yes", "train", "spk_b", "female", "FEMALE",
    )  # fmt: skip
    assert frame.set_index("path").loc["clips/cat/common_voice_en_11.opus", "split"] == "dev"
    genders = dict(zip(frame["gender_raw"], frame["gender"], strict=True))
    assert genders == {"MALE": "male", "FEMALE": "female", "OTHER": "other", "": "", "NAN": "", "bogus": ""}
    assert sorted(frame.loc[frame["label"] == "_unknown_", "word"]) == ["cat", "cat", "dog"]
    assert result.problem_counts() == {
        "malformed row": 1, "non-UTF-8 text": 1, "duplicate path": 1, "missing file": 1, "unknown value": 1,
    }  # fmt: skip
    unknown = next(p for p in result.problems if p.kind == "unknown value")
    assert unknown.row == "en_splits.csv line 10" and "'bogus'" in unknown.reason
    assert next(p for p in result.problems if p.kind == "non-UTF-8 text").row == "en_splits.csv line 15"
    assert next(p for p in result.problems if p.kind == "missing file").file == "clips/yes/missing.opus"
    assert any("1 clip(s) not marked VALID=True" in note for note in result.notes)
    assert result.groups == ("gender",)


def test_written_manifest_reads_back_and_its_opus_clips_decode(mswc: Path) -> None:
    result = get_adapter("mswc").read(mswc, keywords=["yes", "no"])
    problems = write_manifest(result, mswc / "manifest.csv")
    data = read_manifest(mswc / "manifest.csv", ["gender"]).frame
    assert len(data) == 10
    info = sf.info(data["file"].iloc[0])
    assert (info.samplerate, info.subtype) == (48_000, "OPUS")
    listed = pd.read_csv(problems, dtype=str, keep_default_na=False)
    assert list(listed.columns) == ["kind", "row", "file", "reason"] and len(listed) == 5


def test_top_n_picks_the_most_frequent_words_and_max_unknown_samples_the_rest(mswc: Path) -> None:
    result = get_adapter("mswc").read(mswc, top=2)
    assert sorted(set(result.frame["label"])) == ["_unknown_", "no", "yes"]
    assert "keywords (the 2 most frequent words): yes, no;" in " ".join(result.notes)
    few = get_adapter("mswc").read(mswc, top=2, max_unknown=1, seed=3)
    assert (few.frame["label"] == "_unknown_").sum() == 1 and len(few.frame) == 8
    again = get_adapter("mswc").read(mswc, top=2, max_unknown=1, seed=3)
    assert few.frame.equals(again.frame)


def test_include_invalid_keeps_them_with_a_valid_column(mswc: Path) -> None:
    result = get_adapter("mswc").read(mswc, keywords="yes", include_invalid=True)
    invalid = result.frame[result.frame["valid"] == "false"]
    assert list(invalid["path"]) == ["clips/yes/common_voice_en_10.opus"]
    # "NA" is MSWC's speaker of every invalid clip: not one person, so each clip stands alone
    assert invalid["speaker"].iloc[0] == "clips/yes/common_voice_en_10.opus"
    assert [p.kind for p in result.problems if p.file == invalid["path"].iloc[0]] == ["no speaker"]


def test_per_split_files_give_the_split_from_their_names(tmp_path: Path, write_audio, write_lines) -> None:
    root = tmp_path / "de"
    for split, n in (("train", 3), ("dev", 1), ("test", 2)):
        rows = ["LINK,WORD,VALID,SPEAKER,GENDER"]
        for i in range(n):
            write_audio(root / "clips" / "ja" / f"{split}{i}.opus", rate=48_000)
            rows.append(f"ja/{split}{i}.opus,ja,True,s{split}{i},FEMALE")
        write_lines(root / f"de_{split}.csv", rows)
    frame = get_adapter("mswc").read(root, keywords="ja").frame
    assert frame["split"].value_counts().to_dict() == {"train": 3, "test": 2, "dev": 1}


def test_no_split_table_and_no_usable_rows_are_one_line_errors(tmp_path: Path, write_lines) -> None:
    (tmp_path / "clips").mkdir()
    with pytest.raises(DataError, match=r"no MSWC split table; expected <lang>_splits.csv"):
        get_adapter("mswc").read(tmp_path)
    write_lines(tmp_path / "xx_splits.csv", [HEADER, "TRAIN,yes/a.opus,yes,True,s1,MALE"])
    with pytest.raises(
        DataError,
        match=r"nothing usable to import \(1 missing file\); first: xx_splits.csv line 2 \(clips/yes/a.opus\): missing file",
    ):
        get_adapter("mswc").read(tmp_path, keywords="yes")
    with pytest.raises(UsageError, match=r"^mswc does not take --target \(its options: --keywords, --top"):
        get_adapter("mswc").read(tmp_path, target="gender")
