"""The ``ondevice-audit`` Typer app every command registers on, and the mapping of errors to exit codes.

Errors the tool raises on purpose become one line on stderr and their exit code (2 for user errors);
``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import os
from typing import Annotated, Any

import typer
from rich.markup import escape
from typer.core import TyperGroup

from ondevice_audit import __version__
from ondevice_audit.cli._progress import stderr
from ondevice_audit.errors import DEBUG_ENV, OndeviceAuditError

__all__ = ["app"]


class _Group(TyperGroup):
    """Maps ``OndeviceAuditError`` to a one-line message and its exit code, for every subcommand."""

    def invoke(self, ctx: typer.Context) -> Any:
        try:
            return super().invoke(ctx)
        except OndeviceAuditError as exc:
            if ctx.meta.get("debug"):
                raise
            stderr.print(f"[bold red]error:[/bold red] {escape(str(exc))}", highlight=False, soft_wrap=True)
            raise typer.Exit(int(exc.exit_code)) from None


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
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks instead of one-line errors.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    ctx.meta["debug"] = debug
    if debug:  # for code run on the user's behalf, in this process and its workers; unset when the command ends
        previous = os.environ.get(DEBUG_ENV)
        os.environ[DEBUG_ENV] = "1"
        ctx.call_on_close(lambda: os.environ.pop(DEBUG_ENV) if previous is None else None)
