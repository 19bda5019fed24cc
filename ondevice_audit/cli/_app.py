"""The ``ondevice-audit`` Typer app every command registers on, and the mapping of errors to exit codes.

Errors the tool raises on purpose become one line on stderr and their exit code (2 for user errors);
``--debug`` shows the traceback instead.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape
from typer.core import TyperGroup

from ondevice_audit import __version__
from ondevice_audit._extras import missing_extra
from ondevice_audit._quiet import enable_debug, quiet_environment
from ondevice_audit.cli._progress import errors, set_quiet
from ondevice_audit.errors import OndeviceAuditError

__all__ = ["app"]


class _Group(TyperGroup):
    """Maps ``OndeviceAuditError`` to a one-line message and its exit code, for every subcommand; a missing
    optional module becomes the extra to install."""

    def invoke(self, ctx: typer.Context) -> Any:
        try:
            try:
                return super().invoke(ctx)
            except ModuleNotFoundError as exc:
                missing = missing_extra(exc, f"ondevice-audit {ctx.invoked_subcommand or ''}".strip())
                if missing is None:
                    raise
                raise missing from exc
        except OndeviceAuditError as exc:
            if ctx.meta.get("debug"):
                raise
            errors.print(f"[bold red]error:[/bold red] {escape(str(exc))}", highlight=False, soft_wrap=True)
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
