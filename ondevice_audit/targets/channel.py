"""The host's end of a persistent device runner (``device_runner.py serve``): frames over its stdin and stdout.

A frame is one JSON header line whose ``size`` says how many bytes of ``.npz`` payload follow it (see the
runner's docstring). The runner is any process with pipes: ``python device_runner.py serve`` here, or the same
command through one ``ssh`` session. Its stderr is drained on a thread (a runner that logs a lot must never
block on a full pipe) and its last lines kept for the error message when it stops.
"""

from __future__ import annotations

import collections
import io
import json
import subprocess
import threading
from typing import Any

import numpy as np

__all__ = ["ChannelClosed", "RunnerChannel"]

_STDERR_LINES = 20
_WAIT_SECONDS = 30
_MAX_PREAMBLE_LINES = 100
"""Lines a login shell may print before the runner's first frame (a chatty ``.bashrc``); skipped."""


class ChannelClosed(Exception):
    """The runner's process ended (or its pipe broke) before a reply: ``returncode`` and the end of its stderr."""

    def __init__(self, returncode: int | None, stderr: str):
        super().__init__(f"the runner stopped (exit status {returncode}): {stderr}")
        self.returncode = returncode
        self.stderr = stderr


def encode_arrays(arrays: dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # type: ignore[arg-type]  # numpy's stub: mypy matches **arrays to allow_pickle: bool too
    return buffer.getvalue()


def decode_arrays(payload: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(payload), allow_pickle=False) as archive:
        return {name: archive[name] for name in archive.files}


class RunnerChannel:
    """One running ``serve`` process: its first frame (the facts), then one reply frame per request frame."""

    def __init__(self, process: subprocess.Popen[bytes]):
        self._process = process
        self._stderr: collections.deque[str] = collections.deque(maxlen=_STDERR_LINES)
        self._drain = threading.Thread(target=self._read_stderr, name="runner-stderr", daemon=True)
        self._drain.start()

    def _read_stderr(self) -> None:
        stream = self._process.stderr
        assert stream is not None
        with stream:
            for line in stream:
                self._stderr.append(line.decode(errors="replace").rstrip())

    def hello(self) -> dict[str, Any]:
        """The runner's first frame, skipping whatever a login shell printed before it."""
        assert self._process.stdout is not None
        for _ in range(_MAX_PREAMBLE_LINES):
            line = self._process.stdout.readline()
            if not line:
                raise self._closed()
            try:
                header = json.loads(line)
            except ValueError:
                continue
            if isinstance(header, dict):
                return header
        raise self._closed()

    def exchange(self, header: dict[str, Any], arrays: dict[str, np.ndarray]) -> tuple[dict[str, Any], dict]:
        """Send one request with its arrays; the reply's header and arrays (empty for an error reply)."""
        assert self._process.stdin is not None and self._process.stdout is not None
        payload = encode_arrays(arrays)
        try:
            self._process.stdin.write((json.dumps(dict(header, size=len(payload))) + "\n").encode())
            self._process.stdin.write(payload)
            self._process.stdin.flush()
        except (BrokenPipeError, ConnectionResetError, ValueError):  # ValueError: the pipe was closed
            raise self._closed() from None
        line = self._process.stdout.readline()
        if not line:
            raise self._closed()
        try:
            reply = json.loads(line)
            size = int(reply.get("size", 0))
        except (ValueError, AttributeError):
            raise ChannelClosed(None, f"a reply that is not a frame: {line[:200]!r}") from None
        body = self._process.stdout.read(size) if size else b""
        if len(body) < size:
            raise self._closed()
        return reply, (decode_arrays(body) if size else {})

    def _closed(self) -> ChannelClosed:
        try:
            returncode = self._process.wait(timeout=_WAIT_SECONDS)
        except subprocess.TimeoutExpired:
            self._process.kill()
            returncode = self._process.wait()
        self._drain.join(timeout=5)
        return ChannelClosed(returncode, "\n".join(self._stderr))

    def close(self) -> None:
        """Tell the runner to stop and wait for it (killed if it does not stop); never raises."""
        process = self._process
        if process.poll() is None and process.stdin is not None:
            try:
                process.stdin.write(b'{"command": "close"}\n')
                process.stdin.close()
            except (BrokenPipeError, ConnectionResetError, ValueError):
                pass
        try:
            process.wait(timeout=_WAIT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        self._drain.join(timeout=5)
        if process.stdout is not None:
            process.stdout.close()
