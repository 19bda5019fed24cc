"""Common Voice as it ships: unquoted TSVs from old and new releases, MP3 clips under clips/."""

from __future__ import annotations

from pathlib import Path

import pytest
import soundfile as sf

from ondevice_audit.data import read_manifest
from ondevice_audit.data.corpora import get_adapter, write_manifest
from ondevice_audit.errors import UsageError

OLD = ["client_id", "path", "sentence", "up_votes", "down_votes", "age", "gender", "accent", "locale", "segment"]
NEW = [
    "client_id", "path", "sentence_id", "sentence", "sentence_domain", "up_votes", "down_votes",
    "age", "gender", "accents", "variant", "locale", "segment",
]  # fmt: skip


def _row(columns: list[str], **values: str) -> str:
    defaults = {"up_votes": "2", "down_votes": "0", "locale": "en", "segment": "", "sentence_id": "abc", "variant": ""}
    return "\t".join({**defaults, **values}.get(c, "") for c in columns)


@pytest.fixture
def old_release(tmp_path: Path, write_audio, write_lines) -> Path:
    """A release before 2023: gender male/female/other, accent column, age 'fourties'."""
    root = tmp_path / "cv-corpus-5.1" / "en"
    train = [
        _row(OLD, client_id="c1", path="a.mp3", sentence="Yes.", age="fourties", gender="female", accent="us"),
        _row(
            OLD,
            client_id="c1",
            path="b.mp3",
            sentence='He said "no" twice',
            age="fourties",
            gender="female",
            accent="us",
        ),
        _row(OLD, client_id="c2", path="c.mp3", sentence="no", age="twenties", gender="male", accent="england"),
        _row(OLD, client_id="c3", path="d.mp3", sentence="Cat!", age="", gender="other", accent=""),
        _row(OLD, client_id="c4", path="e.mp3", sentence="yes", age="ancient", gender="robot", accent="scotland"),
        "c5\tf.mp3\tonly three fields",
        _row(OLD, client_id="c6", path="g.mp3", sentence="", age="teens", gender="male", accent="us"),
    ]
    test = [_row(OLD, client_id="c7", path="h.mp3", sentence="Yes", age="sixties", gender="female", accent="canada")]
    write_lines(root / "train.tsv", ["\t".join(OLD), *train])
    write_lines(root / "test.tsv", ["\t".join(OLD), *test])
    write_lines(root / "validated.tsv", ["\t".join(OLD), train[0], test[0]])
    for name in "abcdefgh":
        write_audio(root / "clips" / f"{name}.mp3")
    return root


@pytest.fixture
def new_release(tmp_path: Path, write_audio, write_lines) -> Path:
    """A 2024 release: sentence_id/sentence_domain, accents, variant, gender male_masculine and friends."""
    root = tmp_path / "cv-corpus-17.0" / "en"
    genders = ["male_masculine", "female_feminine", "intersex", "transgender", "non-binary", "do_not_wish_to_say", ""]
    rows = [
        _row(NEW, client_id=f"c{i}", path=f"n{i}.mp3", sentence=f"sentence {i}", age="thirties", gender=g,
             accents="India and South Asia (India, Pakistan, Sri Lanka)", variant="en-IN")
        for i, g in enumerate(genders)
    ]  # fmt: skip
    write_lines(root / "dev.tsv", ["\t".join(NEW), *rows], end="\r\n")
    for i in range(len(genders)):
        write_audio(root / "clips" / f"n{i}.mp3")
    return root


def test_old_release_gender_age_and_accent_are_normalised_and_raw_values_kept(old_release: Path) -> None:
    result = get_adapter("common-voice").read(old_release)
    frame = result.frame.set_index("path")
    assert list(result.frame.columns) == [
        "path", "label", "split", "speaker", "gender", "age", "accent", "gender_raw", "age_raw", "locale",
    ]  # fmt: skip
    assert result.groups == ("gender", "age", "accent")
    assert len(frame) == 6  # the short row and the empty sentence are reported and left out
    assert frame.loc["clips/a.mp3", ["label", "split", "speaker", "gender", "age", "age_raw", "accent"]].tolist() == [
        "Yes.", "train", "c1", "female", "forties", "fourties", "us",
    ]  # fmt: skip
    assert frame.loc["clips/b.mp3", "label"] == 'He said "no" twice'  # bare quotes: TSVs are unquoted
    assert frame.loc["clips/e.mp3", ["gender", "gender_raw", "age", "age_raw"]].tolist() == ["", "robot", "", "ancient"]
    assert frame.loc["clips/h.mp3", "split"] == "test"
    assert result.problem_counts() == {"unknown value": 2, "malformed row": 2}
    reasons = sorted(p.reason for p in result.problems)
    assert reasons[0] == "3 fields where the header has 10; skipped"
    assert reasons[1] == "age 'ancient' is not one of teens ... nineties or empty; kept with age missing"
    assert reasons[2] == "empty sentence; skipped"
    assert reasons[3].startswith("gender 'robot' is not one of male, female, other, male_masculine")


def test_new_release_gender_spellings_map_to_female_male_other_or_missing(new_release: Path) -> None:
    result = get_adapter("common-voice").read(new_release)
    frame = result.frame
    assert dict(zip(frame["gender_raw"], frame["gender"], strict=True)) == {
        "male_masculine": "male", "female_feminine": "female", "intersex": "other", "transgender": "other",
        "non-binary": "other", "do_not_wish_to_say": "", "": "",
    }  # fmt: skip
    assert set(frame["split"]) == {"dev"} and set(frame["variant"]) == {"en-IN"}
    assert frame["accent"].iloc[0] == "India and South Asia (India, Pakistan, Sri Lanka)"
    assert "variant" in result.groups and not result.problems
    assert "sentence_id" not in frame.columns and "sentence_domain" not in frame.columns


def test_keywords_keep_single_word_clips_and_map_other_words_to_unknown(old_release: Path) -> None:
    result = get_adapter("common-voice").read(old_release, keywords="yes,no")
    labels = result.frame.set_index("path")["label"].to_dict()
    assert labels == {
        "clips/a.mp3": "yes", "clips/c.mp3": "no", "clips/d.mp3": "_unknown_", "clips/e.mp3": "yes", "clips/h.mp3": "yes",
    }  # fmt: skip
    assert result.frame.set_index("path").loc["clips/d.mp3", "sentence"] == "Cat!"
    assert "left out 1 clip(s) whose text is not a single word (--keywords)" in result.notes


def test_written_manifest_reads_back_and_mp3_headers_are_read(old_release: Path) -> None:
    result = get_adapter("common-voice").read(old_release)
    write_manifest(result, old_release / "manifest.csv")
    data = read_manifest(old_release / "manifest.csv", ["gender", "age", "accent"]).frame
    assert len(data) == 6
    assert sf.info(data["file"].iloc[0]).format == "MP3"


def test_tables_option_and_duplicates_across_tables(old_release: Path) -> None:
    result = get_adapter("common-voice").read(old_release, tables="train,validated")
    duplicates = [p for p in result.problems if p.kind == "duplicate path"]
    assert [(p.row, p.file) for p in duplicates] == [("validated.tsv line 2", "clips/a.mp3")]
    assert set(result.frame["split"]) == {"train", "validated"}
    with pytest.raises(UsageError, match=r"^--tables: no other in .* \(tables there: test, train, validated\)$"):
        get_adapter("common-voice").read(old_release, tables="other")


def test_label_column_replaces_the_sentence(new_release: Path) -> None:
    frame = get_adapter("common-voice").read(new_release, label_column="sentence_id").frame
    assert set(frame["label"]) == {"abc"} and frame["sentence"].iloc[0] == "sentence 0"
