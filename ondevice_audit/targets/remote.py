"""Targets that run ``device_runner.py`` in a Python of their own: a subprocess here, or a board over SSH.

A session makes a fresh folder on the target, copies the runner and the model into it (the model always as
``model.tflite`` / ``model.onnx``: no name the user chose ever reaches the target), and asks the runner which
runtime loads the model. Each batch is an ``.npz`` of inputs copied there, one runner call, and the outputs
``.npz`` copied back. Closing the session removes the folder; a folder that cannot be removed (the target went
away) is remembered in the work folder and removed the next time the target is used.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import posixpath
import secrets
import shutil
import signal
import subprocess
import tempfile
from abc import abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ondevice_audit._files import model_format
from ondevice_audit.targets import device_runner
from ondevice_audit.targets.interface import (
    InferenceResult,
    LoadedModel,
    RuntimeStatus,
    Target,
    TargetCannotRun,
    TargetError,
    TargetFacts,
    TargetSession,
    TargetUnreachable,
)
from ondevice_audit.targets.runner_names import joined_name, runner_runtimes, split_name

if TYPE_CHECKING:
    from ondevice_audit.runtimes import RuntimeOptions

__all__ = ["RUNNER_PATH", "RUNNER_SHA256", "RemoteSession", "RemoteTarget", "facts_from_reply"]

RUNNER_PATH = Path(device_runner.__file__)
RUNNER_SHA256 = hashlib.sha256(RUNNER_PATH.read_bytes()).hexdigest()
_RUNNER_NAME = "device_runner.py"
_EXIT_ERROR = 3
_EXIT_NOT_FOUND = 127
_EXIT_KILLED = 128 + signal.SIGKILL
"""What a shell reports for a program the kernel killed (the out-of-memory killer's signal)."""


def facts_from_reply(label: str, reply: dict[str, Any]) -> TargetFacts:
    """``TargetFacts`` from the runner's ``facts`` reply (or the same dict built in-process)."""
    runtimes = [
        RuntimeStatus(r["name"], r["format"], bool(r["usable"]), r.get("version"), r.get("note"),
                      tuple(r.get("kernels") or ()))  # fmt: skip
        for r in reply.get("runtimes", [])
    ]
    model = reply.get("model")
    known = {"python", "machine", "system", "runtimes", "free_disk_bytes", "memory_total_bytes", "cpu_count",
             "python_executable", "model", "model_error", "protocol"}  # fmt: skip
    return TargetFacts(
        target=label,
        python=str(reply.get("python", "unknown")),
        machine=str(reply.get("machine", "unknown")),
        system=str(reply.get("system", "unknown")),
        runtimes=runtimes,
        free_disk_bytes=reply.get("free_disk_bytes"),
        memory_total_bytes=reply.get("memory_total_bytes"),
        cpu_count=reply.get("cpu_count"),
        python_executable=reply.get("python_executable"),
        details={k: v for k, v in reply.items() if k not in known},
        model=None if model is None else LoadedModel(**model),
        model_error=reply.get("model_error"),
    )


class RemoteTarget(Target):
    """The runner protocol on top of five transport operations each target implements."""

    resumable = True

    def __init__(self, python: str, state_dir: Path | None = None):
        self.python = python
        self.state_dir = state_dir

    # -- transport --------------------------------------------------------------------------------------

    @abstractmethod
    def _make_folder(self) -> str:
        """A new, empty folder on the target, private to this session."""

    @abstractmethod
    def _put(self, local: Path, remote: str) -> None: ...

    @abstractmethod
    def _get(self, remote: str, local: Path) -> None: ...

    @abstractmethod
    def _exec(self, argv: list[str]) -> subprocess.CompletedProcess[bytes]:
        """Run ``argv`` on the target; a ``TargetUnreachable`` when the transport, not the program, failed."""

    @abstractmethod
    def _files_exist(self, paths: list[str]) -> bool: ...

    @abstractmethod
    def _remove_folder(self, folder: str) -> None:
        """Remove a folder ``_make_folder`` made; a ``TargetError`` when that fails."""

    # -- the runner protocol ------------------------------------------------------------------------------

    def call_runner(self, folder: str, args: list[str]) -> dict[str, Any]:
        """One runner command; its JSON reply, or the error it reported as a ``TargetError``."""
        done = self._exec([self.python, posixpath.join(folder, _RUNNER_NAME), *args])
        stdout = done.stdout.decode(errors="replace").strip().splitlines()
        stderr = done.stderr.decode(errors="replace").strip()
        reply: dict[str, Any] | None = None
        if stdout:
            try:
                reply = json.loads(stdout[-1])
            except json.JSONDecodeError:
                reply = None
        if done.returncode == 0 and isinstance(reply, dict):
            return reply
        if isinstance(reply, dict) and "error" in reply:
            error = TargetCannotRun if reply.get("kind") in ("runtime", "model") else TargetError
            raise error(f"{self.label}: {reply['error']}")
        if done.returncode == _EXIT_NOT_FOUND:
            raise TargetError(
                f"{self.label}: {self.python} not found on the target; install Python 3.7+ with numpy "
                "(and a runtime), or name the interpreter (ssh://host?python=/path/to/python)"
            )
        if done.returncode in (_EXIT_KILLED, -signal.SIGKILL):
            raise TargetError(f"{self.label}: the device runner was killed (out of memory? try a smaller --batch-size)")
        last = stderr.splitlines()[-1] if stderr else "no output"
        raise TargetError(f"{self.label}: the device runner failed (exit status {done.returncode}): {last}")

    def _prepare(self, model_path: Path | None) -> tuple[str, str | None]:
        """A fresh folder holding the runner (and the model); returns the folder and the model's path there."""
        self._remove_stale_folders()
        folder = self._make_folder()
        try:
            self._put(RUNNER_PATH, posixpath.join(folder, _RUNNER_NAME))
            remote_model = None
            if model_path is not None:
                remote_model = posixpath.join(folder, f"model.{model_format(model_path)}")
                self._put(model_path.resolve(), remote_model)
        except BaseException:
            self.discard_folder(folder)
            raise
        return folder, remote_model

    def check(
        self, model_path: Path | None = None, runtime: str | None = None, options: RuntimeOptions | None = None
    ) -> TargetFacts:
        if model_path is not None:
            _check_model(model_path, runtime, options)
        folder, remote_model = self._prepare(model_path)
        try:
            args = ["facts", "--workdir", folder]
            if remote_model:
                args += ["--model", remote_model, *runner_arguments(runtime, options)]
            reply = self.call_runner(folder, args)
        finally:
            self.discard_folder(folder)
        facts = facts_from_reply(self.label, reply)
        if facts.model is not None and runtime:
            facts = dataclasses.replace(facts, model=dataclasses.replace(facts.model, runtime=runtime))
        return facts

    def open(self, model_path: Path, runtime: str | None = None, options: RuntimeOptions | None = None) -> TargetSession:
        _check_model(model_path, runtime, options)
        return RemoteSession(self, model_path, runtime, options)

    def cache_identity(self) -> str:
        return f"{self.label} python={self.python} runner={RUNNER_SHA256}"

    # -- folders the target kept --------------------------------------------------------------------------

    def discard_folder(self, folder: str) -> str | None:
        """Remove ``folder``; when the target cannot be reached, remember it for next time and say so."""
        try:
            self._remove_folder(folder)
        except TargetError as exc:
            self._remember_stale(folder)
            return f"could not remove {folder} on {self.label} ({exc}); it is removed the next time this target is used"
        return None

    def _stale_file(self) -> Path | None:
        if self.state_dir is None:
            return None
        digest = hashlib.sha256(self.cache_identity().encode()).hexdigest()[:16]
        return self.state_dir / f"stale-folders-{digest}.txt"

    def _remember_stale(self, folder: str) -> None:
        path = self._stale_file()
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a") as handle:
                handle.write(folder + "\n")

    def _remove_stale_folders(self) -> None:
        path = self._stale_file()
        if path is None or not path.is_file():
            return
        folders = [f for f in dict.fromkeys(path.read_text().split("\n")) if f]
        kept = []
        for i, folder in enumerate(folders):
            try:
                self._remove_folder(folder)
            except TargetUnreachable:  # still away: keep this one and the rest for next time
                kept += folders[i:]
                break
            except TargetError:
                kept.append(folder)
        if kept:
            path.write_text("".join(f + "\n" for f in kept))
        else:
            path.unlink()


def _check_model(model_path: Path, runtime: str | None, options: RuntimeOptions | None = None) -> None:
    """What can be refused before the target is contacted."""
    if not model_path.exists():
        raise TargetError(f"model not found: {model_path}")
    if options is not None and options.stream is not None:
        raise TargetError(
            "a streaming detector runs in this process (--target local): the device runner feeds whole inputs "
            "and cannot keep a model's state between calls"
        )
    fmt = model_format(model_path)
    if fmt not in ("tflite", "onnx"):
        raise TargetError(f"{model_path.name}: targets other than local run .tflite and .onnx models, not {fmt}")
    if runtime is None:
        return
    known = runner_runtimes()
    if runtime not in known:
        names = ", ".join(f"{n} ({f})" for n, f in known.items())
        raise TargetError(f"unknown runtime {runtime!r} for a device; choose one of {names}")
    if known[runtime] != fmt:
        raise TargetError(f"runtime {runtime} runs {known[runtime]} models, not {fmt} ({model_path.name})")


def runner_arguments(runtime: str | None, options: RuntimeOptions | None) -> list[str]:
    """The runner's ``--runtime``, ``--kernels``, ``--threads``, ``--graph-optimization`` and ``--output`` for a
    runtime as the host names it (``litert-ref``) and ``options``."""
    args: list[str] = []
    if runtime:
        base, kernels = split_name(runtime)
        args += ["--runtime", base] + (["--kernels", kernels] if kernels != "default" else [])
    if options is not None:
        settings = {"--threads": options.threads, "--graph-optimization": options.graph_optimization,
                    "--output": options.output}  # fmt: skip
        args += [item for flag, value in settings.items() if value is not None for item in (flag, str(value))]
    return args


class RemoteSession(TargetSession):
    def __init__(
        self, target: RemoteTarget, model_path: Path, runtime: str | None, options: RuntimeOptions | None = None
    ):
        self._target = target
        self._options = options
        self._model_path = model_path
        self._runtime = runtime
        self._scratch = Path(tempfile.mkdtemp(prefix="ondevice-audit-batches-"))
        self._folder: str | None = None
        self._remote_model = ""
        self._previous_output: str | None = None
        self.notes: list[str] = []
        try:
            self._setup()
        except BaseException:
            self.close()
            raise

    def _setup(self) -> None:
        folder, remote_model = self._target._prepare(self._model_path)
        self._folder, self._remote_model = folder, str(remote_model)
        self._previous_output = None
        args = ["facts", "--workdir", folder, "--model", self._remote_model]
        reply = self._target.call_runner(folder, args + runner_arguments(self._runtime, self._options))
        facts = facts_from_reply(self._target.label, reply)
        if facts.model is None:
            raise TargetCannotRun(f"{self._target.label}: {facts.model_error}")
        # every batch on the runtime that loaded it first, named as the host names it (kernels included)
        self._runtime = joined_name(facts.model.runtime, split_name(self._runtime or "")[1])
        self.model, self.device = dataclasses.replace(facts.model, runtime=self._runtime), facts

    def recover(self) -> None:
        folder = self._folder
        if folder and self._target._files_exist([posixpath.join(folder, _RUNNER_NAME), self._remote_model]):
            return
        self._folder = None
        if folder:
            self._target.discard_folder(folder)
        self._setup()

    def run(self, inputs: np.ndarray, batch_size: int) -> InferenceResult:
        if self._folder is None:  # a recover() that failed half-way left no folder
            self._setup()
        folder = str(self._folder)
        token = secrets.token_hex(8)
        local_in, local_out = self._scratch / f"in-{token}.npz", self._scratch / f"out-{token}.npz"
        remote_in, remote_out = posixpath.join(folder, f"in-{token}.npz"), posixpath.join(folder, f"out-{token}.npz")
        try:
            np.savez(local_in, inputs=np.ascontiguousarray(inputs, dtype=np.float32))
            self._target._put(local_in, remote_in)
            args = ["run", "--model", self._remote_model, "--inputs", remote_in, "--outputs", remote_out,
                    "--batch-size", str(batch_size), *runner_arguments(self._runtime, self._options)]  # fmt: skip
            if self._previous_output:
                args += ["--discard", self._previous_output]
            reply = self._target.call_runner(folder, args)
            self._target._get(remote_out, local_out)
            self._previous_output = remote_out
            with np.load(local_out, allow_pickle=False) as archive:
                scores = np.asarray(archive["scores"], dtype=np.float32)
                latency = np.asarray(archive["latency"], dtype=np.float64)
        finally:
            local_in.unlink(missing_ok=True)
            local_out.unlink(missing_ok=True)
        if len(scores) != len(inputs) or latency.shape != (len(inputs),):
            raise TargetError(f"{self._target.label}: the runner returned {len(scores)} rows for {len(inputs)} inputs")
        peak = reply.get("peak_memory_bytes")
        return InferenceResult(scores.reshape(len(inputs), -1), latency, None if peak is None else int(peak))

    def close(self) -> None:
        if self._folder is not None:
            note = self._target.discard_folder(self._folder)
            if note:
                self.notes.append(note)
            self._folder = None
        shutil.rmtree(self._scratch, ignore_errors=True)
