"""A command or option that needs a missing extra says which one in one line (exit 2); --help never needs one.

The extra is made missing for real in a subprocess: ``sys.modules[name] = None`` makes Python's import system
refuse the module exactly as for one that is not installed (the wheel check in CI does the same on a core-only
install).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MODEL = REPO / "models" / "kws-ds-cnn" / "model.tflite"
MANIFEST = REPO / "datasets" / "synth-kws" / "manifest.csv"


def run_without(module: str, *args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    code = (
        f"import sys; sys.modules[{module!r}] = None\n"
        "from ondevice_audit.cli import main\n"
        f"sys.argv = ['ondevice-audit', *{[str(a) for a in args]!r}]\n"
        "main()\n"
    )
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd)


@pytest.mark.parametrize(
    ("module", "args", "extra"),
    [
        ("tensorflow", ["train", "--data", MANIFEST, "--recipe", "ds-cnn", "--out", "out"], "train"),
        ("tensorflow", ["sweep", "--matrix", REPO / "examples" / "matrix-demo.toml", "--out", "out"], "train"),
        ("tflite_micro", ["audit", MODEL, "--data", MANIFEST, "-g", "gender", "--runtime", "tflm"], "mcu"),
        ("tflite_micro", ["audit", MODEL, "--data", MANIFEST, "-g", "gender", "--board", "nano33ble"], "mcu"),
    ],
)
def test_a_missing_extra_is_one_line_naming_it(module: str, args: list, extra: str, tmp_path: Path) -> None:
    done = run_without(module, *args, cwd=tmp_path)
    errors = [line for line in done.stderr.splitlines() if not line.startswith("✓")]
    assert done.returncode == 2, done.stderr
    assert len(errors) == 1 and errors[0].startswith("error: ")
    assert f"'{extra}' extra" in errors[0] and f"pip install 'ondevice-audit[{extra}]'" in errors[0]
    assert not (tmp_path / "out").exists()


def test_help_needs_no_extra(tmp_path: Path) -> None:
    for command in (["train"], ["sweep"], ["export"], ["demo"], ["audit"]):
        done = run_without("tensorflow", *command, "--help", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert "--quiet" in done.stdout
