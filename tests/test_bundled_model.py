"""The bundled model and data: the audit in the model card (models/kws-ds-cnn/audit.json) is reproducible."""

import json
from pathlib import Path

import pytest

from ondevice_audit.demo import find_demo_paths, run_demo_audit

ROOT = Path(__file__).resolve().parents[1]


def test_bundled_audit_reproduces_the_model_card(tmp_path):
    paths = find_demo_paths(ROOT)
    report = run_demo_audit(paths, tmp_path)
    card = json.loads((ROOT / "models" / "kws-ds-cnn" / "audit.json").read_text())
    assert report["overall"] == card["overall"]
    assert report["attributes"] == card["attributes"]
    assert report["model"]["sha256"] == card["model"]["sha256"]
    assert report["overall"]["n"] == 672 and report["overall"]["n_speakers"] == 48
    for name in ("audit.json", "audit.md", "audit.html"):
        assert (tmp_path / name).stat().st_size > 0


def test_demo_paths_are_checked(tmp_path):
    with pytest.raises(Exception, match="cannot find the bundled dataset"):
        find_demo_paths(tmp_path)


def test_int8_of_the_bundled_model_shows_per_group_flip_rates(tmp_path):
    """f32 vs int8 of the same model on the bundled data: the comparison section has flips per group."""
    from ondevice_audit import _tensorflow
    from ondevice_audit.audit import ModelOptions, ScoreOptions, TargetOptions, audit_model
    from ondevice_audit.data import read_manifest, select_split
    from ondevice_audit.export.metadata import read_metadata
    from ondevice_audit.export.variants import export_variants
    from ondevice_audit.frontend import build_frontend
    from ondevice_audit.optimize.quantize import QuantApproach

    paths = find_demo_paths(ROOT)
    keras_path = ROOT / "models" / "kws-ds-cnn" / "model.keras"
    metadata = read_metadata(keras_path)
    train = select_split(read_manifest(paths.manifest), paths.split, "train").frame
    calibration = build_frontend(metadata.frontend).transform([Path(p) for p in train["file"][:200]]).inputs
    model = _tensorflow.keras().models.load_model(keras_path)
    (result,) = export_variants(model, ["tflite"], [QuantApproach.INT8], tmp_path, metadata, calibration)
    options = ScoreOptions(groups=("gender",), split_file=paths.split, split="test", bootstrap=200, permutations=0)
    report = audit_model(result.path, paths.manifest, options, ModelOptions(),
                              TargetOptions(reference=paths.model))  # fmt: skip
    groups = report["comparison"]["attributes"][0]["groups"]
    assert [g["name"] for g in groups] == ["female", "male"]
    for group in groups:
        reference, int8 = group["runs"]
        assert reference["flips"] is None and int8["flips"] is not None
        assert int8["flip_rate"] == pytest.approx(int8["flips"] / group["n"])
        assert 0 <= int8["flip_rate"] <= 0.05  # int8 keeps the decisions of a well-calibrated float model
