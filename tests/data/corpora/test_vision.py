"""UTKFace (labels in file names), FairFace (label CSVs) and an image folder, as they ship."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from ondevice_audit.data import read_manifest
from ondevice_audit.data.corpora import get_adapter, write_manifest
from ondevice_audit.data.corpora.fairface import age_bin
from ondevice_audit.data.corpora.utkface import parse_name
from ondevice_audit.errors import UsageError


def _image(path: Path, size: tuple[int, int] = (8, 8)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (120, 80, 40)).save(path)
    return path


UTK = [
    "UTKFace/25_0_2_20170116174525125.jpg.chip.jpg",
    "UTKFace/1_1_0_20161219140623097.jpg.chip.jpg",
    "UTKFace/72_1_4_20170109150557335.jpg.chip.jpg",
    "part2/35_0_3_20170119180120426.jpg",
    "UTKFace/39_1_20170116174525125.jpg.chip.jpg",  # race missing, as in the published set
    "UTKFace/61_3_1_20170109150557335.jpg.chip.jpg",  # gender 3
    "UTKFace/20_0_7_20170109150557335.jpg.chip.jpg",  # race 7
    "UTKFace/200_0_1_20170109150557335.jpg.chip.jpg",  # age 200
]


def test_utkface_names_are_parsed_and_malformed_ones_reported_not_guessed(tmp_path: Path) -> None:
    for name in UTK:
        _image(tmp_path / name)
    result = get_adapter("utkface").read(tmp_path)
    frame = result.frame.set_index("path")
    assert list(result.frame.columns) == ["path", "label", "age_group", "gender", "race", "age"]
    assert frame.loc["UTKFace/25_0_2_20170116174525125.jpg.chip.jpg"].tolist() == [
        "male",
        "20-29",
        "male",
        "Asian",
        "25",
    ]
    assert frame.loc["UTKFace/1_1_0_20161219140623097.jpg.chip.jpg", ["gender", "race", "age_group"]].tolist() == [
        "female", "White", "0-2",
    ]  # fmt: skip
    assert frame.loc["UTKFace/72_1_4_20170109150557335.jpg.chip.jpg", ["race", "age_group"]].tolist() == [
        "Others", "more than 70",
    ]  # fmt: skip
    assert frame.loc["part2/35_0_3_20170119180120426.jpg", "race"] == "Indian"
    assert result.modality == "image" and "speaker" not in frame.columns
    assert sorted(p.reason for p in result.problems) == [
        "age 200 is above 116; skipped",
        "expected <age>_<gender>_<race>_<datetime>.jpg, got 3 field(s) in '39_1_20170116174525125'; skipped",
        "gender 3 is not 0 (male) or 1 (female); skipped",
        "race 7 is not 0-4 (White, Black, Asian, Indian, Others); skipped",
    ]
    by_race = get_adapter("utkface").read(tmp_path, target="race").frame
    assert sorted(by_race["label"]) == ["Asian", "Indian", "Others", "White"]
    assert set(get_adapter("utkface").read(tmp_path, target="age").frame["label"]) == {
        "20-29",
        "0-2",
        "more than 70",
        "30-39",
    }
    with pytest.raises(UsageError, match=r"--target 'hair': choose gender, race, age"):
        get_adapter("utkface").read(tmp_path, target="hair")


def test_age_bins_and_name_parser_edges() -> None:
    assert [age_bin(a) for a in (0, 2, 3, 9, 10, 69, 70, 116)] == [
        "0-2", "0-2", "3-9", "3-9", "10-19", "60-69", "more than 70", "more than 70",
    ]  # fmt: skip
    assert parse_name("30_1_1_20170103.jpg") == (30, "female", "Black")
    assert isinstance(parse_name("30_1_1_2017x.jpg"), str)


def test_fairface_tables(tmp_path: Path, write_lines) -> None:
    header = "file,age,gender,race,service_test"
    write_lines(tmp_path / "fairface_label_train.csv", [
        header, "train/1.jpg,50-59,Male,East Asian,True", "train/2.jpg,more than 70,Female,Latino_Hispanic,False",
        "train/3.jpg,3-9,Female,Martian,False", "train/4.jpg,20-29,Unknown,White,True", "train/5.jpg,20-29,Male,Black,True",
    ])  # fmt: skip
    write_lines(
        tmp_path / "fairface_label_val.csv",
        [header, "val/1.jpg,0-2,Female,Middle Eastern,True", "val/1.jpg,0-2,Male,White,True"],
    )
    for name in ("train/1.jpg", "train/2.jpg", "train/3.jpg", "train/4.jpg", "val/1.jpg"):
        _image(tmp_path / name)
    result = get_adapter("fairface").read(tmp_path)
    frame = result.frame.set_index("path")
    assert list(result.frame.columns) == ["path", "label", "split", "age", "gender", "race", "service_test"]
    assert frame.loc["train/2.jpg"].tolist() == [
        "female",
        "train",
        "more than 70",
        "female",
        "Latino_Hispanic",
        "False",
    ]
    assert frame.loc["train/3.jpg", "race"] == "" and frame.loc["val/1.jpg", "split"] == "dev"
    assert "train/4.jpg" not in frame.index  # unknown gender is the label: skipped
    assert result.problem_counts() == {"unknown value": 2, "duplicate path": 1, "missing file": 1}
    reasons = sorted(p.reason for p in result.problems if p.kind == "unknown value")
    assert reasons[0] == "gender 'Unknown' is not one of Male, Female; skipped (it is the --target)"
    assert reasons[1].startswith("race 'Martian' is not one of White, Black, Latino_Hispanic") and reasons[1].endswith(
        "kept with race missing"
    )
    assert sorted(get_adapter("fairface").read(tmp_path, target="race").frame["label"]) == [
        "East Asian", "Latino_Hispanic", "Middle Eastern", "White",
    ]  # fmt: skip


def test_image_folder_with_a_subject_csv_writes_a_readable_manifest(tmp_path: Path, write_lines) -> None:
    root = tmp_path / "photos"
    for path in ("cat/s1_a.png", "cat/s2_b.jpg", "dog/s1_c.jpeg", "dog/s3_d.png"):
        _image(root / path)
    groups = write_lines(root / "subjects.csv", ["speaker,skin_tone", "s1,dark", "s2,light", "s3,dark"])
    result = get_adapter("image-folder").read(root, groups=groups)
    assert result.modality == "image" and result.groups == ("skin_tone",)
    write_manifest(result, root / "manifest.csv")
    data = read_manifest(root / "manifest.csv", ["skin_tone"]).frame
    assert data.groupby("skin_tone")["speaker"].nunique().to_dict() == {"dark": 2, "light": 1}
