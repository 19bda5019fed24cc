"""The generated shapes dataset, its bundled copy, and a vision audit on it through TFLite and ONNX.

The end-to-end test trains the ``image-cnn`` recipe on the sessions numbered 0-5, exports it, and audits the
unseen sessions 6-9 by lighting and background. The vision *sweep* (design choices x groups) is tested with
the sweep itself, not here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

from ondevice_audit.cli import app
from ondevice_audit.data.synth_shapes import BACKGROUNDS, CLASSES, LIGHTING, MANIFEST_COLUMNS, generate_synth_shapes
from ondevice_audit.errors import UsageError

BUNDLED = Path(__file__).resolve().parents[2] / "datasets" / "synth-shapes"
TINY = {"sessions_per_condition": 1, "images_per_class": 2}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("shapes") / "tiny"
    generate_synth_shapes(out, **TINY)
    return out


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image, dtype=np.float64)


def test_layout_and_manifest(tiny: Path) -> None:
    manifest = pd.read_csv(tiny / "manifest.csv")
    assert tuple(manifest.columns) == MANIFEST_COLUMNS
    assert len(manifest) == 4 * len(CLASSES) * 2
    assert set(manifest["speaker"]) == {f"{a}-{b}-s00" for a in LIGHTING for b in BACKGROUNDS}
    for row in manifest.itertuples():
        assert row.path.startswith(f"images/{row.label}/{row.speaker}_") and row.speaker.startswith(
            f"{row.lighting}-{row.background}-"
        )
        with Image.open(tiny / row.path) as image:
            assert (image.format, image.mode, image.size) == ("PNG", "RGB", (32, 32))


def test_same_arguments_give_identical_files_and_sessions_do_not_depend_on_others(tiny: Path, tmp_path: Path) -> None:
    again = generate_synth_shapes(tmp_path / "again", **TINY)
    assert (tmp_path / "again" / "manifest.csv").read_bytes() == (tiny / "manifest.csv").read_bytes()
    for path in again["path"]:
        assert (tmp_path / "again" / path).read_bytes() == (tiny / path).read_bytes()
    more = generate_synth_shapes(tmp_path / "more", sessions_per_condition=2, images_per_class=2)
    assert set(again["path"]) < set(more["path"])
    shared = again["path"].iloc[0]
    assert (tmp_path / "more" / shared).read_bytes() == (tiny / shared).read_bytes()
    other = generate_synth_shapes(tmp_path / "seed1", seed=1, **TINY)
    assert not np.array_equal(_pixels(tmp_path / "seed1" / other["path"].iloc[0]), _pixels(tiny / shared))


def test_dim_sessions_are_darker_and_lower_contrast(tiny: Path) -> None:
    manifest = pd.read_csv(tiny / "manifest.csv")
    stats = (
        manifest.assign(
            mean=[_pixels(tiny / p).mean() for p in manifest["path"]],
            spread=[_pixels(tiny / p).std() for p in manifest["path"]],
        )
        .groupby("lighting")[["mean", "spread"]]
        .mean()
    )
    assert stats.loc["dim", "mean"] < 0.6 * stats.loc["bright", "mean"]
    assert stats.loc["dim", "spread"] < stats.loc["bright", "spread"]


def test_existing_dataset_needs_overwrite_and_bad_sizes_are_refused(tiny: Path, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"already holds a dataset .*use --overwrite$"):
        generate_synth_shapes(tiny, **TINY)
    with pytest.raises(UsageError, match=r"between 8 and 256"):
        generate_synth_shapes(tmp_path / "x", size=4)
    result = CliRunner().invoke(app, ["datasets", "synth-shapes", "--out", str(tmp_path / "cli"), "--sessions-per-condition", "1",
                                      "--images-per-class", "1", "-q"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert len(pd.read_csv(tmp_path / "cli" / "manifest.csv")) == 16


def test_bundled_copy_is_the_default_output_small_and_balanced(tmp_path: Path) -> None:
    manifest = pd.read_csv(BUNDLED / "manifest.csv")
    assert len(manifest) >= 600 and manifest["speaker"].nunique() == 40
    assert manifest.groupby(["lighting", "background", "label"]).size().eq(len(manifest) // 16).all()
    assert manifest.groupby("speaker")["label"].nunique().eq(len(CLASSES)).all()
    total = sum(p.stat().st_size for p in BUNDLED.rglob("*") if p.is_file())
    assert total <= 3_000_000
    assert (BUNDLED / "README.md").is_file()
    regenerated = generate_synth_shapes(tmp_path / "defaults")
    assert (tmp_path / "defaults" / "manifest.csv").read_bytes() == (BUNDLED / "manifest.csv").read_bytes()
    for path in regenerated["path"]:
        assert (tmp_path / "defaults" / path).read_bytes() == (BUNDLED / path).read_bytes(), path


@pytest.fixture(scope="session")
def shapes_models(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Path], Path]:
    """A tiny image-cnn trained on sessions 0-5 of a generated set, as TFLite and ONNX; and the audit manifest."""
    from ondevice_audit.data import read_manifest
    from ondevice_audit.export.metadata import ModelMetadata
    from ondevice_audit.export.variants import export_variants
    from ondevice_audit.frontend import ImageFrontendSpec
    from ondevice_audit.frontend.features import compute_features
    from ondevice_audit.model.recipes import get_recipe
    from ondevice_audit.model.train import encode_labels, train_model
    from ondevice_audit.optimize.quantize import QuantApproach

    root = tmp_path_factory.mktemp("vision") / "shapes"
    manifest = generate_synth_shapes(root, sessions_per_condition=10, images_per_class=4)
    seen = manifest["speaker"].str[-2:].astype(int) < 6
    manifest[~seen].to_csv(root / "audit.csv", index=False)
    spec = ImageFrontendSpec(height=32, width=32)
    train = read_manifest(root / "manifest.csv").frame[seen.to_numpy()]
    features = compute_features(train, spec)
    y, classes = encode_labels(list(features.frame["label"]))
    model, _ = train_model(get_recipe("image-cnn"), features.inputs, y, None, None, epochs=12, batch_size=32,
                           learning_rate=3e-3, seed=0)  # fmt: skip
    metadata = ModelMetadata(labels=classes, frontend=spec, extra={"recipe": "image-cnn"})
    results = export_variants(
        model, ["tflite", "onnx"], [QuantApproach.F32], root.parent / "models", metadata, features.inputs
    )
    assert all(r.parity_ok for r in results), [r.warnings for r in results]
    return {r.format: r.path for r in results}, root / "audit.csv"


def test_vision_audit_through_tflite_and_onnx(shapes_models: tuple[dict[str, Path], Path]) -> None:
    from ondevice_audit.audit import ScoreOptions, audit_model
    from ondevice_audit.report.document import validate

    models, manifest = shapes_models
    options = ScoreOptions(
        groups=("lighting", "background"), metric="accuracy", min_group_size=20, bootstrap=200, permutations=200
    )
    reports = {fmt: audit_model(path, manifest, options) for fmt, path in models.items()}
    tflite, onnx = reports["tflite"], reports["onnx"]
    for report in reports.values():
        validate(report)
        assert report["samples"]["scored"] == report["samples"]["total"] == 256
        assert report["model"]["labels"] == sorted(CLASSES) and "image 32x32 rgb" in report["model"]["frontend"]
        assert not any("no speaker column" in w for w in report["warnings"])
    # 12 epochs leave the model far from converged (~45 %); chance is 25 %, 0.35 is 3.7 standard errors above it
    assert tflite["overall"]["metrics"]["accuracy"] > 0.35
    assert onnx["overall"]["metrics"] == pytest.approx(tflite["overall"]["metrics"], abs=1e-3)
    lighting = {a["name"]: a for a in tflite["attributes"]}["lighting"]
    groups = {g["name"]: g for g in lighting["groups"]}
    assert groups["bright"]["n"] == groups["dim"]["n"] == 128
    assert groups["bright"]["n_speakers"] == groups["dim"]["n_speakers"] == 8
    assert lighting["rb"]["value"] == pytest.approx(
        {a["name"]: a for a in onnx["attributes"]}["lighting"]["rb"]["value"], abs=1e-3
    )
