"""``datasets inspect``: per-group counts from file headers, warnings, and bad input counted, not fatal."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from PIL import Image
from typer.testing import CliRunner

from ondevice_audit.cli import app
from ondevice_audit.data.inspect import inspect_manifest
from ondevice_audit.errors import UsageError

runner = CliRunner()


def _clip(path: Path, rate: int, seconds: float) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.zeros(int(rate * seconds), dtype=np.float32), rate)
    return path.name


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    rows = ["path,label,split,gender,accent,speaker"]
    for i in range(6):  # female: 6 clips of yes/no at 16 kHz, 0.5 s, 3 speakers
        _clip(tmp_path / "clips" / f"f{i}.wav", 16_000, 0.5)
        rows.append(f"clips/f{i}.wav,{'yes' if i % 2 else 'no'},train,female,us,sf{i % 3}")
    for i in range(3):  # male: 3 clips of yes only, one at 48 kHz; speaker sm0 also in test
        rate = 48_000 if i == 0 else 16_000
        _clip(tmp_path / "clips" / f"m{i}.wav", rate, 1.0)
        rows.append(f"clips/m{i}.wav,yes,{'test' if i == 2 else 'train'},male,gb,sm0")
    (tmp_path / "clips" / "broken.wav").write_bytes(b"RIFF nonsense")
    rows += [
        "clips/broken.wav,no,train,male,gb,sm1",  # header unreadable
        "clips/gone.wav,no,train,female,us,sf0",  # missing
        "clips/f0.wav,no,train,female,us,sf0",  # duplicate
        "clips/f1.wav,yes,train,Female,us,sf1,extra",  # ragged
        "clips/f5.wav,yes,train,Female,us,sf2",  # duplicate again, and a gender spelled differently
    ]
    path = tmp_path / "manifest.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def test_groups_counts_durations_rates_and_warnings(manifest: Path) -> None:
    summary = inspect_manifest(manifest, ["gender"], min_group_size=4)
    assert (summary["clips"], summary["speakers"], summary["duration_seconds"]) == (9, 4, 6.0)
    assert summary["labels"] == {"no": 3, "yes": 6}
    assert summary["sample_rates"] == {"16000": 8, "48000": 1}
    assert summary["splits"] == {"test": {"clips": 1, "speakers": 1}, "train": {"clips": 8, "speakers": 4}}
    assert summary["speakers_in_several_splits"] == ["sm0"]
    female, male = summary["attributes"][0]["groups"]
    assert female == {
        "value": "female", "clips": 6, "speakers": 3, "duration_seconds": 3.0, "labels": {"no": 3, "yes": 3},
        "sample_rates": {"16000": 6}, "image_sizes": {}, "missing_labels": [],
    }  # fmt: skip
    assert (male["clips"], male["speakers"], male["missing_labels"]) == (3, 1, ["no"])
    assert male["sample_rates"] == {"16000": 2, "48000": 1}
    warnings = summary["warnings"]
    assert "gender=male: 3 clip(s), below --min-group-size 4 (shown in reports but left out of RB)" in warnings
    assert "gender=male has no clips of label(s) no" in warnings
    assert any(w.startswith("1 speaker(s) are in more than one split (e.g. sm0)") for w in warnings)
    assert any(w.startswith("sample rates differ (16000 Hz ×8, 48000 Hz ×1)") for w in warnings)
    problems = summary["problems"]
    assert problems["by_kind"] == {
        "duplicate path": 2, "malformed row": 1, "unknown value": 1, "missing file": 1, "unreadable file": 1,
    }  # fmt: skip
    assert {p["file"] for p in problems["listed"] if p["kind"] == "unreadable file"} == {"clips/broken.wav"}


def test_default_groups_and_unknown_gender_spelling(tmp_path: Path) -> None:
    rows = ["path,label,gender,accent,sentence,gender_raw"]
    for i in range(60):
        _clip(tmp_path / f"c{i}.wav", 8_000, 0.1)
        rows.append(f"c{i}.wav,yes,{'Female' if i == 0 else 'male'},a{i % 2},words number {i},M")
    (tmp_path / "m.csv").write_text("\n".join(rows) + "\n")
    summary = inspect_manifest(tmp_path / "m.csv")
    assert [a["column"] for a in summary["attributes"]] == ["gender", "accent"]  # sentence: 60 values; *_raw: raw
    assert summary["speakers"] is None and summary["problems"]["by_kind"] == {"unknown value": 1}
    with pytest.raises(UsageError, match=r"unknown --group age; choose from the group columns: gender, accent"):
        inspect_manifest(tmp_path / "m.csv", ["age"])


def test_images_report_sizes(tmp_path: Path) -> None:
    for i, size in enumerate([(32, 32), (32, 32), (64, 48)]):
        Image.new("RGB", size).save(tmp_path / f"i{i}.png")
    (tmp_path / "m.csv").write_text("path,label,light\ni0.png,a,dim\ni1.png,b,dim\ni2.png,a,bright\n")
    summary = inspect_manifest(tmp_path / "m.csv", ["light"], min_group_size=0)
    assert summary["modality"] == "image" and summary["duration_seconds"] is None
    assert summary["image_sizes"] == {"32x32": 2, "64x48": 1} and summary["sample_rates"] == {}
    assert summary["attributes"][0]["groups"][0]["missing_labels"] == ["b"]
    table = runner.invoke(app, ["datasets", "inspect", str(tmp_path / "m.csv"), "-q"], env={"COLUMNS": "200"})
    assert table.exit_code == 0, table.output
    assert "3 images" in table.stdout and "32x32 2" in table.stdout and "duration" not in table.stdout


def test_cli_json_and_tables(manifest: Path) -> None:
    as_json = runner.invoke(
        app, ["datasets", "inspect", str(manifest), "-g", "gender", "-g", "accent", "-f", "json", "-q"]
    )
    assert as_json.exit_code == 0, as_json.output
    summary = json.loads(as_json.stdout)
    assert [a["column"] for a in summary["attributes"]] == ["gender", "accent"] and summary["clips"] == 9
    table = runner.invoke(app, ["datasets", "inspect", str(manifest), "-g", "gender", "-q"], env={"COLUMNS": "200"})
    assert table.exit_code == 0, table.output
    assert "9 clips, 4 speakers, 0.1 min" in table.stdout
    assert "warning: gender=male: 3 clip(s), below --min-group-size 30" in table.stdout
    assert "manifest.csv line 12 (clips/gone.wav): missing file: file not found; skipped" in table.stdout
    assert "clips/broken.wav: unreadable file: header cannot be read (Format not recognised.); left out" in table.stdout
    missing = runner.invoke(app, ["datasets", "inspect", str(manifest.parent / "nope.csv")])
    assert missing.exit_code == 2 and "not a file" in missing.output
