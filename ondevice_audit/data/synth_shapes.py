"""A synthetic image-classification dataset whose groups differ in capture conditions, like people's photos do.

Four classes of shapes (``circle``, ``square``, ``triangle``, ``cross``) are drawn with Pillow. Every image
belongs to a *capture session* (the manifest's ``speaker``: images of one session share their light, colour
cast and background, so they are not independent, as photos of one person are not), and every session has
two group attributes:

- ``lighting``: ``bright`` (full exposure, faint sensor noise) or ``dim`` (a third of the light, low
  contrast between shape and background, strong noise), as under-exposed capture of some groups is;
- ``background``: ``plain`` (a smooth gradient) or ``cluttered`` (lines and dots around the shape).

A model trained on such data does worse on ``dim`` and ``cluttered`` images, for reasons that are known by
construction: a controlled case for the audit's vision path. The groups are not people and say nothing
about any real population.

Output is a pure function of the arguments: each session draws from a ``numpy`` generator seeded with
``seed`` and the session's own id (so a session is the same whichever others are generated), and Pillow's
drawing, resampling and PNG encoding are deterministic.
"""

from __future__ import annotations

import shutil
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

from ondevice_audit.errors import UsageError
from ondevice_audit.progress import NullProgress, Progress

__all__ = ["BACKGROUNDS", "CLASSES", "LIGHTING", "MANIFEST_COLUMNS", "generate_synth_shapes"]

CLASSES = ("circle", "square", "triangle", "cross")
LIGHTING = ("bright", "dim")
BACKGROUNDS = ("plain", "cluttered")
MANIFEST_COLUMNS = ("path", "label", "lighting", "background", "speaker")
_OVERSAMPLE = 4
"""Shapes are drawn at this multiple of the output size and downsampled, for anti-aliased edges."""
# (gain, shape/background contrast, noise sigma in 0-255 units) ranges per lighting
_LIGHT = {"bright": ((0.85, 1.0), (0.45, 0.7), (1.0, 3.0)), "dim": ((0.35, 0.5), (0.2, 0.35), (5.0, 8.0))}


def generate_synth_shapes(
    out_dir: Path,
    *,
    seed: int = 0,
    sessions_per_condition: int = 10,
    images_per_class: int = 4,
    size: int = 32,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> pd.DataFrame:
    """Write ``images/<label>/<session>_<n>.png`` and ``manifest.csv`` into ``out_dir``; returns the manifest.

    ``sessions_per_condition`` sessions for each lighting x background pair, each taking
    ``images_per_class`` images of every class, ``size`` x ``size`` RGB.
    """
    if sessions_per_condition < 1 or images_per_class < 1:
        raise UsageError("sessions per condition and images per class must be at least 1")
    if not 8 <= size <= 256:
        raise UsageError(f"image size must be between 8 and 256 pixels, got {size}")
    progress = progress or NullProgress()
    out_dir = Path(out_dir)
    manifest_path, images_dir = out_dir / "manifest.csv", out_dir / "images"
    if manifest_path.exists() or images_dir.exists():
        if not overwrite:
            raise UsageError(f"{out_dir} already holds a dataset (manifest.csv, images/); use --overwrite")
        manifest_path.unlink(missing_ok=True)
        shutil.rmtree(images_dir, ignore_errors=True)
    for label in CLASSES:
        (images_dir / label).mkdir(parents=True, exist_ok=True)

    sessions = [
        (lighting, background, f"{lighting}-{background}-s{index:02d}")
        for lighting in LIGHTING
        for background in BACKGROUNDS
        for index in range(sessions_per_condition)
    ]
    rows = []
    with progress.task("Drawing shapes", total=len(sessions) * len(CLASSES) * images_per_class) as advance:
        for lighting, background, session in sessions:
            rng = np.random.default_rng([seed, zlib.crc32(session.encode())])
            light = _session_light(rng, lighting)
            for n in range(images_per_class):
                for label in CLASSES:
                    image = _render(rng, label, background, light, size)
                    relative = f"images/{label}/{session}_{n}.png"
                    Image.fromarray(image).save(out_dir / relative, format="PNG")
                    rows.append((relative, label, lighting, background, session))
                    advance(1)
    manifest = pd.DataFrame(rows, columns=list(MANIFEST_COLUMNS))
    manifest.to_csv(manifest_path, index=False, lineterminator="\n")
    return manifest


def _session_light(rng: np.random.Generator, lighting: str) -> dict[str, float | np.ndarray]:
    """What one session's capture looks like: exposure, contrast, noise, colour cast, light direction."""
    gain, contrast, noise = (float(rng.uniform(*bounds)) for bounds in _LIGHT[lighting])
    return {
        "gain": gain,
        "contrast": contrast,
        "noise": noise,
        "cast": rng.uniform(0.8, 1.2, size=3),
        "direction": float(rng.uniform(0, 2 * np.pi)),
        "background": float(rng.uniform(0.3, 0.7)),
    }


def _render(
    rng: np.random.Generator, label: str, background: str, light: dict[str, float | np.ndarray], size: int
) -> np.ndarray:
    big = size * _OVERSAMPLE
    level = float(light["background"])
    # The shape is lighter or darker than the background by the session's contrast, in a random hue.
    sign = 1.0 if rng.random() < 0.5 else -1.0
    shape_level = float(np.clip(level + sign * float(light["contrast"]), 0.05, 0.95))
    hue = rng.uniform(0.7, 1.3, size=3)
    canvas = Image.new("RGB", (big, big), _rgb(np.full(3, level)))
    draw = ImageDraw.Draw(canvas)
    if background == "cluttered":
        for _ in range(int(rng.integers(6, 11))):
            colour = _rgb(np.clip(level + rng.uniform(-0.35, 0.35, size=3), 0, 1))
            if rng.random() < 0.6:
                points = [tuple(rng.uniform(0, big, size=2)) for _ in range(2)]
                draw.line(points, fill=colour, width=int(rng.integers(1, 3)) * _OVERSAMPLE // 2)
            else:
                x, y = rng.uniform(0, big, size=2)
                r = rng.uniform(1, 3) * _OVERSAMPLE
                draw.ellipse((x - r, y - r, x + r, y + r), fill=colour)
    radius = rng.uniform(0.28, 0.4) * big
    centre = rng.uniform(radius + 1, big - radius - 1, size=2)
    _draw_shape(draw, label, centre, radius, float(rng.uniform(0, 2 * np.pi)), _rgb(np.clip(shape_level * hue, 0, 1)))
    pixels = np.asarray(canvas.resize((size, size), Image.Resampling.LANCZOS), dtype=np.float64) / 255.0

    # Light falls off across the frame from the session's direction; then exposure, colour cast, noise.
    ys, xs = np.mgrid[0:size, 0:size] / max(size - 1, 1) - 0.5
    angle = float(light["direction"])
    gradient = 1.0 + 0.5 * (xs * np.cos(angle) + ys * np.sin(angle))
    pixels = pixels * gradient[..., None] * float(light["gain"]) * np.asarray(light["cast"])
    pixels = pixels * 255.0 + rng.normal(0.0, float(light["noise"]), size=pixels.shape)
    return np.clip(np.rint(pixels), 0, 255).astype(np.uint8)


def _draw_shape(
    draw: ImageDraw.ImageDraw, label: str, centre: np.ndarray, radius: float, turn: float, fill: tuple
) -> None:
    cx, cy = centre
    if label == "circle":
        draw.ellipse((cx - radius, cy - radius, cx + radius, cy + radius), fill=fill)
        return
    if label == "cross":
        arm, half = radius, radius * 0.32
        outline = [(arm, half), (half, half), (half, arm), (-half, arm), (-half, half), (-arm, half),
                   (-arm, -half), (-half, -half), (-half, -arm), (half, -arm), (half, -half), (arm, -half)]  # fmt: skip
    else:
        corners = 4 if label == "square" else 3
        outline = [
            (radius * np.cos(2 * np.pi * k / corners), radius * np.sin(2 * np.pi * k / corners)) for k in range(corners)
        ]
    cos, sin = np.cos(turn), np.sin(turn)
    draw.polygon([(cx + x * cos - y * sin, cy + x * sin + y * cos) for x, y in outline], fill=fill)


def _rgb(values: np.ndarray) -> tuple[int, int, int]:
    r, g, b = (int(round(float(v) * 255)) for v in values)
    return r, g, b
