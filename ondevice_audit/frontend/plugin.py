"""A user's own front-end: ``package.module:callable`` mapping a file path to the model input.

This is how a third-party model with its own feature pipeline is audited: the callable gets a
``pathlib.Path`` and returns an array (or raises; any exception counts as a failed file).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ondevice_audit.frontend.interface import Frontend, FrontendError, SampleError

__all__ = ["PluginFrontend"]


class PluginFrontend(Frontend):
    def __init__(self, reference: str):
        module_name, _, attribute = reference.partition(":")
        if not module_name or not attribute:
            raise FrontendError(f"--frontend {reference!r} must look like package.module:callable")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise FrontendError(f"cannot import front-end module {module_name!r}: {exc}") from None
        function = getattr(module, attribute, None)
        if not callable(function):
            raise FrontendError(f"{module_name!r} has no callable {attribute!r}")
        self._function: Callable[[Path], np.ndarray] = function
        self.description = f"plug-in {reference}"

    def load_one(self, path: Path) -> np.ndarray:
        try:
            return np.asarray(self._function(path), dtype=np.float32)
        except Exception as exc:  # a user's code may raise anything; one bad file must not stop the audit
            raise SampleError(f"front-end plug-in failed: {type(exc).__name__}: {exc}") from None
