"""Image front-end: decode with Pillow, convert colour mode, resize, scale."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ondevice_audit.frontend.interface import Frontend, ImageFrontendSpec, SampleError

__all__ = ["ImageFrontend"]

_SCALES = {"unit": (1 / 255.0, 0.0), "symmetric": (2 / 255.0, -1.0), "none": (1.0, 0.0)}


class ImageFrontend(Frontend):
    def __init__(self, spec: ImageFrontendSpec):
        self.spec = spec
        self.description = f"image {spec.height}x{spec.width} {spec.color}, scale {spec.scale}"

    def load_one(self, path: Path) -> np.ndarray:
        if not path.is_file():
            raise SampleError("file not found")
        try:
            with Image.open(path) as opened:
                image = opened.convert("RGB" if self.spec.color == "rgb" else "L")
                image = image.resize((self.spec.width, self.spec.height), Image.Resampling.BILINEAR)
                pixels = np.asarray(image, dtype=np.float32)
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            raise SampleError(f"unreadable image ({exc})") from None
        if pixels.ndim == 2:
            pixels = pixels[..., None]
        factor, offset = _SCALES[self.spec.scale]
        return pixels * factor + offset
