"""The ``subprocess`` target: the device runner in a separate Python process on this machine.

It runs the model exactly the way a board does (copied into a fresh folder, loaded once by the standalone
runner, batches framed as ``.npz`` over its stdin and stdout) without a board, so runtime-induced differences between in-process and
device-style inference, or between two runtimes of one Python, can be measured anywhere.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from ondevice_audit.targets.interface import TargetError, TargetSettings
from ondevice_audit.targets.remote import RemoteTarget, RunnerMode

__all__ = ["SubprocessTarget"]


class SubprocessTarget(RemoteTarget):
    label = "subprocess"

    def __init__(self, python: str = sys.executable, state_dir: Path | None = None, runner: RunnerMode = "persistent"):
        super().__init__(python, state_dir, runner)

    @classmethod
    def from_spec(cls, spec: str, settings: TargetSettings) -> SubprocessTarget:
        return cls(state_dir=settings.state_dir)

    def _make_folder(self) -> str:
        return tempfile.mkdtemp(prefix="ondevice-audit.")

    def _put(self, local: Path, remote: str) -> None:
        shutil.copyfile(local, remote)

    def _get(self, remote: str, local: Path) -> None:
        shutil.copyfile(remote, local)

    def _exec(self, argv: list[str]) -> subprocess.CompletedProcess[bytes]:
        try:
            return subprocess.run(argv, capture_output=True, check=False)
        except OSError as exc:
            raise TargetError(f"{self.label}: cannot start {argv[0]} ({exc.strerror})") from None

    def _spawn(self, argv: list[str]) -> subprocess.Popen[bytes]:
        try:
            return subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        except OSError as exc:
            raise TargetError(f"{self.label}: cannot start {argv[0]} ({exc.strerror})") from None

    def _files_exist(self, paths: list[str]) -> bool:
        return all(Path(p).is_file() for p in paths)

    def _remove_folder(self, folder: str) -> None:
        try:
            shutil.rmtree(folder)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise TargetError(f"cannot remove {folder}: {exc.strerror}") from None
