"""The exception tree every stage raises into, and the exit codes the CLI maps it to.

Errors a user can cause (bad file, bad flag, bad data) are ``UsageError``: the CLI prints one line and
exits 2. Failures of the pipeline itself are ``PipelineError`` (exit 3). Each stage subclasses these in its
own ``interface.py`` so callers can catch a stage's errors without knowing its implementations.
"""

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    GATE_FAILED = 1
    USAGE = 2
    PIPELINE = 3


class OndeviceAuditError(Exception):
    """Base of every error the tool raises on purpose."""

    exit_code: ExitCode = ExitCode.PIPELINE


class UsageError(OndeviceAuditError):
    """Something the user can fix: a bad file, flag or dataset."""

    exit_code = ExitCode.USAGE


class PipelineError(OndeviceAuditError):
    """A stage failed for a reason that is not the user's input."""

    exit_code = ExitCode.PIPELINE
