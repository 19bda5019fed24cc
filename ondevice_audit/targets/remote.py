"""Targets that run ``device_runner.py`` in a Python of their own: a subprocess here, or a board over SSH.

A session makes a fresh folder on the target, copies the runner and the model into it (the model always as
``model.tflite`` / ``model.onnx``: no name the user chose ever reaches the target), and starts one runner
(``serve``) that loads the model once and answers every batch of the run over its stdin and stdout (one SSH
session): a batch costs its transfer and its inference, not a connection, a fresh Python and a model load.
The previous scheme, kept for comparison (``ssh://host?runner=per-batch``), copies each batch there as an
``.npz``, starts the runner for it and copies the outputs back. Closing the session stops the runner and
removes the folder; a folder that cannot be removed (the target went away) is remembered in the work folder and
removed the next time the target is used.

A streaming detector (``RuntimeOptions.stream``) is stepped as in this process (``runtimes/streaming.py``): the
host cuts each clip's frames into the model's windows and turns the per-call outputs into the clip's score
(``Stepping``: one definition of the windows, the smoothing and the maximum); the device only makes the calls. A
stateful model's clips go in a ``stream`` request, each clip's calls in order on a fresh interpreter there; a
stateless (windowed) model's windows are an ordinary batch, one clip's windows per inference call as here.
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
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from ondevice_audit._files import model_format
from ondevice_audit.runtimes.streaming import Stepping, streamed_model
from ondevice_audit.targets import device_runner
from ondevice_audit.targets.channel import ChannelClosed, RunnerChannel
from ondevice_audit.targets.interface import (
    FrontendResult,
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

__all__ = ["RUNNER_MODES", "RUNNER_PATH", "RUNNER_SHA256", "RemoteSession", "RemoteTarget", "facts_from_reply"]

RUNNER_PATH = Path(device_runner.__file__)
RUNNER_SHA256 = hashlib.sha256(RUNNER_PATH.read_bytes()).hexdigest()
_RUNNER_NAME = "device_runner.py"
_EXIT_ERROR = 3
_EXIT_NOT_FOUND = 127
_EXIT_KILLED = 128 + signal.SIGKILL
"""What a shell reports for a program the kernel killed (the out-of-memory killer's signal)."""
RunnerMode = Literal["persistent", "per-batch"]
RUNNER_MODES: tuple[RunnerMode, ...] = ("persistent", "per-batch")
"""``persistent``: one runner for the whole run (the default); ``per-batch``: a runner started for every batch."""


def facts_from_reply(label: str, reply: dict[str, Any]) -> TargetFacts:
    """``TargetFacts`` from the runner's ``facts`` reply (or the same dict built in-process)."""
    runtimes = [
        RuntimeStatus(r["name"], r["format"], bool(r["usable"]), r.get("version"), r.get("note"),
                      tuple(r.get("kernels") or ()))  # fmt: skip
        for r in reply.get("runtimes", [])
    ]
    model = reply.get("model")
    known = {"python", "machine", "system", "runtimes", "free_disk_bytes", "memory_total_bytes", "cpu_count",
             "python_executable", "model", "model_error", "protocol", "requests"}  # fmt: skip
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
    """The runner protocol on top of the transport operations each target implements (a folder, copies both
    ways, a command, a process with pipes, a file check, removal)."""

    resumable = True
    computes_features = True

    def __init__(self, python: str, state_dir: Path | None = None, runner: RunnerMode = "persistent"):
        if runner not in RUNNER_MODES:
            raise TargetError(f"unknown runner scheme {runner!r}; choose {' or '.join(RUNNER_MODES)}")
        self.python = python
        self.state_dir = state_dir
        self.runner = runner

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
    def _spawn(self, argv: list[str]) -> subprocess.Popen[bytes]:
        """Start ``argv`` on the target with its stdin, stdout and stderr piped to this process."""

    @abstractmethod
    def _files_exist(self, paths: list[str]) -> bool: ...

    @abstractmethod
    def _remove_folder(self, folder: str) -> None:
        """Remove a folder ``_make_folder`` made; a ``TargetError`` when that fails."""

    # -- the runner protocol ------------------------------------------------------------------------------

    def runner_argv(self, folder: str, args: list[str]) -> list[str]:
        return [self.python, posixpath.join(folder, _RUNNER_NAME), *args]

    def call_runner(self, folder: str, args: list[str]) -> dict[str, Any]:
        """One runner command; its JSON reply, or the error it reported as a ``TargetError``."""
        done = self._exec(self.runner_argv(folder, args))
        stdout = done.stdout.decode(errors="replace").strip().splitlines()
        reply: dict[str, Any] | None = None
        if stdout:
            try:
                reply = json.loads(stdout[-1])
            except json.JSONDecodeError:
                reply = None
        if done.returncode == 0 and isinstance(reply, dict):
            return reply
        if isinstance(reply, dict) and "error" in reply:
            raise self.runner_error(reply)
        raise self.runner_stopped(done.returncode, done.stderr.decode(errors="replace"))

    def runner_error(self, reply: dict[str, Any]) -> TargetError:
        """The error a runner reported in its reply."""
        error = TargetCannotRun if reply.get("kind") in ("runtime", "model") else TargetError
        return error(f"{self.label}: {reply['error']}")

    def _connection_lost(self, returncode: int | None, stderr: str) -> TargetUnreachable | None:
        """The transport's own failure, when that is why a runner process ended (ssh's exit status 255)."""
        return None

    def runner_stopped(self, returncode: int | None, stderr: str) -> TargetError:
        """Why a runner ended without a reply, from its exit status and the end of its stderr."""
        lost = self._connection_lost(returncode, stderr)
        if lost is not None:
            return lost
        if returncode == _EXIT_NOT_FOUND:
            return TargetError(
                f"{self.label}: {self.python} not found on the target; install Python 3.7+ with numpy "
                "(and a runtime), or name the interpreter (ssh://host?python=/path/to/python)"
            )
        if returncode in (_EXIT_KILLED, -signal.SIGKILL):
            return TargetError(
                f"{self.label}: the device runner was killed (out of memory? try a smaller --batch-size)"
            )
        lines = stderr.strip().splitlines()
        return TargetError(
            f"{self.label}: the device runner failed (exit status {returncode}): {lines[-1] if lines else 'no output'}"
        )

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
        session = PersistentSession if self.runner == "persistent" else PerBatchSession
        return session(self, model_path, runtime, options)

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
    """The runner and the model in a fresh folder on the target; subclasses say how batches reach the runner."""

    def __init__(
        self, target: RemoteTarget, model_path: Path, runtime: str | None, options: RuntimeOptions | None = None
    ):
        self._target = target
        self._options = options
        self._model_path = model_path
        self._runtime = runtime
        self._folder: str | None = None
        self._remote_model = ""
        self._stepping: Stepping | None = None
        self.notes: list[str] = []
        try:
            self._setup()
        except BaseException:
            self.close()
            raise

    def _setup(self) -> None:
        folder, remote_model = self._target._prepare(self._model_path)
        self._folder, self._remote_model = folder, str(remote_model)
        reply = self._start()
        facts = facts_from_reply(self._target.label, reply)
        if facts.model is None:
            raise TargetCannotRun(f"{self._target.label}: {facts.model_error}")
        # every batch on the runtime that loaded it first, named as the host names it (kernels included)
        self._runtime = joined_name(facts.model.runtime, split_name(self._runtime or "")[1])
        self.model, self.device = dataclasses.replace(facts.model, runtime=self._runtime), facts
        stream = self._options.stream if self._options is not None else None
        if stream is not None:
            if stream.stateful and "stream" not in reply.get("requests", ()):
                raise TargetCannotRun(f"{self._target.label}: the device runner there (protocol "
                                      f"{reply.get('protocol')}) cannot keep a streaming model's state")  # fmt: skip
            self._stepping = Stepping(self.model.input_shape[1:], stream, self._model_path.name)
            self.model = streamed_model(self.model)

    def _runner_args(self) -> list[str]:
        """The runtime, kernels, threads, graph optimization and output the runner opens the model with."""
        return runner_arguments(self._runtime, self._options)

    @abstractmethod
    def _start(self) -> dict[str, Any]:
        """Get the runner ready for batches in ``self._folder``; its facts reply, with the model's."""

    @abstractmethod
    def _stop(self) -> None:
        """Stop what ``_start`` started; never raises."""

    @abstractmethod
    def _batch(
        self, arrays: dict[str, np.ndarray], batch_size: int, frontend: dict[str, Any] | None, stream: bool
    ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """One batch through the runner (with ``stream``, a streaming model's clips): its reply and outputs."""

    def recover(self) -> None:
        """After a dropped connection: restart the runner, on the same folder if the target kept it."""
        self._stop()
        folder = self._folder
        if folder and self._target._files_exist([posixpath.join(folder, _RUNNER_NAME), self._remote_model]):
            self._start()
            return
        self._folder = None
        if folder:
            self._target.discard_folder(folder)
        self._setup()

    def _outputs(
        self,
        arrays: dict[str, np.ndarray],
        batch_size: int,
        frontend: dict[str, Any] | None = None,
        stream: bool = False,
    ) -> tuple[dict[str, np.ndarray], int | None]:
        if self._folder is None:  # a recover() that failed half-way left no folder
            self._setup()
        reply, outputs = self._batch(arrays, batch_size, frontend, stream)
        n = len(next(iter(arrays.values())))
        scores, latency = outputs.get("scores"), outputs.get("latency")
        if scores is None or latency is None or len(scores) != n or latency.shape != (n,):
            rows = "no" if scores is None else len(scores)
            raise TargetError(f"{self._target.label}: the runner returned {rows} rows for {n} inputs")
        peak = reply.get("peak_memory_bytes")
        return outputs, None if peak is None else int(peak)

    def run(self, inputs: np.ndarray, batch_size: int) -> InferenceResult:
        if self._stepping is not None:
            return self._run_stream(inputs, self._stepping)
        outputs, peak = self._outputs({"inputs": np.ascontiguousarray(inputs, dtype=np.float32)}, batch_size)
        scores = np.asarray(outputs["scores"], dtype=np.float32).reshape(len(inputs), -1)
        return InferenceResult(scores, np.asarray(outputs["latency"], dtype=np.float64), peak)

    def _run_stream(self, clips: np.ndarray, stepping: Stepping) -> InferenceResult:
        """Clips' frames to their scores: the windows cut and the outputs reduced here, the calls made there
        (a clip's windows in one call for a stateless model, as ``StreamingRuntime`` batches them)."""
        windows = np.ascontiguousarray(stepping.windows(clips), dtype=np.float32)
        n, calls = windows.shape[:2]
        if stepping.settings.stateful:
            outputs, peak = self._outputs({"inputs": windows}, calls, stream=True)
            latency = np.asarray(outputs["latency"], dtype=np.float64)
        else:
            outputs, peak = self._outputs({"inputs": windows.reshape(n * calls, *windows.shape[2:])}, calls)
            latency = np.asarray(outputs["latency"], dtype=np.float64).reshape(n, calls).sum(axis=1)
        per_call = np.asarray(outputs["scores"], dtype=np.float32).reshape(n, calls, -1)
        return InferenceResult(stepping.scores(per_call), latency, peak)

    def run_frontend(
        self, audio: np.ndarray, inputs: np.ndarray, batch_size: int, frontend: dict[str, Any]
    ) -> FrontendResult:
        arrays = {"audio": np.ascontiguousarray(audio, dtype=np.float32),
                  "inputs": np.ascontiguousarray(inputs, dtype=np.float32)}  # fmt: skip
        outputs, peak = self._outputs(arrays, batch_size, frontend)
        n = len(inputs)
        return FrontendResult(
            np.asarray(outputs["scores"], dtype=np.float32).reshape(n, -1),
            np.asarray(outputs["latency"], dtype=np.float64),
            peak,
            host_scores=np.asarray(outputs["host_scores"], dtype=np.float32).reshape(n, -1),
            feature_diff=np.asarray(outputs["feature_diff"], dtype=np.float64),
            feature_latency=np.asarray(outputs["feature_latency"], dtype=np.float64),
        )

    def close(self) -> None:
        self._stop()
        if self._folder is not None:
            note = self._target.discard_folder(self._folder)
            if note:
                self.notes.append(note)
            self._folder = None


class PersistentSession(RemoteSession):
    """One ``serve`` runner for the whole run: the model loaded once, batches framed over one channel."""

    _channel: RunnerChannel | None = None

    def _start(self) -> dict[str, Any]:
        args = ["serve", "--workdir", str(self._folder), "--model", self._remote_model, *self._runner_args()]
        argv = self._target.runner_argv(str(self._folder), args)
        self._channel = RunnerChannel(self._target._spawn(argv))
        try:
            reply = self._channel.hello()
        except ChannelClosed as closed:
            self._stop()
            raise self._target.runner_stopped(closed.returncode, closed.stderr) from None
        if "error" in reply:
            self._stop()
            raise self._target.runner_error(reply)
        return reply

    def _stop(self) -> None:
        if self._channel is not None:
            self._channel.close()
            self._channel = None

    def _batch(
        self, arrays: dict[str, np.ndarray], batch_size: int, frontend: dict[str, Any] | None, stream: bool
    ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        if self._channel is None:  # a runner a failed recover() did not restart
            self._start()
        assert self._channel is not None
        header: dict[str, Any] = {"command": "stream" if stream else "run", "batch_size": batch_size}
        if frontend is not None:
            header["frontend"] = frontend
        try:
            reply, outputs = self._channel.exchange(header, arrays)
        except ChannelClosed as closed:
            self._stop()
            raise self._target.runner_stopped(closed.returncode, closed.stderr) from None
        if "error" in reply:
            raise self._target.runner_error(reply)
        return reply, outputs


class PerBatchSession(RemoteSession):
    """The previous scheme: per batch, the inputs copied there as ``.npz``, one runner process (a fresh Python
    and model load), the outputs copied back; over SSH three connections a batch."""

    _scratch: Path | None = None
    _previous_output: str | None = None

    def _start(self) -> dict[str, Any]:
        self._previous_output = None
        args = ["facts", "--workdir", str(self._folder), "--model", self._remote_model, *self._runner_args()]
        return self._target.call_runner(str(self._folder), args)

    def _stop(self) -> None:
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None

    def _batch(
        self, arrays: dict[str, np.ndarray], batch_size: int, frontend: dict[str, Any] | None, stream: bool
    ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        if self._scratch is None:
            self._scratch = Path(tempfile.mkdtemp(prefix="ondevice-audit-batches-"))
        folder, token = str(self._folder), secrets.token_hex(8)
        local_in, local_out = self._scratch / f"in-{token}.npz", self._scratch / f"out-{token}.npz"
        remote_in, remote_out = posixpath.join(folder, f"in-{token}.npz"), posixpath.join(folder, f"out-{token}.npz")
        try:
            np.savez(local_in, **arrays)  # type: ignore[arg-type]  # numpy's stub: mypy matches **arrays to allow_pickle: bool too
            self._target._put(local_in, remote_in)
            args = ["run", "--model", self._remote_model, "--inputs", remote_in, "--outputs", remote_out,
                    "--batch-size", str(batch_size), *self._runner_args()]  # fmt: skip
            if frontend is not None:
                args += ["--frontend", json.dumps(frontend, sort_keys=True)]
            if stream:
                args.append("--stream")
            if self._previous_output:
                args += ["--discard", self._previous_output]
            reply = self._target.call_runner(folder, args)
            self._target._get(remote_out, local_out)
            self._previous_output = remote_out
            with np.load(local_out, allow_pickle=False) as archive:
                outputs = {name: archive[name] for name in archive.files}
        finally:
            local_in.unlink(missing_ok=True)
            local_out.unlink(missing_ok=True)
        return reply, outputs
