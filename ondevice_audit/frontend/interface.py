"""Front-ends turn one file (audio clip, image) into the exact array a model takes as input.

A front-end's settings are data (``AudioFrontendSpec``, ``ImageFrontendSpec``) so they can travel in a
model's metadata: a model exported by this tool is audited with the features it was trained on, with no
flags. Per-file problems never abort a run: ``Frontend.transform`` returns them as ``failures``.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ondevice_audit.errors import UsageError

__all__ = [
    "AUDIO_FACTOR_FIELDS",
    "CHUNK_FILES",
    "ASPECT_TOLERANCE",
    "AudioFrontendSpec",
    "Frontend",
    "FrontendBatch",
    "FrontendError",
    "FrontendSpec",
    "ImageFacts",
    "ImageFrontendSpec",
    "InputFacts",
    "MicroFrontendSpec",
    "SampleError",
    "spec_from_dict",
]


CHUNK_FILES = 256
"""Files per front-end + inference chunk: large enough to batch, small enough to keep memory flat."""


class FrontendError(UsageError):
    """A front-end cannot be built as asked (bad settings, unknown plug-in)."""


class SampleError(Exception):
    """One file cannot be turned into an input (missing, corrupt, empty). Counted, not fatal."""


def _option(help: str, factor: str | None = None, valid: Callable[[Any], bool] | None = None) -> dict[str, Any]:
    """Field metadata: the field is a command-line option of ``audit``, ``train`` and ``sweep`` with this help,
    and with ``factor`` (what a valid level is, in words) and ``valid`` a factor of sweep matrices too."""
    return {"option": help, **({"factor": factor, "valid": valid} if factor else {})}


def _positive(value: Any) -> bool:
    return bool(value > 0)


class _Clips:
    """Samples of the fixed-length clips an audio spec makes (``clip_seconds`` at ``sample_rate``) and of the
    silence it pads them with (``pad_ms`` before and after)."""

    clip_seconds: float
    sample_rate: int
    pad_ms: float

    @property
    def n_samples(self) -> int:
        return round(self.clip_seconds * self.sample_rate)

    @property
    def pad_samples(self) -> int:
        return round(self.pad_ms * self.sample_rate / 1000)


@dataclass(frozen=True)
class AudioFrontendSpec(_Clips):
    """Audio features as in the bias study: MFCC or log-mel over fixed-length mono clips.

    Clips are mixed to mono, resampled to ``sample_rate`` when their rate differs, cut or zero-padded at
    the end to ``clip_seconds``, then framed with ``frame_length_ms`` windows every
    ``frame_step * frame_length_ms``. The model input is ``(frames, coefficients, 1)``; ``raw`` gives
    the ``(samples,)`` waveform.
    """

    kind: Literal["mfcc", "logmel", "raw"] = "mfcc"
    sample_rate: int = field(
        default=16000, metadata=_option("Sample rate clips are resampled to (Hz).", "a positive number of Hz", _positive)
    )
    clip_seconds: float = field(default=1.0, metadata=_option("Clip length: longer clips are cut, shorter padded."))
    n_mels: int = field(default=40, metadata=_option("Mel bands.", "a positive number of mel bands", _positive))
    n_mfcc: int = field(
        default=10, metadata=_option("MFCC coefficients (mfcc only).", "a positive number of coefficients", _positive)
    )
    frame_length_ms: float = field(
        default=40.0, metadata=_option("Frame (window) length in ms.", "a positive frame length in ms", _positive)
    )
    frame_step: float = field(
        default=0.5,
        metadata=_option("Hop as a fraction of the frame length.", "a hop in (0, 1] of the frame length",
                         lambda v: 0 < v <= 1),
    )  # fmt: skip
    window: Literal["hann", "hamming"] = field(
        default="hann", metadata=_option("hann or hamming.", "hann or hamming", lambda v: v in ("hann", "hamming"))
    )
    fmin: float = 20.0
    fmax: float | None = None
    pad_ms: float = 0.0
    """Silence added before and after each clip (a streaming detector needs context to settle)."""

    def __post_init__(self) -> None:
        if self.kind not in ("mfcc", "logmel", "raw"):
            raise FrontendError(f"unknown audio features {self.kind!r}: use mfcc, logmel or raw")
        if self.window not in ("hann", "hamming"):
            raise FrontendError(f"unknown window {self.window!r}: use hann or hamming")
        if self.sample_rate <= 0 or self.clip_seconds <= 0 or self.frame_length_ms <= 0:
            raise FrontendError("sample rate, clip length and frame length must be positive")
        if not 0 < self.frame_step <= 1:
            raise FrontendError(f"frame step {self.frame_step} must be a fraction of the frame length in (0, 1]")
        if self.kind == "mfcc" and not 0 < self.n_mfcc <= self.n_mels:
            raise FrontendError(f"n_mfcc ({self.n_mfcc}) must be between 1 and n_mels ({self.n_mels})")

    @property
    def win_length(self) -> int:
        return round(self.frame_length_ms * self.sample_rate / 1000)

    @property
    def hop_length(self) -> int:
        return max(1, round(self.win_length * self.frame_step))

    @property
    def input_shape(self) -> tuple[int, ...]:
        total = self.n_samples + 2 * self.pad_samples
        if self.kind == "raw":
            return (total,)
        frames = 1 + (total - self.win_length) // self.hop_length
        coefficients = self.n_mfcc if self.kind == "mfcc" else self.n_mels
        return (frames, coefficients, 1)


@dataclass(frozen=True)
class MicroFrontendSpec(_Clips):
    """The TensorFlow Lite Micro audio front-end that micro_speech-style and streaming wake-word models
    (microWakeWord) are trained on: a ``window_ms`` FFT every ``step_ms``, ``channels`` mel-like bands between
    the band limits, noise reduction, PCAN gain control and a log scale, as 16-bit values scaled by 1/25.6.

    The input is ``(frames, channels, 1)`` of 16-bit mono audio at ``sample_rate``. With microWakeWord's
    settings (the defaults) the features come from the ``pymicro-features`` package (TFLM's own C code);
    any other setting from TensorFlow's configurable ``audio_microfrontend`` op (the ``train`` extra).
    """

    kind: Literal["micro"] = "micro"
    sample_rate: int = 16000
    clip_seconds: float = 1.0
    window_ms: float = field(default=30.0, metadata=_option("micro: window length in ms."))
    step_ms: float = field(default=10.0, metadata=_option("micro: window step in ms."))
    channels: int = field(default=40, metadata=_option("micro: filterbank channels."))
    upper_band_limit: float = field(default=7500.0, metadata=_option("micro: highest filterbank frequency (Hz)."))
    lower_band_limit: float = field(default=125.0, metadata=_option("micro: lowest filterbank frequency (Hz)."))
    enable_pcan: bool = True
    min_signal_remaining: float = 0.05
    pad_ms: float = 0.0
    """Silence added before and after each clip (a streaming detector needs context to settle)."""

    def __post_init__(self) -> None:
        if self.sample_rate <= 0 or self.clip_seconds <= 0 or self.window_ms <= 0 or self.step_ms <= 0:
            raise FrontendError("sample rate, clip length, window and step must be positive")
        if not 0 < self.lower_band_limit < self.upper_band_limit < self.sample_rate / 2:
            raise FrontendError(
                f"the micro front-end's bands {self.lower_band_limit:g}-{self.upper_band_limit:g} Hz do not fit "
                f"{self.sample_rate} Hz audio (the upper limit must be below {self.sample_rate / 2:g} Hz): lower "
                "--upper-band-limit or raise --sample-rate"
            )
        if self.channels < 1 or self.pad_ms < 0:
            raise FrontendError("the micro front-end needs at least one channel and a padding of 0 ms or more")

    @property
    def window_samples(self) -> int:
        return round(self.window_ms * self.sample_rate / 1000)

    @property
    def step_samples(self) -> int:
        return round(self.step_ms * self.sample_rate / 1000)

    @property
    def input_shape(self) -> tuple[int, ...]:
        total = self.n_samples + 2 * self.pad_samples
        return (1 + (total - self.window_samples) // self.step_samples, self.channels, 1)


@dataclass(frozen=True)
class ImageFrontendSpec:
    """Images resized to ``height x width``, in RGB or grayscale, scaled to [0, 1], [-1, 1] or [0, 255]."""

    height: int = 32
    width: int = 32
    color: Literal["rgb", "grayscale"] = "rgb"
    scale: Literal["unit", "symmetric", "none"] = "unit"
    kind: Literal["image"] = "image"

    def __post_init__(self) -> None:
        if self.color not in ("rgb", "grayscale"):
            raise FrontendError(f"unknown colour mode {self.color!r}: use rgb or grayscale")
        if self.scale not in ("unit", "symmetric", "none"):
            raise FrontendError(f"unknown scaling {self.scale!r}: use unit, symmetric or none")
        if self.height <= 0 or self.width <= 0:
            raise FrontendError("image height and width must be positive")

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (self.height, self.width, 3 if self.color == "rgb" else 1)


FrontendSpec = AudioFrontendSpec | MicroFrontendSpec | ImageFrontendSpec
AUDIO_FACTOR_FIELDS = tuple(f.name for f in dataclasses.fields(AudioFrontendSpec) if "factor" in f.metadata)
"""The ``AudioFrontendSpec`` fields that are sweep factors (with ``kind``, the factor ``features``)."""


def spec_from_dict(data: dict[str, Any]) -> FrontendSpec:
    """Rebuild a spec from its ``dataclasses.asdict`` form (as stored in model metadata)."""
    cls: type[AudioFrontendSpec] | type[MicroFrontendSpec] | type[ImageFrontendSpec]
    cls = {"image": ImageFrontendSpec, "micro": MicroFrontendSpec}.get(str(data.get("kind")), AudioFrontendSpec)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise FrontendError(f"unknown front-end settings {unknown} for {cls.__name__}")
    return cls(**data)


ASPECT_TOLERANCE = 0.01
"""An image whose width/height ratio differs from the model's by more than this share is counted as distorted."""


def _size(size: tuple[int, int] | None) -> str | None:
    return None if size is None else f"{size[0]}x{size[1]}"


@dataclass
class ImageFacts:
    """What the image front-end changed to make images fit, counted: resized to the model's width x height (and
    enlarged, where smaller), stretched to another aspect ratio, converted from another colour mode. A face
    photographed 4:3 and squeezed into a square input is not the face the model was trained on, and grayscale or
    transparent images lose what a skin-tone audit measures; the report must say so."""

    images: int = 0
    """Images decoded."""
    resized: int = 0
    enlarged: int = 0
    """Of the resized: narrower or lower than the input, so the model sees interpolated pixels."""
    smallest: tuple[int, int] | None = None
    """(width, height) of the image of fewest pixels."""
    largest: tuple[int, int] | None = None
    distorted: int = 0
    """Images whose aspect ratio differs from the input's by more than ``ASPECT_TOLERANCE``."""
    most_stretched: float = 1.0
    """The largest factor by which one axis was stretched against the other (1: none)."""
    converted_from: dict[str, int] = field(default_factory=dict)
    """Pillow colour mode found -> images converted from it."""
    oriented: int = 0
    """Images whose EXIF orientation tag says a viewer shows them rotated or mirrored; read as stored."""
    animated: int = 0
    """Images of several frames (animated GIF, WebP or PNG, multi-page TIFF): the first frame was read."""

    def record(
        self, size: tuple[int, int], mode: str, spec: ImageFrontendSpec, orientation: int = 1, frames: int = 1
    ) -> None:
        """One image of ``size`` (width, height) in colour ``mode``, EXIF ``orientation`` (1: upright) and
        ``frames`` frames, made to fit ``spec``."""
        width, height = size
        self.images += 1
        self.animated += int(frames > 1)
        self.oriented += int(orientation in range(2, 9))  # the tag's rotations and mirrorings; other values are malformed
        if size != (spec.width, spec.height):
            self.resized += 1
            self.enlarged += int(width < spec.width or height < spec.height)
            area = width * height
            if self.smallest is None or area < self.smallest[0] * self.smallest[1]:
                self.smallest = size
            if self.largest is None or area > self.largest[0] * self.largest[1]:
                self.largest = size
        stretch = (width / height) / (spec.width / spec.height)
        stretch = max(stretch, 1 / stretch)
        if stretch > 1 + ASPECT_TOLERANCE:
            self.distorted += 1
            self.most_stretched = max(self.most_stretched, stretch)
        if mode != _pillow_mode(spec):
            self.converted_from[mode] = self.converted_from.get(mode, 0) + 1

    def merge(self, other: ImageFacts) -> None:
        self.images += other.images
        self.resized += other.resized
        self.enlarged += other.enlarged
        for size in (other.smallest, other.largest):
            if size is not None:  # the area comparisons of ``record``, without counting the image again
                if self.smallest is None or size[0] * size[1] < self.smallest[0] * self.smallest[1]:
                    self.smallest = size
                if self.largest is None or size[0] * size[1] > self.largest[0] * self.largest[1]:
                    self.largest = size
        self.distorted += other.distorted
        self.most_stretched = max(self.most_stretched, other.most_stretched)
        for mode, n in other.converted_from.items():
            self.converted_from[mode] = self.converted_from.get(mode, 0) + n
        self.oriented += other.oriented
        self.animated += other.animated

    def to_dict(self) -> dict[str, Any]:
        return {
            "images": self.images,
            "resized": self.resized,
            "enlarged": self.enlarged,
            "smallest": _size(self.smallest),
            "largest": _size(self.largest),
            "distorted": self.distorted,
            "most_stretched": round(self.most_stretched, 3) if self.distorted else None,
            "converted_from": dict(sorted(self.converted_from.items())),
            "oriented": self.oriented,
            "animated": self.animated,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ImageFacts:
        """The inverse of ``to_dict``."""

        def size(text: str | None) -> tuple[int, int] | None:
            return None if text is None else (int(text.split("x")[0]), int(text.split("x")[1]))

        return cls(data["images"], data["resized"], data["enlarged"], size(data["smallest"]), size(data["largest"]),
                   data["distorted"], data["most_stretched"] or 1.0, dict(data["converted_from"]),
                   data.get("oriented", 0), data.get("animated", 0))  # fmt: skip

    def warnings(self, spec: ImageFrontendSpec) -> list[str]:
        notes = []
        if self.resized:
            sizes = _size(self.smallest) if self.smallest == self.largest else f"{_size(self.smallest)} to {_size(self.largest)}"
            enlarged = f"; {self.enlarged} were smaller and enlarged (interpolated pixels)" if self.enlarged else ""
            notes.append(f"{self.resized} of {self.images} image(s) were resized to the model's {spec.width}x"
                         f"{spec.height} (found {sizes}){enlarged}")  # fmt: skip
        if self.distorted:
            notes.append(
                f"{self.distorted} image(s) have another aspect ratio than the model's {spec.width}x{spec.height} "
                f"and were stretched to it (up to {self.most_stretched:.2f}x): faces and shapes are distorted, and "
                f"differently where groups come from different cameras; crop them to the model's aspect ratio first"
            )
        if self.converted_from:
            found = ", ".join(f"{mode} ×{n}" for mode, n in sorted(self.converted_from.items()))
            notes.append(
                f"{sum(self.converted_from.values())} of {self.images} image(s) were converted to {_pillow_mode(spec)} "
                f"from another colour mode ({found}): colour an image lacks (grayscale) or loses (transparency, "
                "16-bit depth) can differ between groups"
            )
        if self.oriented:
            notes.append(
                f"{self.oriented} of {self.images} image(s) carry an EXIF orientation (a viewer shows them rotated "
                "or mirrored); they were read as stored, as TensorFlow's and Pillow's decoders read them: if the "
                "device's camera pipeline turns images upright, turn these files upright before the audit"
            )
        if self.animated:
            notes.append(
                f"{self.animated} of {self.images} image(s) have several frames (animated GIF, WebP or PNG, "
                "multi-page TIFF); the model saw the first frame of each: extract the frame the device sees if it is "
                "another"
            )
        return notes


def _pillow_mode(spec: ImageFrontendSpec) -> str:
    """The Pillow mode images are converted to for ``spec``."""
    return "RGB" if spec.color == "rgb" else "L"


@dataclass
class InputFacts:
    """What a front-end changed to make files fit its input, counted: clips cut or zero-padded to the clip
    length, resampled to the sample rate, mixed down to mono; images in ``image``. A model audited on ten-minute
    recordings hears their first second; the report must say so."""

    clips: int = 0
    """Clips decoded."""
    cut: int = 0
    longest_seconds: float = 0.0
    padded: int = 0
    shortest_seconds: float | None = None
    resampled_from: dict[int, int] = field(default_factory=dict)
    """Sample rate found -> clips resampled from it."""
    mixed_from: dict[int, int] = field(default_factory=dict)
    """Channels found -> clips mixed down from them."""
    image: ImageFacts = field(default_factory=ImageFacts)

    def record(self, seconds: float, n_samples: int, length: int, rate: int, target_rate: int, channels: int) -> None:
        """One clip of ``seconds`` (``length`` samples after resampling, ``n_samples`` wanted)."""
        self.clips += 1
        if length > n_samples:
            self.cut += 1
            self.longest_seconds = max(self.longest_seconds, seconds)
        elif length < n_samples:
            self.padded += 1
            self.shortest_seconds = seconds if self.shortest_seconds is None else min(self.shortest_seconds, seconds)
        if rate != target_rate:
            self.resampled_from[rate] = self.resampled_from.get(rate, 0) + 1
        if channels != 1:
            self.mixed_from[channels] = self.mixed_from.get(channels, 0) + 1

    def merge(self, other: InputFacts) -> None:
        self.clips += other.clips
        self.cut += other.cut
        self.longest_seconds = max(self.longest_seconds, other.longest_seconds)
        self.padded += other.padded
        shortest = [x for x in (self.shortest_seconds, other.shortest_seconds) if x is not None]
        self.shortest_seconds = min(shortest) if shortest else None
        for mine, theirs in ((self.resampled_from, other.resampled_from), (self.mixed_from, other.mixed_from)):
            for key, n in theirs.items():
                mine[key] = mine.get(key, 0) + n
        self.image.merge(other.image)

    def to_dict(self) -> dict[str, Any]:
        return {
            "clips": self.clips,
            "cut": self.cut,
            "longest_seconds": round(self.longest_seconds, 3) if self.cut else None,
            "padded": self.padded,
            "shortest_seconds": None if self.shortest_seconds is None else round(self.shortest_seconds, 3),
            "resampled_from": {str(rate): n for rate, n in sorted(self.resampled_from.items())},
            "mixed_from": {str(channels): n for channels, n in sorted(self.mixed_from.items())},
            **({"image": self.image.to_dict()} if self.image.images else {}),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InputFacts:
        """The inverse of ``to_dict``."""
        return cls(
            data.get("clips", 0),
            data["cut"],
            data["longest_seconds"] or 0.0,
            data["padded"],
            data["shortest_seconds"],
            {int(rate): n for rate, n in data["resampled_from"].items()},
            {int(channels): n for channels, n in data["mixed_from"].items()},
            ImageFacts.from_dict(data["image"]) if "image" in data else ImageFacts(),
        )

    def notes(self, spec: Any) -> tuple[dict[str, Any] | None, list[str]]:
        """The counts a report states for front-end ``spec`` (``samples.inputs``) and the warnings they call
        for; None and none for a front-end that counts nothing (a plug-in)."""
        if isinstance(spec, ImageFrontendSpec):
            return self.image.to_dict(), self.image.warnings(spec)
        if isinstance(spec, AudioFrontendSpec | MicroFrontendSpec):
            return self.to_dict(), self._audio_warnings(spec.clip_seconds, spec.sample_rate)
        return None, []

    def _audio_warnings(self, clip_seconds: float, sample_rate: int) -> list[str]:
        notes = []
        if self.cut:
            notes.append(
                f"{self.cut} clip(s) longer than the front-end's {clip_seconds:g} s were cut to it (longest "
                f"{self.longest_seconds:.3g} s): the model heard only their first {clip_seconds:g} s"
            )
        if self.padded:
            notes.append(
                f"{self.padded} clip(s) shorter than {clip_seconds:g} s were zero-padded (shortest "
                f"{self.shortest_seconds:.3g} s)"
            )
        resampled = sum(self.resampled_from.values())
        if resampled:
            found = ", ".join(f"{rate} Hz ×{n}" for rate, n in sorted(self.resampled_from.items()))
            mixed = len(self.resampled_from) > 1 or resampled < self.clips
            caveat = ": the clips' rates differ, so groups recorded at other rates may differ for that alone"
            notes.append(
                f"{resampled} of {self.clips} clip(s) were resampled to {sample_rate} Hz (found {found})"
                + (caveat if mixed else "")
            )
        if self.mixed_from:
            found = ", ".join(f"{channels} channels ×{n}" for channels, n in sorted(self.mixed_from.items()))
            notes.append(f"{sum(self.mixed_from.values())} clip(s) were mixed down to mono ({found})")
        return notes


@dataclass
class FrontendBatch:
    """Inputs for the files that worked, and why the others did not."""

    inputs: np.ndarray
    """Model inputs, one row per file that worked, in the order of the paths given."""
    ok: np.ndarray
    """Boolean mask over the paths given: True where ``inputs`` has a row."""
    failures: dict[int, str] = field(default_factory=dict)
    """Index of a failed path -> reason."""
    facts: InputFacts = field(default_factory=InputFacts)
    """What was changed to make the files fit (audio front-ends count it; others leave it empty)."""


class Frontend(ABC):
    """Turns files into model inputs; subclasses implement ``load_one`` and may batch in ``transform``."""

    description: str = ""

    @abstractmethod
    def load_one(self, path: Path) -> np.ndarray:
        """One file to one input array; raise ``SampleError`` for a bad file."""

    def load_counted(self, path: Path, facts: InputFacts) -> np.ndarray:
        """``load_one``, counting in ``facts`` what was changed to make the file fit (audio front-ends do)."""
        return self.load_one(path)
    def files(self) -> list[Path]:
        """Files whose content defines the front-end beyond its settings (a plug-in's module): reports hash them
        as inputs."""
        return []

    def transform(self, paths: Sequence[Path]) -> FrontendBatch:
        rows: list[np.ndarray] = []
        ok = np.zeros(len(paths), dtype=bool)
        failures: dict[int, str] = {}
        facts = InputFacts()
        for i, path in enumerate(paths):
            try:
                row = np.asarray(self.load_counted(path, facts), dtype=np.float32)
            except SampleError as exc:
                failures[i] = str(exc)
                continue
            if not np.all(np.isfinite(row)):
                failures[i] = "front-end produced NaN or infinite values"
                continue
            rows.append(row)
            ok[i] = True
        return FrontendBatch(_stack(rows), ok, failures, facts)


def _stack(rows: list[np.ndarray]) -> np.ndarray:
    if not rows:
        return np.zeros((0,), dtype=np.float32)
    shapes = {r.shape for r in rows}
    if len(shapes) > 1:
        raise FrontendError(f"the front-end returned inputs of different shapes: {sorted(shapes)}")
    return np.stack(rows).astype(np.float32, copy=False)
