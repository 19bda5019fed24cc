"""``ssh://user@host[:port]``: a Raspberry Pi, a Jetson, any Linux board with Python and a runtime.

Settings follow the address as a query: ``?python=/path/to/python3`` names the device's interpreter (default
``python3`` on its PATH), ``?runner=per-batch`` starts a runner for every batch instead of one per run (the
previous scheme, slower: kept to measure the difference). Two targets that differ only in a setting are two
targets (``ssh://pi?python=/usr/bin/python3`` and ``ssh://pi?python=/opt/venv/bin/python``).

Why the system ``ssh``/``scp`` and not a Python SSH library: the user's OpenSSH already knows how to reach the
board (``~/.ssh/config`` aliases, ProxyJump, agent and hardware keys, ``known_hosts``), its host-key policy is the
one the user chose and audited, and the tool gains no network dependency to keep patched.

How the shell is kept out of it:

- ``ssh``/``scp`` are started with argument lists, never a shell string; options come from ``--ssh-option``
  (``-o Key=Value``), and the destination follows ``--`` so nothing can pass as an option.
- A local path is only ever an ``scp`` source or destination, made absolute (so neither a leading ``-`` nor a
  ``host:`` prefix can be read into it).
- Every remote path is ours: a ``mktemp -d`` folder (checked to be a plain path) and fixed file names inside
  it; the one command line the remote shell reads is built with ``shlex.quote`` from those.
- Host keys are checked: ``BatchMode`` is on (no prompts that would hang an audit), and before any connection
  ``check_host_keys`` asks ssh itself (``ssh -G``, with the user's options and ``~/.ssh/config``) what it would do,
  so no spelling (``"no"``, ``off``, ``NO``, a config file) turns checking off unnoticed: ``StrictHostKeyChecking``
  off is refused, and so is ``accept-new`` with a throw-away known-hosts file (``/dev/null``), where
  every connection is a first one. Give a ``known_hosts`` with ``--ssh-option UserKnownHostsFile=FILE``.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from ondevice_audit.targets.interface import TargetError, TargetSettings, TargetUnreachable
from ondevice_audit.targets.remote import RUNNER_MODES, RemoteTarget, RunnerMode

__all__ = ["HOST_KEYS_UNCHECKED", "SshTarget", "check_host_keys", "parse_ssh_options"]

_EXIT_SSH = 255
_HOST = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]*$|^[0-9A-Fa-f:]+$")
_USER = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]*$")
_OPTION = re.compile(r"^[A-Za-z][A-Za-z0-9]*=\S.*$")
_FOLDER = re.compile(r"^/[A-Za-z0-9._/-]*/ondevice-audit\.[A-Za-z0-9._-]+$")
_MAKE_FOLDER = "mktemp -d -t ondevice-audit." + "X" * 10  # mktemp fills the X run with random characters
_DEFAULT_OPTIONS = ("BatchMode=yes", "ConnectTimeout=15", "ServerAliveInterval=5", "ServerAliveCountMax=3")
"""After the user's options: OpenSSH keeps the first value it is given for each option."""
_PERMANENT = {
    "Host key verification failed": (
        "host key verification failed",
        "host keys are always checked: add the device's key to a known_hosts file (compare `ssh-keyscan` output "
        "with the device's /etc/ssh/ssh_host_*.pub) and pass --ssh-option UserKnownHostsFile=FILE",
    ),
    "Permission denied": (
        "the device refused the login",
        "ssh runs without prompts: authorize a key on the device (ssh-copy-id) and pass "
        "--ssh-option IdentityFile=KEY if it is not your default key",
    ),
    "Could not resolve hostname": ("unknown host name", "check the host name (or its ~/.ssh/config entry)"),
}


def parse_ssh_options(options: Sequence[str]) -> list[str]:
    """``Key=Value`` strings to ``-o`` arguments (what they do to host keys is ``check_host_keys``'s to judge)."""
    arguments = []
    for option in options:
        if not _OPTION.match(option):
            raise TargetError(f"--ssh-option {option!r} must look like Key=Value (e.g. IdentityFile=~/.ssh/pi)")
        arguments += ["-o", option]
    return arguments


HOST_KEYS_UNCHECKED = (
    "{target}: host keys must be checked, but ssh would {what} (from --ssh-option or your ssh configuration): "
    "add the device's key to a known_hosts file (compare `ssh-keyscan` output with the device's "
    "/etc/ssh/ssh_host_*.pub) and pass --ssh-option UserKnownHostsFile=FILE"
)


def _throwaway(path: str) -> bool:
    """A known-hosts file that keeps nothing: ``/dev/null``, or anything else that exists but is not a regular file
    (``none``, no file at all, makes ssh refuse new keys: that is safe)."""
    expanded = os.path.expanduser(path)
    return os.path.exists(expanded) and not os.path.isfile(expanded)


def check_host_keys(label: str, destination: str, port: int | None, arguments: Sequence[str]) -> None:
    """Refuse, before any connection, options under which ssh would not check the device's host key.

    ssh itself says what it would do (``ssh -G`` prints the effective configuration for this host with these
    options), so quoting, case, synonyms and ``~/.ssh/config`` are read as ssh reads them, not matched as text.
    """
    argv = ["ssh", "-G", *arguments, *(["-p", str(port)] if port else []), "--", destination]
    try:
        done = subprocess.run(argv, capture_output=True, stdin=subprocess.DEVNULL, text=True, check=False)
    except FileNotFoundError:
        raise TargetError("ssh not found: install the OpenSSH client to use ssh:// targets") from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise TargetError(
            f"{label}: ssh does not accept the --ssh-option values: {last}; check them against `man ssh_config`"
        )
    config: dict[str, str] = {}
    for line in done.stdout.splitlines():
        key, _, value = line.partition(" ")
        config.setdefault(key.lower(), value.strip())
    strict = config.get("stricthostkeychecking", "ask").lower()
    if strict in ("false", "no", "off"):
        raise TargetError(
            HOST_KEYS_UNCHECKED.format(target=label, what="accept any host key (StrictHostKeyChecking off)")
        )
    files = config.get("userknownhostsfile", "").split()
    if strict == "accept-new" and files and all(_throwaway(f) for f in files):
        what = (
            f"accept any new host key and forget it (StrictHostKeyChecking accept-new, UserKnownHostsFile "
            f"{' '.join(files)}), so every connection is a first one"
        )
        raise TargetError(HOST_KEYS_UNCHECKED.format(target=label, what=what))


class SshTarget(RemoteTarget):
    def __init__(
        self,
        host: str,
        user: str | None = None,
        port: int | None = None,
        python: str = "python3",
        options: Sequence[str] = (),
        state_dir: Path | None = None,
        runner: RunnerMode = "persistent",
    ):
        if not _HOST.match(host):
            raise TargetError(f"ssh target: {host!r} is not a host name or address")
        if user is not None and not _USER.match(user):
            raise TargetError(f"ssh target: {user!r} is not a user name")
        super().__init__(python, state_dir, runner)
        self.host, self.user, self.port = host, user, port
        self._options = [*parse_ssh_options(options), *(a for o in _DEFAULT_OPTIONS for a in ("-o", o))]
        shown = f"[{host}]" if ":" in host else host
        self.label = f"ssh://{user + '@' if user else ''}{shown}{f':{port}' if port else ''}"
        check_host_keys(self.label, self._destination(), port, self._options)

    @classmethod
    def from_spec(cls, spec: str, settings: TargetSettings) -> SshTarget:
        return cls.from_url(spec, settings.ssh_options, settings.state_dir)

    @classmethod
    def from_url(cls, url: str, options: Sequence[str] = (), state_dir: Path | None = None) -> SshTarget:
        """``ssh://[user@]host[:port][?python=/path/to/python3][&runner=per-batch]``."""
        parts = urlsplit(url)
        try:
            port = parts.port
        except ValueError:
            raise TargetError(f"{url}: the port must be a number from 1 to 65535") from None
        if not parts.hostname:
            raise TargetError(f"{url}: name a host, e.g. ssh://pi@raspberrypi.local")
        if parts.password is not None:
            raise TargetError(
                f"{url}: passwords are not accepted in a target; use a key (--ssh-option IdentityFile=...)"
            )
        if parts.path not in ("", "/") or parts.fragment:
            raise TargetError(f"{url}: a target is ssh://user@host[:port]; nothing may follow the port")
        query = parse_qs(parts.query, keep_blank_values=True, strict_parsing=False)
        unknown = sorted(set(query) - {"python", "runner"})
        if unknown:
            raise TargetError(f"{url}: unknown setting(s) {', '.join(unknown)}; the settings are ?python=PATH "
                              f"and ?runner={'|'.join(RUNNER_MODES)}")  # fmt: skip
        python = query.get("python", ["python3"])[-1]
        if not python.strip():
            raise TargetError(f"{url}: ?python= needs the path of a Python interpreter on the device")
        runner = query.get("runner", ["persistent"])[-1]
        if runner not in RUNNER_MODES:
            raise TargetError(f"{url}: ?runner= is {' or '.join(RUNNER_MODES)}, not {runner!r}")
        return cls(parts.hostname, parts.username, port, python, options, state_dir, runner)

    def spelled(self) -> str:
        """The label with the settings that differ from the defaults (``?python=...&runner=...``)."""
        settings = [f"python={self.python}"] if self.python != "python3" else []
        settings += [f"runner={self.runner}"] if self.runner != "persistent" else []
        return self.label + ("?" + "&".join(settings) if settings else "")

    # -- transport --------------------------------------------------------------------------------------

    def _destination(self) -> str:
        return f"{self.user}@{self.host}" if self.user else self.host

    def _run(self, argv: list[str], action: str) -> subprocess.CompletedProcess[bytes]:
        try:
            return subprocess.run(argv, capture_output=True, stdin=subprocess.DEVNULL, check=False)
        except FileNotFoundError:
            raise TargetError(f"{argv[0]} not found: install the OpenSSH client to use ssh:// targets") from None
        except OSError as exc:
            raise TargetError(f"{self.label}: cannot start {argv[0]} for {action} ({exc.strerror})") from None

    def _ssh(self, command: str, action: str) -> subprocess.CompletedProcess[bytes]:
        port = ["-p", str(self.port)] if self.port else []
        done = self._run(["ssh", *self._options, *port, "--", self._destination(), command], action)
        if done.returncode == _EXIT_SSH:
            raise self._unreachable(done.stderr, action)
        return done

    def _scp(self, source: str, destination: str, action: str) -> None:
        port = ["-P", str(self.port)] if self.port else []
        done = self._run(["scp", "-q", *self._options, *port, "--", source, destination], action)
        if done.returncode != 0 and b"No space left on device" in done.stderr:
            raise TargetError(f"{self.label}: no space left on the device ({action}); free some in its TMPDIR")
        if done.returncode != 0:
            raise self._unreachable(done.stderr, action)

    def _remote(self, path: str) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.user + '@' if self.user else ''}{host}:{path}"

    def _unreachable(self, stderr: bytes, action: str) -> TargetUnreachable:
        text = stderr.decode(errors="replace").strip()
        for marker, (reason, hint) in _PERMANENT.items():
            if marker in text:
                return TargetUnreachable(f"{self.label}: {reason} ({action})", hint, transient=False)
        last = text.splitlines()[-1] if text else "connection failed"
        port = f" -p {self.port}" if self.port else ""
        hint = f"check that the device is on and that `ssh{port} {self._destination()} true` works from here"
        return TargetUnreachable(f"{self.label}: {action} failed: {last}", hint)

    def _make_folder(self) -> str:
        done = self._ssh(_MAKE_FOLDER, "making a temporary folder")
        folder = done.stdout.decode(errors="replace").strip()
        if done.returncode != 0 or not _FOLDER.match(folder):
            detail = done.stderr.decode(errors="replace").strip() or folder or "no output"
            raise TargetError(f"{self.label}: `mktemp -d` did not give a plain folder path ({detail})")
        return folder

    def _put(self, local: Path, remote: str) -> None:
        self._scp(str(local.absolute()), self._remote(remote), "copying to the device")

    def _get(self, remote: str, local: Path) -> None:
        self._scp(self._remote(remote), str(local.absolute()), "copying from the device")

    def _exec(self, argv: list[str]) -> subprocess.CompletedProcess[bytes]:
        return self._ssh(" ".join(shlex.quote(a) for a in argv), "running the device runner")

    def _spawn(self, argv: list[str]) -> subprocess.Popen[bytes]:
        """The runner through one ssh session whose stdin and stdout carry the batches."""
        port = ["-p", str(self.port)] if self.port else []
        command = " ".join(shlex.quote(a) for a in argv)
        ssh = ["ssh", *self._options, *port, "--", self._destination(), command]
        try:
            return subprocess.Popen(ssh, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        except FileNotFoundError:
            raise TargetError("ssh not found: install the OpenSSH client to use ssh:// targets") from None
        except OSError as exc:
            raise TargetError(f"{self.label}: cannot start ssh for the device runner ({exc.strerror})") from None

    def _connection_lost(self, returncode: int | None, stderr: str) -> TargetUnreachable | None:
        return self._unreachable(stderr.encode(), "running the device runner") if returncode == _EXIT_SSH else None

    def _files_exist(self, paths: list[str]) -> bool:
        done = self._ssh(" && ".join(f"test -f {shlex.quote(p)}" for p in paths), "checking the device's folder")
        return done.returncode == 0

    def _remove_folder(self, folder: str) -> None:
        if not _FOLDER.match(folder):  # never hand rm -rf anything but a folder we made
            raise TargetError(f"{self.label}: refusing to remove {folder!r}")
        done = self._ssh(f"rm -rf -- {shlex.quote(folder)}", "removing the temporary folder")
        if done.returncode != 0:
            raise TargetError(f"{self.label}: rm -rf {folder} failed: {done.stderr.decode(errors='replace').strip()}")
