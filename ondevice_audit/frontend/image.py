"""Image front-end: decode with Pillow, convert colour mode, resize, scale; what had to change is counted."""

from __future__ import annotations

import warnings
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
            with warnings.catch_warnings():
                # a corrupt EXIF block reads as none (upright); an image between Pillow's bomb warning and its
                # error is a large photo (108 MP phones), decoded; above the error it is refused below, per file
                warnings.filterwarnings("ignore", category=UserWarning, module="PIL")
                warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
                with Image.open(path) as opened:
                    size, mode, frames = opened.size, opened.mode, getattr(opened, "n_frames", 1)
                    orientation = opened.getexif().get(_EXIF_ORIENTATION, 1)  # any malformed value: upright
                    image = _eight_bit(opened).convert("RGB" if self.spec.color == "rgb" else "L")
                    image = image.resize((self.spec.width, self.spec.height), Image.Resampling.BILINEAR)
                    pixels = np.asarray(image, dtype=np.float32)
        except Image.DecompressionBombError as exc:
            raise SampleError(f"too large to decode safely ({str(exc).split(', could be')[0]}); shrink it") from None
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            raise SampleError(f"unreadable image ({exc})") from None
        facts.image.record(size, mode, self.spec, orientation, frames)
        if pixels.ndim == 2:
            pixels = pixels[..., None]
        factor, offset = _SCALES[self.spec.scale]
        return pixels * factor + offset


def _eight_bit(image: Image.Image) -> Image.Image:
    """A 16-bit grayscale image (``I;16``) as 8-bit by its high byte, as TensorFlow's PNG decoder and Pillow's own
    16-bit RGB reduce them: Pillow's ``convert`` clips it instead, so a 16-bit photo would come out white. Deeper
    integer or float pixels outside 0-255 have no known 8-bit range: the file is refused rather than clipped."""
    if image.mode.startswith("I;16"):
        return Image.fromarray((np.asarray(image).astype(np.uint16) >> 8).astype(np.uint8), "L")
    if image.mode in ("I", "F"):
        values = np.asarray(image)
        low, high = float(values.min()), float(values.max())
        if low < 0 or high > 255:
            raise ValueError(f"{image.mode} pixels from {low:g} to {high:g}, not 8-bit values; convert it to 8-bit")
    return image
