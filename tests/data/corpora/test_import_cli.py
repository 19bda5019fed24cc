"""``datasets import`` through the real CLI: summary, problems file, one-line errors, missing decoders."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import soundfile as sf
from typer.testing import CliRunner

from ondevice_audit.cli import app
from ondevice_audit.data.corpora import get_adapter

runner = CliRunner()


@pytest.fixture
def common_voice(tmp_path: Path, write_audio, write_lines) -> Path:
    root = tmp_path / "cv" / "en"
    header = "client_id\tpath\tsentence\tup_votes\tdown_votes\tage\tgender\taccents\tvariant\tlocale\tsegment"
    rows = [
        f"c{i}\tclip{i}.mp3\t{word}\t2\t0\t{age}\t{gender}\tus\t\ten\t"
        for i, (word, age, gender) in enumerate(
            [("yes", "fourties", "female_feminine"), ("no", "twenties", "male_masculine"), ("Yes!", "teens", "x")]
        )
    ]
    write_lines(root / "train.tsv", [header, *rows, "c9\tgone.mp3\tno\t2\t0\tteens\tmale\tus\t\ten\t"])
    for i in range(3):
        write_audio(root / "clips" / f"clip{i}.mp3")
    return root


def test_import_writes_manifest_and_problems_and_summarises(common_voice: Path) -> None:
    result = runner.invoke(app, ["datasets", "import", "common-voice", str(common_voice), "--keywords", "yes,no"])
    assert result.exit_code == 0, result.output
    manifest = pd.read_csv(common_voice / "manifest.csv", dtype=str, keep_default_na=False)
    assert manifest["label"].tolist() == ["yes", "no", "yes"]
    assert manifest["gender"].tolist() == ["female", "male", ""] and manifest["age"].tolist() == [
        "forties",
        "twenties",
        "teens",
    ]
    problems = pd.read_csv(common_voice / "manifest.problems.csv", dtype=str, keep_default_na=False)
    assert sorted(problems["kind"]) == ["missing file", "unknown value"]
    assert "3 clips written to" in result.stdout
    assert "2 problem(s): 1 unknown value, 1 missing file; all listed in" in result.stdout
    assert "train.tsv line 5 (clips/gone.mp3): missing file: file not found; skipped" in result.stdout

    again = runner.invoke(app, ["datasets", "import", "common-voice", str(common_voice), "-q"])
    assert again.exit_code == 2 and "already exists; use --overwrite" in again.output
    clean = runner.invoke(app, ["datasets", "import", "manifest", str(common_voice / "manifest.csv"), "--out",
                                str(common_voice / "clean.csv"), "-q"])  # fmt: skip
    assert clean.exit_code == 0, clean.output
    assert not (common_voice / "clean.problems.csv").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope", "."], "unknown corpus format 'nope'; choose from mswc, common-voice, speech-commands"),
        (["common-voice", "{root}", "--top", "3"], "common-voice does not take --top (its options: --keywords"),
        (["common-voice", "{root}", "--out", "{root}/../../other/manifest.csv"], "or a folder containing it"),
        (["common-voice", "{root}", "--out", "{root}/meta/manifest.csv"], "may not climb out of it (../)"),
        (["common-voice", "{root}", "--tables", "validated"], "--tables: no validated in"),
        (["utkface", "{root}"], "cv/en: no images found"),
    ],
)
def test_user_errors_are_one_line_and_exit_2(common_voice: Path, args: list[str], message: str) -> None:
    result = runner.invoke(app, ["datasets", "import", *(a.format(root=common_voice) for a in args), "-q"])
    assert result.exit_code == 2, result.output
    assert message in result.output and len(result.output.strip().splitlines()) <= 2  # rich may wrap one line
    assert "Traceback" not in result.output


def test_missing_mp3_or_opus_support_is_one_clear_error(
    common_voice: Path, tmp_path: Path, write_audio, write_lines, monkeypatch: pytest.MonkeyPatch
) -> None:
    formats = {k: v for k, v in sf.available_formats().items() if k != "MP3"}
    monkeypatch.setattr(sf, "available_formats", lambda: formats)
    result = runner.invoke(app, ["datasets", "import", "common-voice", str(common_voice), "-q"])
    assert result.exit_code == 2
    assert "the clips are MP3 (.mp3) but this libsndfile" in result.output
    assert "needs libsndfile >= 1.1.0: `pip install --upgrade soundfile`" in result.output

    root = tmp_path / "mswc"
    write_audio(root / "clips" / "yes" / "a.opus", rate=48_000)
    write_lines(root / "en_splits.csv", ["SET,LINK,WORD,VALID,SPEAKER,GENDER", "TRAIN,yes/a.opus,yes,True,s,MALE"])
    monkeypatch.setattr(sf, "available_subtypes", lambda fmt=None: {"VORBIS": "Vorbis"})
    with pytest.raises(Exception, match=r"the clips are Opus \(.opus\) .* needs libsndfile >= 1.0.29"):
        get_adapter("mswc").read(root)


def test_help_lists_formats_and_the_manifest_location_rule() -> None:
    result = runner.invoke(app, ["datasets", "import", "--help"], env={"COLUMNS": "240"})
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    for name in (
        "mswc",
        "common-voice",
        "speech-commands",
        "folder",
        "manifest",
        "utkface",
        "fairface",
        "image-folder",
    ):
        assert name in text
    assert "must be in ROOT itself or a folder containing ROOT" in text
