"""The optional parts of the install, and the one-line error when a command or option needs a missing one.

``pip install ondevice-audit`` is the core (score, audit on LiteRT and ONNX Runtime, gate, report, compare,
datasets, targets). Heavier work lives in extras, named here once: the CLI turns a ``ModuleNotFoundError`` for
one of these modules into "needs the X extra" (exit 2), wherever the import happens, and commands that cannot
start without an extra check for it before doing any work.
"""

from __future__ import annotations

import importlib.util

from ondevice_audit.errors import UsageError

__all__ = ["EXTRAS", "MissingExtra", "missing_extra", "require_extra"]

EXTRAS: dict[str, tuple[str, tuple[str, ...]]] = {
    "train": (
        "TensorFlow, tf-keras, tfmot, tf2onnx and onnx",
        ("tensorflow", "tf_keras", "tensorflow_model_optimization", "tf2onnx", "onnx", "h5py", "sklearn"),
    ),
    "mcu": ("TensorFlow Lite Micro", ("tflite_micro",)),
    "ray": ("Ray", ("ray",)),
    "voices": ("the Kokoro neural voices", ("kokoro_onnx",)),
}
"""Extra -> what it brings (for the message) and the top-level modules it provides."""
_EXTRA_OF_MODULE = {module: extra for extra, (_, modules) in EXTRAS.items() for module in modules}


class MissingExtra(UsageError):
    """A command or option needs an extra that is not installed."""


def _message(what: str, extra: str) -> str:
    return f"{what} needs the '{extra}' extra ({EXTRAS[extra][0]}): pip install 'ondevice-audit[{extra}]'"


def missing_extra(exc: ModuleNotFoundError, what: str) -> MissingExtra | None:
    """The one-line error for a failed import of an extra's module; None for any other missing module."""
    extra = _EXTRA_OF_MODULE.get((exc.name or "").split(".")[0])
    return None if extra is None else MissingExtra(_message(what, extra))


def require_extra(extra: str, what: str) -> None:
    """Fail before any work when ``extra`` is not installed (found without importing it: no seconds spent)."""
    if any(importlib.util.find_spec(module) is None for module in EXTRAS[extra][1]):
        raise MissingExtra(_message(what, extra))
