"""A content-addressed cache of sweep stages, safe against crashes, concurrent writers and damaged files.

An entry is a folder named by the SHA-256 of everything that determines its content: the stage, its
settings (with the keys of the entries it was made from and the data hash) and the versions of the
distributions that stage depends on. So a changed setting, dataset or TensorFlow release misses the cache
instead of reusing a stale model, and two sweeps that share work share entries. An entry is built in a temporary
folder beside its final place and renamed into it (``os.replace``, atomic on one file system): after a crash or
SIGKILL an entry is either complete or absent, never half-written. Temporary folders of dead processes are
removed on the next run.

An entry is not trusted for existing: when it is written, the size and SHA-256 of every file in it are recorded
(``.entry.json``), and ``verify`` checks them before a sweep uses it, so a file truncated by a full disk, flipped
by a bad sector or edited by hand is found, discarded and computed again instead of feeding every sweep that
shares it. Nothing outside the cache links to its files (``copy_file``), so editing a sweep's output cannot
damage it. Files and folders get the user's umask, as any other tool's output does.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from ondevice_audit._files import sha256_of

__all__ = [
    "CACHE_FORMAT",
    "Cache",
    "atomic_write_bytes",
    "atomic_write_text",
    "copy_file",
    "default_cache_dir",
    "digest",
    "umask",
]

CACHE_FORMAT = 3
"""Bumped when the layout or meaning of entries changes, so old entries are never read (3: entries record the
size and hash of their files)."""
_TEMP_PREFIX = ".tmp-"
_TRASH_PREFIX = ".discarded-"
ENTRY_FILES = ".entry.json"
"""In every entry: ``{relative path: [size, sha256]}`` of its other files, written last."""


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/ondevice-audit/sweep``, by default ``~/.cache/ondevice-audit/sweep``."""
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "ondevice-audit" / "sweep"


def digest(payload: Any) -> str:
    """SHA-256 of canonical JSON: equal settings give equal keys whatever the dict order."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


class Keyed(Protocol):
    """Settings a cache key is derived from (``sweep.stages.base.StageSettings``)."""

    def payload(self) -> dict[str, Any]: ...


class Cache:
    def __init__(self, root: Path):
        self.root = root

    def key(self, settings: Keyed) -> str:
        """The entry key of a stage's settings: everything they say, plus the cache format."""
        return digest({"format": CACHE_FORMAT, **settings.payload()})

    def entry(self, stage: str, key: str) -> Path:
        return self.root / stage / key[:2] / key

    def has(self, stage: str, key: str) -> bool:
        return self.entry(stage, key).is_dir()

    def verify(self, stage: str, key: str) -> str | None:
        """Why the entry cannot be trusted (a file missing, resized or changed), or None when it is intact."""
        entry = self.entry(stage, key)
        try:
            recorded = json.loads((entry / ENTRY_FILES).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            return f"its list of files cannot be read ({exc.__class__.__name__})"
        if not isinstance(recorded, dict):
            return "its list of files is not a JSON object"
        for name, expected in sorted(recorded.items()):
            path = entry / name
            if not path.is_file():
                return f"{name} is missing"
            size, sha256 = expected
            if path.stat().st_size != size:
                return f"{name} has {path.stat().st_size} bytes, {size} when it was written"
            if sha256_of(path) != sha256:
                return f"{name} changed since it was written (sha256 differs)"
        return None

    def discard(self, stage: str, key: str) -> None:
        """Remove an entry atomically (renamed away first, so no reader sees it half-deleted)."""
        entry = self.entry(stage, key)
        trash = entry.with_name(f"{_TRASH_PREFIX}{os.getpid()}-{key}")
        try:
            os.replace(entry, trash)
        except FileNotFoundError:
            return
        shutil.rmtree(trash, ignore_errors=True)

    @contextmanager
    def writing(self, stage: str, key: str) -> Iterator[Path]:
        """Yield an empty folder to fill; it becomes the entry, with the record of its files, only if the block
        finishes."""
        final = self.entry(stage, key)
        final.parent.mkdir(parents=True, exist_ok=True)
        temp = Path(tempfile.mkdtemp(prefix=f"{_TEMP_PREFIX}{os.getpid()}-", dir=final.parent))
        try:
            yield temp
            _record_files(temp)
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
        for prefix in (_TEMP_PREFIX, _TRASH_PREFIX):
            for temp in self.root.glob(f"*/*/{prefix}*"):
                pid = temp.name[len(prefix) :].split("-", 1)[0]
                if pid.isdigit() and not _alive(int(pid)):
                    shutil.rmtree(temp, ignore_errors=True)
                    removed += 1
        return removed


def _record_files(folder: Path) -> None:
    """Write ``ENTRY_FILES``: size and hash of every file in ``folder``; then give it the user's umask."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != ENTRY_FILES)
    recorded = {p.relative_to(folder).as_posix(): [p.stat().st_size, sha256_of(p)] for p in files}
    (folder / ENTRY_FILES).write_text(json.dumps(recorded, indent=1, sort_keys=True), encoding="utf-8")
    os.chmod(folder, 0o777 & ~umask())


def umask() -> int:
    """The process's umask, read without changing it where Linux allows (``os.umask`` sets it to read it)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write via a temporary file in the same folder and ``os.replace``: readers never see half a file. The file
    gets the user's umask (``mkstemp`` would leave it readable by its owner only)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(prefix=f"{_TEMP_PREFIX}{os.getpid()}-", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
        os.chmod(temp, 0o666 & ~umask())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def copy_file(source: Path, target: Path) -> None:
    """Put a copy of ``source`` at ``target`` atomically. A copy, not a link: a user who edits the target (a sweep
    cell's model) must not change the cache entry it came from."""
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.with_name(f"{_TEMP_PREFIX}{os.getpid()}-{target.name}")
    temp.unlink(missing_ok=True)
    try:
        shutil.copyfile(source, temp)
        os.replace(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
