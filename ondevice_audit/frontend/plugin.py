"""A user's own front-end: a callable mapping a file path to the model input, named by file or by module.

This is how a third-party model with its own feature pipeline is audited. ``--frontend`` takes either form:

- ``path/to/frontend.py:features``: the file is loaded by its path, so nothing has to be on ``PYTHONPATH``
  (its folder is added to ``sys.path``, so it may import modules next to it);
- ``package.module:features``: a module the Python path finds (``PYTHONPATH``, an installed package).

The callable gets a ``pathlib.Path`` and returns an array; any exception it raises counts that file as failed.
Loading is quiet: the known log lines of the libraries it imports (TensorFlow's start-up logs) are dropped unless
``--debug`` (``_quiet.quiet_native``), what it prints itself goes to stderr, never into a report on stdout, and an
import that fails is a one-line error naming the exception, never a silent skip. The file
that defines the callable is hashed into the report's inputs, as the model is. Every process that computes
features (the sweep's spawned workers too) loads the plug-in from the same reference, so a reference in the path
form is made absolute.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import numpy as np

from ondevice_audit._quiet import debug_enabled, quiet_native
from ondevice_audit.frontend.interface import Frontend, FrontendError, SampleError

__all__ = ["PluginFrontend", "normalized_reference", "plugin_file", "plugin_sha256"]


def _split(reference: str) -> tuple[str, str, bool]:
    """(module or file, attribute, whether it is a file) of ``reference``; a one-line error for a bad one."""
    source, colon, attribute = reference.rpartition(":")
    if not colon or not source.strip() or not attribute.strip() or not attribute.strip().isidentifier():
        raise FrontendError(f"--frontend {reference!r} must look like path/to/file.py:callable or "
                            "package.module:callable")  # fmt: skip
    source, attribute = source.strip(), attribute.strip()
    return source, attribute, source.endswith(".py") or "/" in source or os.sep in source


def normalized_reference(reference: str) -> str:
    """The reference with a file made absolute, so any process (whatever its working folder) finds it."""
    source, attribute, is_file = _split(reference)
    return f"{Path(source).expanduser().absolute()}:{attribute}" if is_file else f"{source}:{attribute}"


def plugin_file(reference: str) -> Path | None:
    """The file that defines the plug-in (hashed into reports); None when the module has no file of its own."""
    source, _, is_file = _split(reference)
    if is_file:
        return Path(source).expanduser().absolute()
    origin = getattr(sys.modules.get(source), "__file__", None)
    if origin is None:
        try:
            with _quiet():
                spec = importlib.util.find_spec(source)
        except (ImportError, ValueError):
            spec = None
        origin = spec.origin if spec is not None else None
    return Path(origin) if origin and Path(origin).is_file() else None


def plugin_sha256(reference: str) -> str:
    """sha256 of the plug-in's file ("" when it has none)."""
    path = plugin_file(reference)
    return hashlib.sha256(path.read_bytes()).hexdigest() if path is not None else ""


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """A plug-in being imported: its libraries' known log lines dropped unless ``--debug``, the rest of what it
    writes sent to stderr (file descriptor 1 and ``sys.stdout`` alike), so a report on stdout stays clean.
    Exceptions pass through."""
    with quiet_native():
        sys.stdout.flush()
        saved = os.dup(1)
        os.dup2(2, 1)
        try:
            with contextlib.redirect_stdout(sys.stderr):
                yield
        finally:
            sys.stdout.flush()
            os.dup2(saved, 1)
            os.close(saved)


def _load_file(path: Path) -> ModuleType:
    """The module of a plug-in file, loaded once per process (its folder on ``sys.path`` for its own imports)."""
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    name = "ondevice_audit_plugin_" + hashlib.sha256(str(path).encode()).hexdigest()[:16]
    if name in sys.modules:
        return sys.modules[name]
    if str(path.parent) not in sys.path:
        sys.path.append(str(path.parent))
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"{path} cannot be loaded as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def _load(reference: str) -> Callable[[Path], np.ndarray]:
    source, attribute, is_file = _split(reference)
    try:
        with _quiet():
            module = _load_file(Path(source).expanduser().absolute()) if is_file else importlib.import_module(source)
    except Exception as exc:  # a user's module may raise anything while it is imported
        hint = "" if is_file else "; name it by its file (path/to/file.py:callable) or put its folder on PYTHONPATH"
        error = FrontendError(f"--frontend {reference}: loading {source} failed: {type(exc).__name__}: "
                              f"{str(exc).strip().splitlines()[0] if str(exc).strip() else ''}{hint}")  # fmt: skip
        if debug_enabled():
            raise error from exc
        raise error from None
    function = getattr(module, attribute, None)
    if not callable(function):
        raise FrontendError(f"--frontend {reference}: {source} has no callable {attribute!r}")
    return function


class PluginFrontend(Frontend):
    def __init__(self, reference: str):
        self.reference = normalized_reference(reference)
        self._function = _load(self.reference)
        self.description = f"plug-in {reference}"

    def files(self) -> list[Path]:
        path = plugin_file(self.reference)
        return [] if path is None else [path]

    def load_one(self, path: Path) -> np.ndarray:
        try:
            return np.asarray(self._function(path), dtype=np.float32)
        except Exception as exc:  # a user's code may raise anything; one bad file must not stop the audit
            raise SampleError(f"front-end plug-in failed: {type(exc).__name__}: {exc}") from None
