import numpy as np
import pytest
from PIL import Image

from ondevice_audit.frontend import ImageFrontendSpec, build_frontend


@pytest.mark.parametrize(("color", "scale", "channels", "low", "high"),
                         [("rgb", "unit", 3, 0.0, 1.0), ("grayscale", "symmetric", 1, -1.0, 1.0)])  # fmt: skip
def test_image_front_end(tmp_path, color, scale, channels, low, high):
    pixels = np.zeros((20, 40, 3), np.uint8)
    pixels[:, 20:] = 255
    Image.fromarray(pixels).save(tmp_path / "half.png")
    (tmp_path / "bad.png").write_bytes(b"not a png")
    spec = ImageFrontendSpec(height=8, width=16, color=color, scale=scale)
    batch = build_frontend(spec).transform([tmp_path / "half.png", tmp_path / "bad.png"])
    assert batch.ok.tolist() == [True, False] and batch.failures[1].startswith("unreadable image")
    image = batch.inputs[0]
    assert image.shape == (8, 16, channels)
    assert image[:, 0].max() == pytest.approx(low) and image[:, -1].min() == pytest.approx(high)


def _save(path, size, mode):
    """A real image file of ``size`` (width, height) in Pillow colour ``mode``."""
    Image.new("RGB", size, (200, 120, 60)).convert(mode).save(path)
    return path


@pytest.fixture
def mixed_images(tmp_path):
    """Images as a face dataset gathers them: the model's size, bigger, 4:3, small grayscale portrait, RGBA,
    palette; one unreadable."""
    return [
        _save(tmp_path / "fits.png", (16, 16), "RGB"),
        _save(tmp_path / "bigger.png", (32, 32), "RGB"),
        _save(tmp_path / "four-three.jpg", (40, 30), "RGB"),
        _save(tmp_path / "small-gray.png", (8, 16), "L"),
        _save(tmp_path / "alpha.png", (16, 16), "RGBA"),
        _save(tmp_path / "palette.png", (16, 16), "P"),
        tmp_path / "missing.png",
    ]


def test_resized_stretched_and_converted_images_are_counted(mixed_images):
    spec = ImageFrontendSpec(height=16, width=16)
    batch = build_frontend(spec).transform(mixed_images)
    assert batch.ok.tolist() == [True] * 6 + [False]
    counts, warnings = batch.facts.notes(spec)
    assert counts == {
        "images": 6,
        "resized": 3,  # 32x32, 40x30, 8x16
        "enlarged": 1,  # 8x16
        "smallest": "8x16",
        "largest": "40x30",
        "distorted": 2,  # 40x30 is 4:3, 8x16 is 1:2
        "most_stretched": 2.0,
        "converted_from": {"L": 1, "P": 1, "RGBA": 1},
        "oriented": 0,
    }
    assert warnings == [
        "3 of 6 image(s) were resized to the model's 16x16 (found 8x16 to 40x30); 1 were smaller and enlarged "
        "(interpolated pixels)",
        "2 image(s) have another aspect ratio than the model's 16x16 and were stretched to it (up to 2.00x): faces "
        "and shapes are distorted, and differently where groups come from different cameras; crop them to the "
        "model's aspect ratio first",
        "3 of 6 image(s) were converted to RGB from another colour mode (L ×1, P ×1, RGBA ×1): colour an image "
        "lacks (grayscale) or loses (transparency, 16-bit depth) can differ between groups",
    ]
    # a grayscale model converts the colour images instead; a 4:3 model takes the 40x30 image undistorted
    grey = ImageFrontendSpec(height=30, width=40, color="grayscale")
    counts = build_frontend(grey).transform(mixed_images).facts.notes(grey)[0]
    assert (counts["resized"], counts["enlarged"], counts["distorted"]) == (5, 5, 5)
    assert counts["converted_from"] == {"P": 1, "RGB": 3, "RGBA": 1}


def test_exif_orientation_is_counted_and_the_pixels_read_as_stored(tmp_path):
    """A phone photo tagged "rotate 90°" is read as its bytes lie (as TensorFlow's decoders read it), and said."""
    pixels = np.zeros((16, 16, 3), np.uint8)
    pixels[:, :8] = 255  # left half white
    exif = Image.Exif()
    exif[0x0112] = 6  # viewers turn it 90° clockwise
    Image.fromarray(pixels).save(tmp_path / "tagged.jpg", exif=exif, quality=100)
    exif[0x0112] = 1
    Image.fromarray(pixels).save(tmp_path / "upright.jpg", exif=exif, quality=100)
    spec = ImageFrontendSpec(height=16, width=16)
    batch = build_frontend(spec).transform([tmp_path / "tagged.jpg", tmp_path / "upright.jpg"])
    counts, warnings = batch.facts.notes(spec)
    assert counts["oriented"] == 1
    assert warnings == [
        "1 of 2 image(s) carry an EXIF orientation (a viewer shows them rotated or mirrored); they were read as "
        "stored, as TensorFlow's and Pillow's decoders read them: if the device's camera pipeline turns images "
        "upright, turn these files upright before the audit"
    ]
    np.testing.assert_array_equal(batch.inputs[0], batch.inputs[1])  # the same stored pixels, not turned


def test_image_counts_survive_a_merge_and_a_round_trip(mixed_images):
    from ondevice_audit.frontend.interface import InputFacts

    spec = ImageFrontendSpec(height=16, width=16)
    frontend = build_frontend(spec)
    whole = frontend.transform(mixed_images).facts
    joined = InputFacts()
    for part in (mixed_images[:3], mixed_images[3:]):  # as the sweep joins shards, through their JSON
        joined.merge(InputFacts.from_dict(frontend.transform(part).facts.to_dict()))
    assert joined.notes(spec) == whole.notes(spec)
    assert whole.notes(None) == (None, [])  # a plug-in counts nothing


def _image_model(path, size, labels):
    """An ONNX classifier of ``size`` x ``size`` RGB images: mean of each channel, then a fixed linear layer."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weights = numpy_helper.from_array(np.array([[3.0, -3.0], [-1.0, 1.0], [0.0, 0.0]], np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["x"], ["m"], axes=[1, 2], keepdims=0),
         helper.make_node("MatMul", ["m", "w"], ["z"]), helper.make_node("Softmax", ["z"], ["y"], axis=1)],
        "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, size, size, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, len(labels)])], [weights],
    )  # fmt: skip
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8), path)
    return path


@pytest.mark.parametrize("fmt", ["json", "markdown", "html", "table"])
def test_an_image_audit_reports_the_counts_in_every_format(mixed_images, tmp_path, fmt):
    import pandas as pd
    from typer.testing import CliRunner

    from ondevice_audit.cli import app

    files = mixed_images[:6]
    pd.DataFrame({"path": [p.name for p in files], "label": ["warm", "cool"] * 3,
                  "tone": ["light", "dark"] * 3}).to_csv(tmp_path / "manifest.csv", index=False)  # fmt: skip
    (tmp_path / "labels.txt").write_text("warm\ncool\n")
    model = _image_model(tmp_path / "model.onnx", 16, ["warm", "cool"])
    out = tmp_path / f"report.{fmt}"
    result = CliRunner().invoke(app, ["audit", str(model), "--data", str(tmp_path / "manifest.csv"), "-g", "tone",
                                      "--features", "image", "--image-size", "16x16", "--labels",
                                      str(tmp_path / "labels.txt"), "--bootstrap", "0", "--permutations", "0",
                                      "--min-group-size", "1", "-f", fmt, "-o", str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    text = " ".join(out.read_text().split())  # a table wraps its lines
    for said in ("3 of 6 image(s) were resized to the model's 16x16", "2 image(s) have another aspect ratio",
                 "up to 2.00x", "3 of 6 image(s) were converted to RGB"):  # fmt: skip
        assert said in text or said.replace("'", "&#x27;") in text, said
    if fmt == "json":
        import json

        report = json.loads(out.read_text())
        assert report["samples"]["inputs"]["resized"] == 3 and report["samples"]["inputs"]["distorted"] == 2
