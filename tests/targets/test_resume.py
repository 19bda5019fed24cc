"""Retries with backoff and the store of finished batches, on a session that fails on demand; target names."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ondevice_audit.progress import NullProgress
from ondevice_audit.targets import TargetUnreachable, parse_target
from ondevice_audit.targets.interface import InferenceResult, TargetSession
from ondevice_audit.targets.resume import BatchStore, ResumableRun, RetryPolicy
from ondevice_audit.targets.ssh import SshTarget

INPUTS = np.arange(24, dtype=np.float32).reshape(6, 4)


class FlakySession(TargetSession):
    def __init__(self, failures: list[TargetUnreachable]):
        self.failures = failures
        self.calls = 0
        self.recovered = 0
        self.notes = []

    def run(self, inputs: np.ndarray, batch_size: int) -> InferenceResult:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return InferenceResult(inputs[:, :2] * 2, np.full(len(inputs), 0.001), 1234)

    def recover(self) -> None:
        self.recovered += 1


def _run(session, store=None, retries=3, sleeps=None) -> ResumableRun:
    policy = RetryPolicy(retries=retries, backoff_seconds=0.5)
    return ResumableRun(session, "dev", store, policy, NullProgress(), (sleeps if sleeps is not None else []).append)


def test_a_dropped_batch_is_retried_with_doubling_backoff():
    sleeps: list[float] = []
    session = FlakySession([TargetUnreachable("dropped", "hint"), TargetUnreachable("dropped", "hint")])
    run = _run(session, sleeps=sleeps)
    result = run.run(INPUTS, 4)
    np.testing.assert_array_equal(result.scores, INPUTS[:, :2] * 2)
    assert sleeps == [0.5, 1.0] and session.recovered == 2 and run.stats.retries == 2


def test_retries_are_bounded_and_say_how_to_resume(tmp_path):
    session = FlakySession([TargetUnreachable("dropped", "hint") for _ in range(5)])
    run = _run(session, BatchStore(tmp_path, "a" * 64, {"target": "x"}), retries=1)
    with pytest.raises(TargetUnreachable, match="after 1 retries.*run the same command again to resume"):
        run.run(INPUTS, 4)
    assert session.calls == 2


def test_a_refused_login_is_not_retried():
    sleeps: list[float] = []
    session = FlakySession([TargetUnreachable("denied", "authorize a key", transient=False)])
    with pytest.raises(TargetUnreachable, match="authorize a key"):
        _run(session, sleeps=sleeps).run(INPUTS, 4)
    assert session.calls == 1 and sleeps == []


def test_finished_batches_are_read_back_instead_of_run(tmp_path):
    identity = {"target": "ssh://pi", "runtime": "litert"}
    first = _run(FlakySession([]), BatchStore(tmp_path, "a" * 64, identity))
    expected = first.run(INPUTS, 4)
    session = FlakySession([])
    second = _run(session, BatchStore(tmp_path, "a" * 64, identity))
    stored = second.run(INPUTS, 4)
    assert session.calls == 0 and second.stats.from_cache == 1
    np.testing.assert_array_equal(stored.scores, expected.scores)
    np.testing.assert_array_equal(stored.latency, expected.latency)
    assert stored.peak_memory_bytes == 1234
    second.run(INPUTS + 1, 4)  # other inputs
    _run(session, BatchStore(tmp_path, "a" * 64, {**identity, "runtime": "tf_lite"})).run(INPUTS, 4)  # other runtime
    assert session.calls == 2


def test_a_damaged_stored_batch_is_run_again(tmp_path):
    store = BatchStore(tmp_path, "a" * 64, {"target": "x"})
    _run(FlakySession([]), store).run(INPUTS, 4)
    (stored,) = Path(store.folder).glob("*.npz")
    stored.write_bytes(b"truncated")
    session = FlakySession([])
    _run(session, store).run(INPUTS, 4)
    assert session.calls == 1


def test_ssh_target_names():
    target = SshTarget.from_url("ssh://pi@raspberrypi.local:2222?python=/opt/venv/bin/python")
    assert (target.label, target.user, target.port, target.python) == (
        "ssh://pi@raspberrypi.local:2222",
        "pi",
        2222,
        "/opt/venv/bin/python",
    )
    assert SshTarget.from_url("ssh://jetson").label == "ssh://jetson"
    assert SshTarget.from_url("ssh://[fe80::1]:22").label == "ssh://[fe80::1]:22"
    assert parse_target("subprocess").label == "subprocess" and parse_target(" local ").label == "local"
