"""``ondevice-audit targets check``: what a target is (Python, CPU, runtimes, disk) and whether it runs a model."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from ondevice_audit.cli._app import app
from ondevice_audit.cli._params import OptionGroup, OptionSpec
from ondevice_audit.cli._progress import Quiet, RichProgress, stdout
from ondevice_audit.errors import UsageError
from ondevice_audit.frontend import CHUNK_FILES
from ondevice_audit.report.sentences import runtime_text
from ondevice_audit.targets import TARGET_HELP, TargetCannotRun, TargetFacts, parse_target

if TYPE_CHECKING:
    from ondevice_audit.audit import TargetOptions

__all__ = ["TARGET_OPTIONS", "SshOption", "WorkDir", "targets_app"]

_TARGETS = "Targets"
SshOption = Annotated[
    list[str] | None,
    typer.Option(
        "--ssh-option",
        help="OpenSSH option Key=Value for ssh:// targets (repeatable), e.g. UserKnownHostsFile=FILE, "
        "IdentityFile=KEY. Host keys are always checked.",
        envvar="ONDEVICE_AUDIT_SSH_OPTIONS",
        rich_help_panel=_TARGETS,
    ),
]
WorkDir = Annotated[
    Path | None,
    typer.Option(
        help="Where finished batches are kept so an interrupted audit resumes (default: ~/.cache/ondevice-audit/targets).",
        envvar="ONDEVICE_AUDIT_WORK_DIR",
        rich_help_panel=_TARGETS,
    ),
]


def _target_options(
    target: list[str] | None,
    reference: Path | None,
    ssh_option: list[str] | None,
    work_dir: Path | None,
    target_batch: int,
    retries: int,
    frontend_on_target: bool,
) -> TargetOptions:
    from ondevice_audit.audit import TargetOptions

    return TargetOptions(targets=tuple(target or ("local",)), reference=reference, ssh_options=tuple(ssh_option or ()),
                         work_dir=work_dir, batch_files=target_batch, retries=retries,
                         frontend_on_target=frontend_on_target)  # fmt: skip


def _targets(help: str, **extra: Any) -> Any:
    return typer.Option(help=help, rich_help_panel=_TARGETS, **extra)


TARGET_OPTIONS = OptionGroup(
    "target_options",
    [
        OptionSpec("target", Annotated[list[str] | None, _targets(
            f"Where the model runs (repeatable; the first is the reference): {TARGET_HELP}.")], None),
        OptionSpec("reference", Annotated[Path | None, _targets(
            "A base model (e.g. float32) to compare with: per group, clips it gets right and the audited model "
            "gets wrong.")], None),
        OptionSpec("ssh_option", SshOption, None),
        OptionSpec("work_dir", WorkDir, None),
        OptionSpec("target_batch", Annotated[int, _targets(
            "Samples per batch sent to a target: the unit of retry and resume.", min=1)], CHUNK_FILES),
        OptionSpec("retries", Annotated[int, _targets(
            "Retries of a batch after a dropped connection (with backoff).", min=0)], 3),
        OptionSpec("frontend_on_target", Annotated[bool, _targets(
            "Send the audio and have the device compute the features itself (MFCC/log-mel with numpy, the micro "
            "front-end with pymicro-features); the report compares them with the host's per group and adds "
            "end-to-end latency. Not with a streaming detector (--stream).")], False),
    ],
    _target_options,
)  # fmt: skip
"""Where ``audit`` runs the model, and against what, as one ``TargetOptions``."""

targets_app = typer.Typer(help="Where models run: check a target before auditing on it.", no_args_is_help=True)
app.add_typer(targets_app, name="targets")


def _size(value: int | None) -> str:
    return "unknown" if value is None else f"{value / 2**30:.1f} GiB"


def _table(facts: TargetFacts, model: Path | None) -> Table:
    table = Table(title=f"target {escape(facts.target)}", title_justify="left", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("python", f"{escape(facts.python)} ({escape(facts.python_executable or 'unknown')})")
    table.add_row("machine", f"{escape(facts.machine)}, {escape(facts.system)}, {facts.cpu_count or '?'} CPU(s)")
    table.add_row("memory", _size(facts.memory_total_bytes))
    table.add_row("free disk", _size(facts.free_disk_bytes))
    for runtime in facts.runtimes:
        state = (
            escape(runtime.version or "") if runtime.usable else f"[dim]{escape(runtime.note or 'not usable')}[/dim]"
        )
        kernels = f"; kernels {'/'.join(runtime.kernels)}" if runtime.kernels else ""
        table.add_row(f"runtime {escape(runtime.name)}", f"{state} [dim]({runtime.format}{kernels})[/dim]")
    if model is not None and facts.model is not None:
        m = facts.model
        table.add_row(
            "model",
            f"[green]{escape(model.name)} runs on {escape(runtime_text(dataclasses.asdict(m)))}[/green]: input "
            f"{m.input_shape} {escape(m.input_dtype)} -> output {m.output_shape} {escape(m.output_dtype)}",
        )
    elif model is not None:
        table.add_row("model", f"[red]{escape(model.name)}: {escape(facts.model_error or 'cannot run')}[/red]")
    return table


@targets_app.command("check")
def check(
    target: Annotated[str, typer.Argument(help=TARGET_HELP)],
    model: Annotated[
        Path | None, typer.Option("--model", "-m", help="Also say which runtime would run this model.")
    ] = None,
    runtime: Annotated[str | None, typer.Option(help="Check the model on this runtime only.")] = None,
    ssh_option: SshOption = None,
    work_dir: WorkDir = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the facts as JSON.")] = False,
    quiet: Quiet = False,
) -> None:
    """Report a target's Python, CPU architecture, runtimes and versions, memory and free disk.

    With --model, say which runtime would run the model there, or exit 2 saying why none can.
    """
    if model is not None and not model.exists():  # before any connection
        raise UsageError(f"model not found: {model}; check the path")
    parsed = parse_target(target, ssh_option or (), work_dir)
    with RichProgress().task(f"Checking {parsed.label}", total=None):
        facts = parsed.check(model, runtime)
    if as_json:
        typer.echo(json.dumps(dataclasses.asdict(facts), indent=2))
    else:
        stdout(highlight=False).print(_table(facts, model))
    if model is not None and facts.model is None:
        raise TargetCannotRun(f"{facts.target} cannot run {model.name}: {facts.model_error}")
