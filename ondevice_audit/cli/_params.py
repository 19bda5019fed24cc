"""Groups of options declared once, from the dataclasses that hold them, and handed to a command as one value.

``options_from(OptionGroup)`` adds one Typer option per field of a group to a command's signature and calls the
command with the group built from them (as the keyword ``group.name``). So a setting added to a dataclass (a
front-end parameter, say) becomes an option of every command that takes the group, with its default and help
from the dataclass, and no command changes.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

__all__ = ["MAX_SEED", "OptionGroup", "OptionSpec", "options_from"]

F = TypeVar("F", bound=Callable[..., Any])
MAX_SEED = 2**32 - 1
"""Seeds go to numpy and TensorFlow, which take 0 to 2**32 - 1."""


@dataclass(frozen=True)
class OptionSpec:
    """One option: its parameter name, its annotation (``Annotated[type, typer.Option(...)]``), its default."""

    name: str
    annotation: Any
    default: Any


@dataclass(frozen=True)
class OptionGroup:
    name: str
    """The keyword the command receives the built group as."""
    options: Sequence[OptionSpec]
    build: Callable[..., Any]
    """Called with every option's value by name; its result is what the command receives."""


def options_from(group: OptionGroup) -> Callable[[F], F]:
    """Add ``group``'s options to a command after its own parameters (its ``group.name`` parameter removed)."""

    def decorate(command: F) -> F:
        signature = inspect.signature(command)
        own = [
            parameter.replace(annotation=_evaluated(parameter.annotation, command))
            for parameter in signature.parameters.values()
            if parameter.name != group.name  # its annotation may name a type imported only for the type checker
        ]
        added = [
            inspect.Parameter(
                spec.name, inspect.Parameter.KEYWORD_ONLY, default=spec.default, annotation=spec.annotation
            )
            for spec in group.options
        ]
        names = [spec.name for spec in group.options]

        @functools.wraps(command)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            values = {name: kwargs.pop(name) for name in names}
            return command(*args, **kwargs, **{group.name: group.build(**values)})

        parameters = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own] + added
        wrapper.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]  # the attribute inspect.signature reads (Typer builds the options from it)
        wrapper.__annotations__ = {p.name: p.annotation for p in parameters}
        return typing.cast(F, wrapper)

    return decorate


def _evaluated(annotation: Any, command: Callable[..., Any]) -> Any:
    """A string annotation (``from __future__ import annotations``) as the object it names in the command's module;
    left a string when it names a type imported only for the type checker (another group's, which its own
    decorator removes)."""
    if not isinstance(annotation, str):
        return annotation
    try:
        return eval(annotation, inspect.unwrap(command).__globals__)  # the command's own source, as get_type_hints does
    except NameError:
        return annotation
