"""One way to name implementations: a registry maps a name to ``"module:Class"`` and imports it when asked.

Runtimes, exporters, sweep executors, targets and report formats each keep one ``Registry`` in their package's
``__init__.py`` (never in ``interface.py``, which the implementations import: that would be a cycle). An entry
carries data about the implementation that is needed *without* importing it: the model format a runtime runs,
the distributions whose versions change its results (the sweep cache keys on them), a one-line summary for
``--help``. Importing an implementation only when it is chosen keeps ``--help`` and ``score`` free of
TensorFlow, ONNX Runtime and Ray.

Adding an implementation is one module plus one ``register`` line in the package's ``__init__.py``.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Generic, TypeVar

from ondevice_audit.errors import UsageError

__all__ = ["Entry", "Registry", "distribution_versions"]

T = TypeVar("T")


@dataclass(frozen=True)
class Entry:
    name: str
    target: str
    """``package.module:Attribute``, imported on first use."""
    summary: str = ""
    distributions: tuple[str, ...] = ()
    """Packages whose version changes what this implementation computes (for cache keys and reports)."""
    extra: str | None = None
    """The ``pip install 'ondevice-audit[EXTRA]'`` that brings those packages, for the error when one is missing."""
    info: Mapping[str, Any] = field(default_factory=dict)
    """Anything else callers need without importing it (a runtime's model format)."""


class Registry(Generic[T]):
    """Name -> implementation of one concern (``kind``: "runtime", "exporter", ...), imported lazily."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Entry] = {}

    def register(
        self,
        name: str,
        target: str,
        *,
        summary: str = "",
        distributions: tuple[str, ...] = (),
        extra: str | None = None,
        **info: Any,
    ) -> None:
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._entries[name] = Entry(name, target, summary, distributions, extra, info)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def names(self) -> tuple[str, ...]:
        return tuple(self._entries)

    def entry(self, name: str) -> Entry:
        if name not in self._entries:
            raise UsageError(f"unknown {self.kind} {name!r}; choose one of {', '.join(self._entries)}")
        return self._entries[name]

    def load(self, name: str) -> T:
        """The implementation registered as ``name``; a one-line ``UsageError`` naming the extra when its
        packages are not installed."""
        entry = self.entry(name)
        module_name, _, attribute = entry.target.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            if entry.extra is None:
                raise
            raise UsageError(
                f"the {self.kind} {name} needs {exc.name or 'a package'} that is not installed: "
                f"pip install 'ondevice-audit[{entry.extra}]'"
            ) from None
        implementation: T = getattr(module, attribute)
        return implementation


def distribution_versions(names: tuple[str, ...]) -> dict[str, str]:
    """Installed version of each distribution, ``absent`` where it is not installed (read, not imported)."""
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "absent"
    return versions
