"""The runtime names a device runner answers to, as the host spells them.

The runner (``device_runner.py``) knows base runtimes (``litert``, ``tflite_runtime``, ``tf_lite``, ``onnxruntime``)
and takes a TFLite interpreter's kernel choice as an argument (``--kernels default|builtin|ref``). On the host,
as in this process, the choice is part of the runtime's name: ``litert-ref`` is ``litert`` with ``--kernels ref``,
so ``--runtime litert-ref`` means the same kernels whichever target runs it.
"""

from __future__ import annotations

from ondevice_audit.targets import device_runner

__all__ = ["joined_name", "runner_runtimes", "split_name"]

_SUFFIXES = {"default": "", "builtin": "-builtin", "ref": "-ref"}


def runner_runtimes() -> dict[str, str]:
    """Every name a device runner runs -> the model format it runs; TFLite runtimes with each kernel suffix."""
    names: dict[str, str] = {}
    for runtime, fmt in device_runner.RUNTIMES.items():
        kernels = device_runner.KERNELS if fmt == "tflite" else ("default",)
        names.update({joined_name(runtime, choice): fmt for choice in kernels})
    return names


def split_name(name: str) -> tuple[str, str]:
    """``litert-ref`` -> (``litert``, ``ref``); a name without a kernel suffix has the default kernels."""
    for kernels, suffix in _SUFFIXES.items():
        base = name[: -len(suffix)] if suffix and name.endswith(suffix) else None
        if base in device_runner.RUNTIMES and device_runner.RUNTIMES[base] == "tflite":
            return base, kernels
    return name, "default"


def joined_name(runtime: str, kernels: str) -> str:
    return runtime + _SUFFIXES[kernels]
