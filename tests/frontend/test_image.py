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
        "animated": 0,
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


def test_a_16_bit_image_is_read_by_its_high_byte_not_clipped_white(tmp_path):
    """Pillow's ``convert`` clips 16-bit gray at 255, so a dark 16-bit photo came out white (a silent wrong input).
    Its high byte is what TensorFlow's PNG decoder keeps; the conversion is counted as before."""
    ramp = np.tile(np.arange(0, 65536, 4096, dtype=np.uint16), (16, 1))  # 0, 4096, ... 61440 across
    Image.fromarray(ramp).save(tmp_path / "deep.png")
    with Image.open(tmp_path / "deep.png") as opened:
        assert opened.mode == "I;16"
    spec = ImageFrontendSpec(height=16, width=16, color="grayscale", scale="none")
    batch = build_frontend(spec).transform([tmp_path / "deep.png"])
    np.testing.assert_array_equal(batch.inputs[0][0, :, 0], ramp[0] >> 8)  # 0, 16, ... 240
    assert batch.facts.notes(spec)[0]["converted_from"] == {"I;16": 1}


def test_deeper_pixels_without_an_8_bit_range_are_a_counted_failure(tmp_path):
    """32-bit integer or float pixels beyond 0-255 have no known 8-bit range: refused per file, not clipped."""
    Image.fromarray(np.full((16, 16), 70000, np.int32)).save(tmp_path / "wide.tif")
    Image.fromarray(np.full((16, 16), 200, np.int32)).save(tmp_path / "narrow.tif")
    batch = build_frontend(ImageFrontendSpec(height=16, width=16)).transform([tmp_path / "wide.tif",
                                                                              tmp_path / "narrow.tif"])  # fmt: skip
    assert batch.ok.tolist() == [False, True]
    assert "I pixels from 70000 to 70000, not 8-bit values; convert it to 8-bit" in batch.failures[0]
    assert batch.inputs[0].max() == pytest.approx(200 / 255)


def test_an_animated_image_is_read_at_its_first_frame_and_said(tmp_path):
    frames = [Image.new("RGB", (16, 16), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    frames[0].save(tmp_path / "moving.gif", save_all=True, append_images=frames[1:], duration=100)
    frames[1].save(tmp_path / "still.gif")
    spec = ImageFrontendSpec(height=16, width=16)
    batch = build_frontend(spec).transform([tmp_path / "moving.gif", tmp_path / "still.gif"])
    assert batch.inputs[0][..., 0].min() == pytest.approx(1.0) and batch.inputs[0][..., 2].max() == 0.0, "red: first"
    counts, warnings = batch.facts.notes(spec)
    assert counts["animated"] == 1
    assert "1 of 2 image(s) have several frames (animated GIF, WebP or PNG, multi-page TIFF); the model saw the " \
           "first frame of each" in warnings[-1]  # fmt: skip


def _with_exif(path, entry: bytes) -> None:
    """A JPEG whose EXIF block holds one hand-written IFD entry (Pillow will not write malformed ones)."""
    block = b"Exif\0\0II*\0" + (8).to_bytes(4, "little") + (1).to_bytes(2, "little") + entry + bytes(4)
    Image.new("RGB", (16, 16), (90, 90, 90)).save(path, exif=block)


def test_malformed_exif_reads_as_upright_without_a_stray_warning(tmp_path):
    """An orientation of 0, 9 or text, or an EXIF block cut short: the image is read as stored, not counted as
    oriented, and nothing is printed past the tool's own output (Pillow warns on a corrupt block)."""
    import struct
    import warnings

    files = []
    for name, entry in [("zero", struct.pack("<HHIHH", 0x0112, 3, 1, 0, 0)),
                        ("nine", struct.pack("<HHIHH", 0x0112, 3, 1, 9, 0)),
                        ("text", struct.pack("<HHI4s", 0x0112, 2, 4, b"top\0"))]:  # fmt: skip
        _with_exif(tmp_path / f"{name}.jpg", entry)
        files.append(tmp_path / f"{name}.jpg")
    Image.new("RGB", (16, 16)).save(tmp_path / "cut.jpg", exif=b"Exif\0\0II*\0\xff\xff\xff\x7f" + b"\x01" * 10)
    files.append(tmp_path / "cut.jpg")
    spec = ImageFrontendSpec(height=16, width=16)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        batch = build_frontend(spec).transform(files)
    assert batch.ok.all() and batch.facts.notes(spec)[0]["oriented"] == 0


def test_a_decompression_bomb_is_a_counted_failure_and_a_large_photo_is_read(tmp_path, monkeypatch):
    """Over twice Pillow's pixel limit an image is refused per file (it raised DecompressionBombError through the
    audit); between the limit and twice it, a large photo (108 MP phones), it is read without Pillow's warning."""
    import warnings

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # the real limit (89 M pixels) scaled down
    Image.new("L", (64, 64), 128).save(tmp_path / "bomb.png")  # 4096 pixels: over 2 x 1000
    Image.new("L", (40, 40), 128).save(tmp_path / "large.png")  # 1600: over 1000
    spec = ImageFrontendSpec(height=16, width=16)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        batch = build_frontend(spec).transform([tmp_path / "bomb.png", tmp_path / "large.png"])
    assert batch.ok.tolist() == [False, True]
    assert batch.failures[0] == "too large to decode safely (Image size (4096 pixels) exceeds limit of 2000 pixels); " \
                                "shrink it"  # fmt: skip


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
