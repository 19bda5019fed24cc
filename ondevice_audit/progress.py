"""How stages report progress without knowing about terminals.

Every long stage takes a ``Progress`` and wraps its loop in ``progress.task(description, total)``, calling the
returned ``advance(n)``. The CLI passes a rich implementation (``cli/_progress.py``); library callers get
``NullProgress``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol

__all__ = ["NullProgress", "Progress"]


class Advance(Protocol):
    """``advance(n)``: ``n`` more units done (one when left out)."""

    def __call__(self, n: int = 1, /) -> None: ...


class Progress(Protocol):
    def task(self, description: str, total: int | None = None) -> AbstractContextManager[Advance]:
        """A context manager yielding ``advance(n)``; ``total`` None for work of unknown size."""

    def note(self, message: str) -> None:
        """A one-line remark for the user (a warning, a skipped step)."""


class NullProgress:
    @contextmanager
    def task(self, description: str, total: int | None = None) -> Iterator[Advance]:
        yield lambda n=1: None

    def note(self, message: str) -> None:
        return None

