"""Generic layouts (folder per label + groups CSV, a manifest to clean) and where the manifest may be written."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from ondevice_audit.data import read_manifest
from ondevice_audit.data.corpora import get_adapter, write_manifest
from ondevice_audit.data.corpora.interface import safe_path
from ondevice_audit.data.interface import DataError
from ondevice_audit.errors import UsageError


@pytest.fixture
def folder(tmp_path: Path, write_audio) -> Path:
    root = tmp_path / "kws"
    for path in ("yes/ann_1.wav", "yes/bob_1.flac", "no/ann_2.wav", "no/sub/bob_2.wav", "no/carl_1.wav"):
        write_audio(root / path)
    (root / "yes" / "notes.txt").write_text("not audio\n")
    (root / ".cache").mkdir()
    write_audio(root / ".cache" / "x_1.wav")
    write_audio(root / "stray_1.wav")  # not in a label folder
    return root


def test_speaker_keyed_groups(folder: Path, write_lines) -> None:
    groups = write_lines(folder.parent / "groups.csv", ["speaker,gender", "ann,female", "bob,male"])
    result = get_adapter("folder").read(folder, groups=groups)
    frame = result.frame.set_index("path")
    assert sorted(frame.index) == [
        "no/ann_2.wav",
        "no/carl_1.wav",
        "no/sub/bob_2.wav",
        "yes/ann_1.wav",
        "yes/bob_1.flac",
    ]
    assert frame.loc["no/sub/bob_2.wav", ["label", "speaker", "gender"]].tolist() == ["no", "bob", "male"]
    assert frame.loc["no/carl_1.wav", "gender"] == ""
    assert [(p.kind, p.reason) for p in result.problems] == [
        ("no group values", "speaker 'carl' is not in groups.csv; its 1 clip(s) are kept with groups missing")
    ]
    assert "ignored 1 file(s) in label folders that are not clips" in result.notes


def test_file_keyed_groups_with_speakers_and_a_non_utf8_file_name(folder: Path, write_audio, write_lines) -> None:
    # A Latin-1 file name: soundfile cannot even open it, so the import must leave it out, reported.
    plain = write_audio(folder / "yes" / "latin1_1.wav")
    os.rename(bytes(plain), bytes(folder / "yes") + b"/d\xe9j\xe0_1.wav")
    groups = write_lines(
        folder / "groups.csv",
        ["file,speaker,accent", "yes/ann_1.wav,A1,us", "yes/bob_1.flac,B1,gb", "no/ann_2.wav,,us", "no/gone.wav,Z,us",
         "../outside.wav,Q,us"],
    )  # fmt: skip
    result = get_adapter("folder").read(folder, groups=groups)
    frame = result.frame.set_index("path")
    assert frame.loc["yes/ann_1.wav", ["speaker", "accent"]].tolist() == ["A1", "us"]
    assert frame.loc["no/ann_2.wav", "speaker"] == "ann"  # blank in the CSV: the file name's speaker
    kinds = result.problem_counts()
    assert kinds == {"no group values": 2, "malformed row": 1, "missing file": 1, "non-UTF-8 text": 1}
    bad = next(p for p in result.problems if p.kind == "non-UTF-8 text")
    assert bad.file == "yes/d\\xe9j\\xe0_1.wav"
    write_manifest(result, folder / "manifest.csv")  # undecodable names never reach the CSV
    assert len(read_manifest(folder / "manifest.csv", ["accent"]).frame) == 5


def test_speaker_pattern(folder: Path) -> None:
    result = get_adapter("folder").read(folder, speaker_pattern=r"_(?P<speaker>\d)\.")
    assert sorted(set(result.frame["speaker"])) == ["1", "2"]
    none = get_adapter("folder").read(folder, speaker_pattern=r"^(zzz)")
    assert none.problem_counts() == {"no speaker": 5}
    assert (none.frame["speaker"] == none.frame["path"]).all()
    with pytest.raises(UsageError, match=r"needs a group"):
        get_adapter("folder").read(folder, speaker_pattern="^ann")


def test_manifest_format_cleans_a_manifest(tmp_path: Path, write_audio, write_lines) -> None:
    for name in ("a", "b", "c"):
        write_audio(tmp_path / "clips" / f"{name}.wav")
    source = write_lines(
        tmp_path / "raw.csv",
        ["path,label,gender,speaker", "clips/a.wav,yes,female,s1", "clips/b.wav,no,Female,s2", "clips/a.wav,no,male,s1",
         "clips/c.wav,,male,s3", "/etc/passwd,yes,male,s4", "clips/../../x.wav,yes,male,s4", "clips/c.wav,yes,male,",
         b"clips/\xff.wav,yes,male,s5", "clips/missing.wav,yes,male,s6"],
    )  # fmt: skip
    result = get_adapter("manifest").read(source)
    assert list(result.frame["path"]) == ["clips/a.wav", "clips/b.wav", "clips/c.wav"]
    assert result.problem_counts() == {
        "malformed row": 3, "unknown value": 1, "no speaker": 1, "non-UTF-8 text": 1, "duplicate path": 1, "missing file": 1,
    }  # fmt: skip
    assert result.frame["speaker"].tolist() == ["s1", "s2", "clips/c.wav"]
    assert result.groups == ("gender",)
    with pytest.raises(UsageError, match=r"is the input itself"):
        write_manifest(result, source, overwrite=True)


def test_where_the_manifest_may_be_written(folder: Path, tmp_path: Path) -> None:
    result = get_adapter("folder").read(folder)
    write_manifest(result, folder / "manifest.csv")
    assert pd.read_csv(folder / "manifest.csv")["path"].iloc[0] == "no/ann_2.wav"
    with pytest.raises(UsageError, match=r"already exists; use --overwrite"):
        write_manifest(result, folder / "manifest.csv")
    write_manifest(result, tmp_path / "above.csv")  # a folder containing the corpus: paths gain the prefix
    above = read_manifest(tmp_path / "above.csv").frame
    assert above["path"].iloc[0] == "kws/no/ann_2.wav" and Path(above["file"].iloc[0]).is_file()
    for elsewhere in (tmp_path / "elsewhere" / "manifest.csv", folder / "meta" / "manifest.csv"):
        with pytest.raises(UsageError, match=r"is not in .*kws or a folder containing it: manifest paths are relative"):
            write_manifest(result, elsewhere)
        assert not elsewhere.parent.exists()


def test_empty_corpus_and_bad_groups_csv_are_one_line_errors(tmp_path: Path, write_lines, folder: Path) -> None:
    (tmp_path / "empty" / "yes").mkdir(parents=True)
    with pytest.raises(DataError, match=r"no clips in label folders"):
        get_adapter("folder").read(tmp_path / "empty")
    bad = write_lines(tmp_path / "g.csv", ["name,gender", "x,female"])
    with pytest.raises(DataError, match=r"needs a file \(or path\) or speaker column; it has name, gender$"):
        get_adapter("folder").read(folder, groups=bad)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("clips/a.wav", "clips/a.wav"), ("./clips//a.wav", "clips/a.wav"), ("a:b.wav", "a:b.wav"), ("x/../a.wav", "a.wav"),
     ("../a.wav", None), ("x/../../a.wav", None), ("/abs.wav", None), ("C:\\a.wav", None), ("c:/a.wav", None), ("  ", None)],
)  # fmt: skip
def test_safe_path(text: str, expected: str | None) -> None:
    assert safe_path(text) == expected
