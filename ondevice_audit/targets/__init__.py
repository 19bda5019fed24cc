"""Targets: where a model runs (this process, a separate Python, a board over SSH) and how it fared there.

Add a target as a module with a ``Target`` subclass (see ``interface.py``; ``remote.py`` gives targets that run
the standalone ``device_runner.py`` everything but their transport) and a case in ``parse_target``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ondevice_audit.targets.interface import (
    InferenceResult,
    ModelOnTarget,
    RuntimeStatus,
    Target,
    TargetCannotRun,
    TargetError,
    TargetFacts,
    TargetSession,
    TargetUnreachable,
)
from ondevice_audit.targets.resume import default_work_dir

__all__ = [
    "TARGET_HELP",
    "InferenceResult",
    "ModelOnTarget",
    "RuntimeStatus",
    "Target",
    "TargetCannotRun",
    "TargetError",
    "TargetFacts",
    "TargetSession",
    "TargetUnreachable",
    "default_work_dir",
    "parse_target",
]

TARGET_HELP = "local (in-process), subprocess (the device runner in a separate Python) or ssh://user@host[:port]"


def parse_target(
    spec: str, ssh_options: Sequence[str] = (), work_dir: Path | None = None, trust_model: bool = False
) -> Target:
    """The target ``spec`` names; ``work_dir`` remembers remote folders a lost connection left behind."""
    text = spec.strip()
    state_dir = work_dir or default_work_dir()
    if text == "local":
        from ondevice_audit.targets.local import LocalTarget

        return LocalTarget(trust_model=trust_model)
    if text == "subprocess":
        from ondevice_audit.targets.process import SubprocessTarget

        return SubprocessTarget(state_dir=state_dir)
    if text.startswith("ssh://"):
        from ondevice_audit.targets.ssh import SshTarget

        return SshTarget.from_url(text, ssh_options, state_dir)
    raise TargetError(f"unknown target {spec!r}: use {TARGET_HELP}")
