"""The vision sweep: image matrices refused when they mix modalities, and a real 2x2 sweep through TFLite and ONNX.

The sweep runs ``image_size`` x ``color`` (x ``export``: each model exported to both formats) on a small set
generated with ``synth_shapes``, with real training, export and inference, so it checks what a unit test
cannot: that the image front-end reaches the features, the model's input, the file's metadata and the report.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pandas as pd
import pytest

from ondevice_audit.errors import UsageError
from ondevice_audit.sweep import IMAGE_FACTORS, load_matrix, parse_matrix

EXAMPLES = Path(__file__).parents[2] / "examples"
SOURCE = Path("/sweeps/vision.toml")
IMAGE_DATA = '[data]\nmanifest = "shapes/manifest.csv"\ngroups = ["lighting", "background"]\nmodality = "image"\n'
AUDIO_DATA = '[data]\nmanifest = "kws/manifest.csv"\ngroups = ["gender"]\n'


def parse(text: str):
    return parse_matrix(tomllib.loads(text), SOURCE)


def error(text: str) -> str:
    with pytest.raises(UsageError) as caught:
        parse(text)
    return str(caught.value)


def test_an_image_matrix_has_image_factors_and_builds_image_front_ends() -> None:
    matrix = parse('image_size = [24, 32]\ncolor = ["rgb", "grayscale"]\n' + IMAGE_DATA)
    assert len(matrix.cells) == 4 and matrix.varied == ["image_size", "color"]
    assert list(matrix.cells[0].factors()) == [f.name for f in IMAGE_FACTORS]
    assert {c.architecture for c in matrix.cells} == {"image-cnn"}  # the image default
    assert len(parse('architecture = ["image-cnn", "mobilenet-tiny"]\n' + IMAGE_DATA).cells) == 2
    specs = [c.frontend(matrix.data.clip_seconds) for c in matrix.cells]
    assert [(s.height, s.width, s.color, s.scale) for s in specs] == [
        (24, 24, "rgb", "unit"), (24, 24, "grayscale", "unit"), (32, 32, "rgb", "unit"), (32, 32, "grayscale", "unit")
    ]  # fmt: skip
    assert [s.input_shape[-1] for s in specs] == [3, 1, 3, 1]
    assert matrix.to_dict()["data"]["modality"] == "image" and "modality" not in parse(AUDIO_DATA).to_dict()["data"]
    assert matrix.digest() != parse('image_size = [24, 28]\ncolor = ["rgb", "grayscale"]\n' + IMAGE_DATA).digest()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            'sample_rate = [8000, 16000]\nfeatures = "logmel"\n' + IMAGE_DATA,
            'sample_rate, features are audio settings, but data.modality is "image"; remove them or set '
            'data.modality = "audio"',
        ),
        (
            "image_size = [24, 32]\n" + AUDIO_DATA,
            'image_size is an image setting, but data.modality is "audio"; remove it or set data.modality = "image"',
        ),
        (
            'architecture = ["image-cnn", "ds-cnn"]\n' + IMAGE_DATA,
            "architecture = 'ds-cnn' is not valid; expected an image recipe: image-cnn, mobilenet-tiny (ds-cnn is an "
            "audio recipe "
            'and data.modality is "image")',
        ),
        ('architecture = "image-cnn"\n' + AUDIO_DATA, '(image-cnn is an image recipe and data.modality is "audio")'),
        ("image_size = 4\n" + IMAGE_DATA, "image_size = 4 is not valid; expected the side of a square image"),
        ("image_size = 32.5\n" + IMAGE_DATA, "image_size = 32.5 is not valid"),
        ('color = "cmyk"\n' + IMAGE_DATA, "color = 'cmyk' is not valid; expected rgb or grayscale"),
        (IMAGE_DATA + "clip_seconds = 2.0\n", 'data.clip_seconds is an audio setting, but data.modality is "image"'),
        (IMAGE_DATA.replace('"image"', '"video"'), "data.modality = 'video' is not valid; choose from audio, image"),
    ],
)
def test_modality_mistakes_are_one_line_errors_naming_them(text: str, expected: str) -> None:
    message = error(text)
    assert expected in message and message.startswith(f"{SOURCE}: ") and "\n" not in message


def test_vision_example_parses() -> None:
    matrix = load_matrix(EXAMPLES / "matrix-vision.toml")
    assert matrix.data.modality == "image" and matrix.data.manifest.is_file()
    assert matrix.data.groups == ("lighting", "background") and 2 <= len(matrix.cells) <= 16
    assert {"image_size", "color"} <= set(matrix.varied)


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """144 images in 12 capture sessions: 4 test sessions, one per lighting x background."""
    from ondevice_audit.data.synth_shapes import generate_synth_shapes

    root = tmp_path_factory.mktemp("vision-sweep")
    generate_synth_shapes(root / "shapes", sessions_per_condition=3, images_per_class=3)
    return root


def sweep(root: Path, name: str, factors: str):
    from ondevice_audit.sweep import run_sweep

    matrix = root / f"{name}.toml"
    matrix.write_text(
        factors + '[data]\nmanifest = "shapes/manifest.csv"\ngroups = ["lighting", "background"]\nmodality = "image"\n'
        'metric = "accuracy"\nsplit = [0.5, 0.17, 0.33]\nmin_group_size = 5\nbootstrap = 200\npermutations = 200\n'
        "[training]\nepochs = 2\nbatch_size = 32\nlearning_rate = 0.003\ncalibration_samples = 50\n"
        "latency_samples = 5\n"
    )
    return run_sweep(load_matrix(matrix), root / name, cache_dir=root / "cache")


@pytest.fixture(scope="module")
def vision_sweep(shapes: Path):
    return sweep(shapes, "run", 'image_size = [16, 24]\ncolor = ["rgb", "grayscale"]\nexport = ["tflite", "onnx"]\n')


def test_every_vision_cell_is_trained_exported_and_audited(vision_sweep) -> None:
    from ondevice_audit.export.metadata import read_metadata
    from ondevice_audit.frontend import ImageFrontendSpec
    from ondevice_audit.report.document import load_report

    results = vision_sweep.results
    assert len(results) == 8 and results["status"].eq("ok").all(), results["error"].tolist()
    assert {"image_size", "color"} <= set(results.columns) and "sample_rate" not in results.columns
    assert vision_sweep.cache["misses"]["features"] == 4 and vision_sweep.cache["misses"]["train"] == 4
    assert vision_sweep.cache["misses"]["export"] == 8 and results["parity_ok"].all()
    for _, row in results.iterrows():
        folder = vision_sweep.out / "cells" / row["cell"]
        report = load_report(folder / "report.json")  # validates against the schema
        size, channels = int(row["image_size"]), 3 if row["color"] == "rgb" else 1
        assert report["model"]["input_shape"][1:] == [size, size, channels]
        assert f"image {size}x{size} {row['color']}" in report["model"]["frontend"]
        assert [a["name"] for a in report["attributes"]][:2] == ["lighting", "background"]
        metadata = read_metadata(folder / f"model.{row['export']}")
        assert metadata is not None and metadata.frontend == ImageFrontendSpec(size, size, row["color"], "unit")
        assert metadata.extra["recipe"] == "image-cnn" and metadata.extra["features"] == "image"


def test_tflite_and_onnx_cells_of_one_model_agree(vision_sweep) -> None:
    results = vision_sweep.results
    pairs = results.groupby(["image_size", "color"])
    assert pairs.ngroups == 4
    for _, pair in pairs:
        tflite, onnx = (pair[pair["export"] == fmt].iloc[0] for fmt in ("tflite", "onnx"))
        assert (tflite["runtime"], onnx["runtime"]) == ("litert", "onnxruntime")
        predictions = [
            pd.read_csv(vision_sweep.out / "cells" / row["cell"] / "predictions.csv") for row in (tflite, onnx)
        ]
        pd.testing.assert_frame_equal(*predictions)
        assert onnx["accuracy"] == pytest.approx(tflite["accuracy"]) and onnx["rb"] == pytest.approx(tflite["rb"])


def test_a_mobilenet_style_cell_runs_through_both_formats(shapes: Path) -> None:
    result = sweep(
        shapes, "mobilenet", 'architecture = "mobilenet-tiny"\ncolor = "grayscale"\nexport = ["tflite", "onnx"]\n'
    )
    results = result.results
    assert results["status"].eq("ok").all() and results["parity_ok"].all(), results["error"].tolist()
    assert set(results["architecture"]) == {"mobilenet-tiny"} and results["dense_kernels"].eq(4).all()
    predictions = [pd.read_csv(result.out / "cells" / cell / "predictions.csv") for cell in results["cell"]]
    pd.testing.assert_frame_equal(*predictions)
