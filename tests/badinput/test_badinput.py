"""The bad-input corpus: every command, fed what a hurried or hostile user would give it.

Each case is a command line run in a copy of the ``world`` fixture (``conftest.py``), with the exit code it must
end with and two patterns its one ``error:`` line on stderr must match: the problem, and the fix. Every case also
checks that there is no traceback, exactly one error line, and that nothing in the folder was written, created
or overwritten (every file's hash and modification time, and the set of folders, are compared).
"""

from __future__ import annotations

import hashlib
import importlib.util
import re
import shlex
import shutil
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ondevice_audit.cli import app


def _load_cases():  # tests/ is not a package (pytest runs with --import-mode=importlib)
    spec = importlib.util.spec_from_file_location("badinput_cases", Path(__file__).with_name("cases.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


_cases = _load_cases()
CASES, Case = _cases.CASES, _cases.Case


def _snapshot(root: Path) -> dict[str, tuple[str, int] | None]:
    """Every file's hash and mtime, every folder by name: what a case must leave as it found it."""
    state: dict[str, tuple[str, int] | None] = {}
    for path in sorted(root.rglob("*")):
        relative = str(path.relative_to(root))
        if path.is_symlink() or path.is_dir():
            state[relative] = None
        else:
            state[relative] = (hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns)
    return state


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input(case: Case, world: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    work = tmp_path / "w"
    shutil.copytree(world, work, symlinks=True)
    if case.setup is not None:
        case.setup(work)
    before = _snapshot(work)
    monkeypatch.chdir(work)
    for variable in ("GITHUB_STEP_SUMMARY", "ONDEVICE_AUDIT_SSH_OPTIONS", "ONDEVICE_AUDIT_WORK_DIR"):
        monkeypatch.delenv(variable, raising=False)
    result = CliRunner().invoke(app, shlex.split(case.argv), env=case.env)
    output = result.stdout + result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in output, output
    assert result.exit_code == case.code, output
    if case.code == 1:  # a gate verdict: the failing rule and its reason are in the table on stdout
        assert re.search(case.problem, result.stdout, re.S) and re.search(case.fix, result.stdout, re.S), output
    else:
        errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1, result.stderr
        assert re.search(case.problem, errors[0]), errors[0]
        assert re.search(case.fix, errors[0]), errors[0]
    assert _snapshot(work) == before, "the case wrote, created or overwrote something"


def test_the_corpus_is_large_and_spans_every_command() -> None:
    commands = {shlex.split(case.argv)[0] for case in CASES}
    assert len(CASES) >= 120
    assert {
        "score",
        "audit",
        "train",
        "export",
        "sweep",
        "gate",
        "report",
        "compare",
        "targets",
        "datasets",
    } <= commands
    assert len({case.id for case in CASES}) == len(CASES)
