"""Image front-end: decode with Pillow, convert colour mode, resize, scale; what had to change is counted."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ondevice_audit.frontend.interface import Frontend, ImageFrontendSpec, InputFacts, SampleError

__all__ = ["ImageFrontend"]

_EXIF_ORIENTATION = 0x0112
_SCALES = {"unit": (1 / 255.0, 0.0), "symmetric": (2 / 255.0, -1.0), "none": (1.0, 0.0)}


class ImageFrontend(Frontend):
    def __init__(self, spec: ImageFrontendSpec):
        self.spec = spec
        self.description = f"image {spec.height}x{spec.width} {spec.color}, scale {spec.scale}"

    def load_one(self, path: Path) -> np.ndarray:
        return self.load_counted(path, InputFacts())

    def load_counted(self, path: Path, facts: InputFacts) -> np.ndarray:
        """The image as the model's input; its size and colour mode, when they differ from the input's, are
        counted in ``facts.image`` (resized, stretched to another aspect ratio, converted, EXIF-rotated)."""
        if not path.is_file():
            raise SampleError("file not found")
        try:
            with Image.open(path) as opened:
                size, mode = opened.size, opened.mode
                orientation = opened.getexif().get(_EXIF_ORIENTATION, 1)  # any malformed value: upright
                image = opened.convert("RGB" if self.spec.color == "rgb" else "L")
                image = image.resize((self.spec.width, self.spec.height), Image.Resampling.BILINEAR)
                pixels = np.asarray(image, dtype=np.float32)
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            raise SampleError(f"unreadable image ({exc})") from None
        facts.image.record(size, mode, self.spec, orientation)
        if pixels.ndim == 2:
            pixels = pixels[..., None]
        factor, offset = _SCALES[self.spec.scale]
        return pixels * factor + offset
