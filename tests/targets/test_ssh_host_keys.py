"""Host keys are always checked: every spelling that would turn checking off is refused before any connection,
judged by what ssh itself would do (``ssh -G``), against the real sshd of the target tests.

Each refused spelling is shown to be a real bypass first: plain ``ssh`` with the same options logs in to the
server although its key is in no known_hosts file the client reads. Then ``targets check`` with the options
exits 2 with one line that recommends only what is never refused (``UserKnownHostsFile=FILE``), and leaves
nothing on the server.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ondevice_audit.cli import app

runner = CliRunner()

UNCHECKED = [
    ["StrictHostKeyChecking=no"],
    ['StrictHostKeyChecking="no"'],
    ["stricthostkeychecking=NO"],
    ["StrictHostKeyChecking=off"],
    ["StrictHostKeyChecking=false"],
    ['StrictHostKeyChecking="no"', "UserKnownHostsFile=/dev/null"],
    ["StrictHostKeyChecking=no", "UserKnownHostsFile=/dev/null", "GlobalKnownHostsFile=/dev/null"],
    ["StrictHostKeyChecking=accept-new", "UserKnownHostsFile=/dev/null"],
    ["StrictHostKeyChecking=accept-new", 'UserKnownHostsFile="/dev/null"'],
    ["StrictHostKeyChecking=accept-new", "UserKnownHostsFile=/dev/null /dev/null"],
]


def _base(server, tmp_path: Path) -> list[str]:
    """Our key, and no known host that holds the server's key: only a bypass can log in."""
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    return [f"IdentityFile={server.root / 'client_key'}", "IdentitiesOnly=yes", f"UserKnownHostsFile={empty}",
            "GlobalKnownHostsFile=/dev/null"]  # fmt: skip


def _merged(base: list[str], spelling: list[str]) -> list[str]:
    """OpenSSH keeps the first value of an option: the spelling goes before the base options."""
    return [*spelling, *base]


def _ssh_logs_in(server, options: list[str]) -> bool:
    argv = ["ssh", "-o", "BatchMode=yes", *(a for o in options for a in ("-o", o)), "-p", str(server.port), "--",
            f"{server.user}@127.0.0.1", "true"]  # fmt: skip
    return subprocess.run(argv, capture_output=True, stdin=subprocess.DEVNULL, timeout=60).returncode == 0


def _check(server, tmp_path: Path, options: list[str], env: dict[str, str] | None = None):
    args = ["targets", "check", server.url(), "--work-dir", str(tmp_path / "work")]
    return runner.invoke(app, [*args, *(a for o in options for a in ("--ssh-option", o))], env=env)


@pytest.mark.parametrize("spelling", UNCHECKED, ids=[" ".join(s) for s in UNCHECKED])
def test_every_spelling_that_skips_host_keys_is_refused_before_connecting(server, tmp_path, spelling):
    options = _merged(_base(server, tmp_path), spelling)
    assert _ssh_logs_in(server, options), "the spelling must be a real bypass for the test to mean anything"
    result = _check(server, tmp_path, options)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "host keys must be checked" in lines[0], result.stderr
    assert "--ssh-option UserKnownHostsFile=FILE" in lines[0] and "accept-new trusts" not in lines[0]
    assert not (tmp_path / "work").exists() and server.remote_folders() == []


def test_the_environment_variable_is_judged_the_same(server, tmp_path):
    options = " ".join(_merged(_base(server, tmp_path), ['StrictHostKeyChecking="no"']))  # split on whitespace
    result = _check(server, tmp_path, [], env={"ONDEVICE_AUDIT_SSH_OPTIONS": options})
    assert result.exit_code == 2 and "host keys must be checked" in result.stderr


def test_an_option_ssh_does_not_know_is_one_line(server, tmp_path):
    result = _check(server, tmp_path, ["StrictHostKeyChecking=sometimes"])
    assert result.exit_code == 2 and "ssh does not accept the --ssh-option values" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_checked_host_keys_connect(server, device_python, tmp_path):
    """The recommended fix works, and accept-new with a real file trusts the first key and remembers it."""
    strict = [*server.options, "StrictHostKeyChecking=yes"]
    result = _check(server, tmp_path, strict)
    assert result.exit_code == 0, result.output
    remembered = tmp_path / "new_known_hosts"
    options = ["StrictHostKeyChecking=accept-new", f"UserKnownHostsFile={remembered}",
               f"IdentityFile={server.root / 'client_key'}", "IdentitiesOnly=yes"]  # fmt: skip
    result = _check(server, tmp_path, options)
    assert result.exit_code == 0, result.output
    key = (server.root / "host_key.pub").read_text().split()[1]
    assert key in remembered.read_text()
