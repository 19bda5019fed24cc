"""Targets: where a model runs (this process, a separate Python, a board over SSH) and how it fared there.

Add a target as a module with a ``Target`` subclass (see ``interface.py``; ``remote.py`` gives targets that run
the standalone ``device_runner.py`` everything but their transport) and a ``register`` line below.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ondevice_audit.registry import Registry
from ondevice_audit.targets.interface import (
    InferenceResult,
    LoadedModel,
    RuntimeStatus,
    Target,
    TargetCannotRun,
    TargetError,
    TargetFacts,
    TargetSession,
    TargetSettings,
    TargetUnreachable,
)
from ondevice_audit.targets.resume import default_work_dir

__all__ = [
    "TARGETS",
    "TARGET_HELP",
    "InferenceResult",
    "LoadedModel",
    "RuntimeStatus",
    "Target",
    "TargetCannotRun",
    "TargetError",
    "TargetFacts",
    "TargetSession",
    "TargetSettings",
    "TargetUnreachable",
    "default_work_dir",
    "is_target",
    "parse_target",
]

TARGETS: Registry[type[Target]] = Registry("target")
TARGETS.register("local", "ondevice_audit.targets.local:LocalTarget", summary="local (in-process)")
TARGETS.register("subprocess", "ondevice_audit.targets.process:SubprocessTarget",
                 summary="subprocess (the device runner in a separate Python)")  # fmt: skip
TARGETS.register("ssh", "ondevice_audit.targets.ssh:SshTarget", summary="ssh://user@host[:port]", url=True)

TARGET_HELP = ", ".join(TARGETS.entry(name).summary for name in TARGETS.names()[:-1]) + " or " + TARGETS.entry(
    TARGETS.names()[-1]
).summary


def _target_name(spec: str) -> str:
    """``ssh://...`` names the ``ssh`` target; a plain name names itself."""
    scheme, separator, _ = spec.partition("://")
    return scheme if separator else spec


def is_target(spec: str) -> bool:
    """Whether ``spec`` names a registered target (without contacting it)."""
    name = _target_name(spec.strip())
    return name in TARGETS and bool(TARGETS.entry(name).info.get("url")) == ("://" in spec)


def parse_target(
    spec: str, ssh_options: Sequence[str] = (), work_dir: Path | None = None, trust_model: bool = False
) -> Target:
    """The target ``spec`` names; ``work_dir`` remembers remote folders a lost connection left behind."""
    text = spec.strip()
    if not is_target(text):
        raise TargetError(f"unknown target {spec!r}: use {TARGET_HELP}")
    settings = TargetSettings(tuple(ssh_options), work_dir or default_work_dir(), trust_model)
    return TARGETS.load(_target_name(text)).from_spec(text, settings)
