"""Where a command writes: checked before any work, never over one of its inputs, and written in full or not at all.

Every command checks its output paths up front with ``check_output`` (a file) or ``check_output_folder``: a path
that resolves to one of the command's inputs (``score a.csv -o a.csv``, ``report r.json --html r.json``, a
symlink to the manifest) is refused, so is a folder where a file is asked for and a place the user cannot write,
so an audit does not run for an hour and then fail to save. ``write_text`` then writes (a folder it cannot
create, a full disk: one line, exit 2). Files are created with the user's umask, like any other tool's output.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

from ondevice_audit.errors import UsageError

__all__ = ["SAME_OUTPUT", "check_output", "check_output_folder", "same_file", "write_bytes", "write_text"]

OVER_INPUT = "{option} {path} is the {role} {input}: refusing to write over an input; choose another file name"
SAME_OUTPUT = "{option} and {other} both name {path}; give each output its own file"
IS_FOLDER = "{option} {path} is a folder; give a file name, e.g. {example}"
IS_FILE = "{option} {path} is a file; give a folder (it is created if missing)"
NOT_WRITABLE = "{option} {path}: cannot write in {folder} ({why}); choose a folder you can write to"
CANNOT_WRITE = "cannot write {path}: {error}"


def _real(path: Path) -> str:
    return os.path.realpath(os.path.abspath(path))


def same_file(a: Path, b: Path) -> bool:
    """Whether ``a`` and ``b`` name one file (through symlinks, ``..`` and hard links)."""
    if _real(a) == _real(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _refuse_inputs(path: Path, option: str, inputs: Mapping[str, Path | None]) -> None:
    for role, source in inputs.items():
        if source is not None and same_file(path, source):
            raise UsageError(OVER_INPUT.format(option=option, path=path, role=role, input=source))


def _check_writable(path: Path, option: str) -> None:
    """The nearest existing folder on the way to ``path`` must be a folder the user can write in. Tried with an
    anonymous temporary file (``O_TMPFILE``: it never has a name, so nothing appears), because permission bits
    say nothing for root, read-only mounts or ``/proc``."""
    folder = Path(os.path.abspath(path)).parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise UsageError(NOT_WRITABLE.format(option=option, path=path, folder=folder, why="it is a file"))
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        why = exc.strerror or type(exc).__name__
        raise UsageError(NOT_WRITABLE.format(option=option, path=path, folder=folder, why=why.lower())) from None


def check_output(
    path: Path | None,
    option: str,
    inputs: Mapping[str, Path | None] | None = None,
    others: Mapping[str, Path | None] | None = None,
) -> None:
    """``path`` (a file ``option`` names) may be written: not an input (``role -> path``), not a folder, not
    another output of the same command (``option -> path``), in a folder the user can write in."""
    if path is None:
        return
    if path.is_dir():
        raise UsageError(IS_FOLDER.format(option=option, path=path, example=path / "report.json"))
    _refuse_inputs(path, option, inputs or {})
    for other, target in (others or {}).items():
        if target is not None and other != option and same_file(path, target):
            raise UsageError(SAME_OUTPUT.format(option=option, other=other, path=path))
    _check_writable(path, option)


def check_output_folder(
    path: Path, option: str, inputs: Mapping[str, Path | None] | None = None, writes: Iterable[str] = ()
) -> None:
    """``path`` (a folder ``option`` names) may be written: not a file, none of the files it will hold
    (``writes``, names inside it) an input, and writable (created if missing)."""
    if path.exists() and not path.is_dir():
        raise UsageError(IS_FILE.format(option=option, path=path))
    for role, source in (inputs or {}).items():
        if source is not None and same_file(path, source):
            raise UsageError(OVER_INPUT.format(option=option, path=path, role=role, input=source))
    for name in writes:
        _refuse_inputs(path / name, option, inputs or {})
    _check_writable(path / "x", option)


def write_text(path: Path, text: str, *, append: bool = False) -> None:
    """``text`` to (or at the end of) ``path``, folders created; an ``OSError`` becomes a one-line user error."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a" if append else "w", encoding="utf-8") as file:
            file.write(text)
    except OSError as exc:
        raise UsageError(CANNOT_WRITE.format(path=path, error=exc.strerror or exc)) from None


def write_bytes(path: Path, data: bytes) -> None:
    """``data`` to ``path``, folders created; an ``OSError`` becomes a one-line user error."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    except OSError as exc:
        raise UsageError(CANNOT_WRITE.format(path=path, error=exc.strerror or exc)) from None
