"""The ``ondevice-audit`` Typer app every command registers on, and the mapping of errors to exit codes.

Whatever goes wrong, the user sees one line on stderr and a documented exit code, never a traceback (``--debug``
shows it): errors the tool raises on purpose carry their code (2 for user errors, 3 for pipeline failures);
command-line usage errors (a bad value, a missing option) are 2, as Click has them, but in one line instead of a
usage panel; an ``OSError`` (a folder that cannot be written, a file that vanished) is 2; anything else is a
defect of the tool, 3, with a line saying how to report it.
"""

from __future__ import annotations

import errno
import math
from typing import Annotated, Any

import typer
from rich.markup import escape
from typer._click import Context as ClickContext  # Typer 0.29 vendors Click; it has no public alias for these
from typer._click.exceptions import ClickException
from typer._click.exceptions import UsageError as ClickUsageError
from typer.core import TyperCommand, TyperGroup

from ondevice_audit import __version__
from ondevice_audit._extras import missing_extra
from ondevice_audit._quiet import enable_debug, quiet_environment
from ondevice_audit.cli._progress import errors, set_quiet
from ondevice_audit.errors import ExitCode, OndeviceAuditError

__all__ = ["Command", "app", "use_command_class"]

INTERNAL = "internal error: {kind}: {message} (a defect of ondevice-audit: rerun with --debug and report the traceback)"
INTERRUPTED = "interrupted"


def _print_error(message: str) -> None:
    errors.print(f"[bold red]error:[/bold red] {escape(message)}", highlight=False, soft_wrap=True)


def _first_line(text: str) -> str:
    return " ".join(text.split()) or "(no message)"


class _Group(TyperGroup):
    """Maps every error of every subcommand to one line on stderr and its exit code (see the module docstring);
    a missing optional module becomes the extra to install."""

    def invoke(self, ctx: ClickContext) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort):
            raise
        except ClickException as exc:
            if type(exc).__name__ == "NoArgsIsHelpError":  # the help text Typer prints for a bare command
                raise
            hint = ""
            if isinstance(exc, ClickUsageError) and exc.ctx is not None:
                hint = f" (see `{exc.ctx.command_path} --help`)"
            _print_error(_first_line(exc.format_message()) + hint)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            _print_error(INTERRUPTED)
            raise typer.Exit(130) from None
        except Exception as exc:
            if ctx.meta.get("debug"):
                raise
            if isinstance(exc, ModuleNotFoundError):
                exc = missing_extra(exc, f"ondevice-audit {ctx.invoked_subcommand or ''}".strip()) or exc
            raise typer.Exit(_report(exc)) from None


def _report(exc: Exception) -> int:
    """Print ``exc`` as one line; its exit code."""
    if isinstance(exc, OndeviceAuditError):
        _print_error(str(exc))
        return int(exc.exit_code)
    if isinstance(exc, OSError) and exc.errno != errno.EPIPE:
        where = f"{exc.filename}: " if exc.filename else ""
        _print_error(f"{where}{exc.strerror or exc}; check the path, its permissions and the free space")
        return int(ExitCode.USAGE)
    if isinstance(exc, MemoryError):
        _print_error("out of memory: use fewer groups (--max-groups), --bootstrap/--permutations or a smaller batch")
        return int(ExitCode.PIPELINE)
    _print_error(INTERNAL.format(kind=type(exc).__name__, message=_first_line(str(exc))))
    return int(ExitCode.PIPELINE)


class Command(TyperCommand):
    """Every command's class: a number option that is not finite (``nan``, ``inf``) is a usage error, since no
    threshold, confidence or limit means anything as one (``--threshold nan`` would predict nothing positive)."""

    def invoke(self, ctx: ClickContext) -> Any:
        for param in self.params:
            value = ctx.params.get(param.name or "")
            if isinstance(value, float) and not math.isfinite(value):
                # Typer's Click wants its private _TyperParameter, which every parameter of a Typer command is
                raise typer.BadParameter(f"{value} is not a finite number", ctx=ctx, param=param)  # type: ignore[arg-type]
        return super().invoke(ctx)


def use_command_class(typer_app: typer.Typer) -> None:
    """Make ``Command`` the class of every command registered on ``typer_app`` and its sub-apps (a command with
    a class of its own must derive from it)."""
    for info in typer_app.registered_commands:
        if info.cls is None or info.cls is TyperCommand:  # Typer's default
            info.cls = Command
        assert issubclass(info.cls, Command), f"{info.name or info.callback}: its class must derive from Command"
    for group in typer_app.registered_groups:
        if group.typer_instance is not None:
            use_command_class(group.typer_instance)


app = typer.Typer(
    cls=_Group,
    name="ondevice-audit",
    help="Audit on-device ML models for reliability bias across groups of people.",
    rich_markup_mode="rich",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"ondevice-audit {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show tracebacks instead of one-line errors, and the libraries' own logs.")
    ] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    ctx.meta["debug"] = debug
    set_quiet(False)  # until the command's --quiet says otherwise (in-process runs reuse the consoles)
    if debug:
        enable_debug()
    quiet_environment()
