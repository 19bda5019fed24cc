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
