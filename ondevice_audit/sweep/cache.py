"""A content-addressed cache of sweep stages, safe against crashes and concurrent writers.

An entry is a folder named by the SHA-256 of everything that determines its content: the stage, its
settings, the keys of the entries it was made from, the data hash and the versions of the toolchain. So a
changed setting, dataset or TensorFlow release misses the cache instead of reusing a stale model, and two
sweeps that share work share entries. An entry is built in a temporary folder beside its final place and
renamed into it (``os.replace``, atomic on one file system): after a crash or SIGKILL an entry is either
complete or absent, never half-written. Temporary folders of dead processes are removed on the next run.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

from ondevice_audit import __version__

__all__ = [
    "CACHE_FORMAT",
    "Cache",
    "atomic_write_bytes",
    "atomic_write_text",
    "default_cache_dir",
    "digest",
    "link_or_copy",
    "toolchain",
]

CACHE_FORMAT = 1
"""Bumped when the layout or meaning of entries changes, so old entries are never read."""
_TEMP_PREFIX = ".tmp-"
_TOOLCHAIN = (
    "numpy",
    "scipy",
    "soxr",
    "tensorflow",
    "tf-keras",
    "tensorflow-model-optimization",
    "tf2onnx",
    "onnx",
    "onnxruntime",
    "ai-edge-litert",
)


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/ondevice-audit/sweep``, by default ``~/.cache/ondevice-audit/sweep``."""
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "ondevice-audit" / "sweep"


@cache
def toolchain() -> dict[str, str]:
    """Versions of the packages whose behaviour is baked into cached features, models and files."""
    versions = {"ondevice-audit": __version__}
    for name in _TOOLCHAIN:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "absent"
    return versions


def digest(payload: Any) -> str:
    """SHA-256 of canonical JSON: equal settings give equal keys whatever the dict order."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


class Cache:
    def __init__(self, root: Path):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def key(self, stage: str, settings: dict[str, Any]) -> str:
        return digest({"format": CACHE_FORMAT, "stage": stage, "toolchain": toolchain(), "settings": settings})

    def entry(self, stage: str, key: str) -> Path:
        return self.root / stage / key[:2] / key

    def has(self, stage: str, key: str) -> bool:
        return self.entry(stage, key).is_dir()

    @contextmanager
    def writing(self, stage: str, key: str) -> Iterator[Path]:
        """Yield an empty folder to fill; it becomes the entry only if the block finishes."""
        final = self.entry(stage, key)
        final.parent.mkdir(parents=True, exist_ok=True)
        temp = Path(tempfile.mkdtemp(prefix=f"{_TEMP_PREFIX}{os.getpid()}-", dir=final.parent))
        try:
            yield temp
        except BaseException:
            shutil.rmtree(temp, ignore_errors=True)
            raise
        try:
            os.replace(temp, final)
        except OSError:
            # Another process finished the same entry first; both were made from the same inputs.
            shutil.rmtree(temp, ignore_errors=True)
            if not final.is_dir():
                raise

    def remove_stale(self) -> int:
        """Delete temporary folders left by processes that no longer run; return how many."""
        removed = 0
        for temp in self.root.glob(f"*/*/{_TEMP_PREFIX}*"):
            pid = temp.name[len(_TEMP_PREFIX) :].split("-", 1)[0]
            if pid.isdigit() and not _alive(int(pid)):
                shutil.rmtree(temp, ignore_errors=True)
                removed += 1
        return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write via a temporary file in the same folder and ``os.replace``: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(prefix=f"{_TEMP_PREFIX}{os.getpid()}-", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def link_or_copy(source: Path, target: Path) -> None:
    """Put ``source`` at ``target`` atomically: a hard link (entries are never modified), else a copy."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists() and os.path.samefile(source, target):
        return  # already linked (a resumed sweep); renaming a link onto itself would be a no-op anyway
    temp = target.with_name(f"{_TEMP_PREFIX}{os.getpid()}-{target.name}")
    temp.unlink(missing_ok=True)
    try:
        os.link(source, temp)
    except OSError:
        shutil.copyfile(source, temp)
    os.replace(temp, target)
