"""No TensorFlow, absl, LiteRT/XNNPACK, converter or tf2onnx lines in the output unless --debug.

``audit`` and ``export`` run as real subprocesses (the libraries write from C++ to file descriptor 2, which only
a real process shows); every line of stdout and stderr must be the tool's own.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MODEL = REPO / "models" / "kws-ds-cnn"
MANIFEST = REPO / "datasets" / "synth-kws-neural" / "manifest.csv"
# The report names the delegate that ran ("delegate XNNPACK (1 partition)"); the library's own line is matched.
FOREIGN = re.compile(
    r"^(INFO|WARNING|ERROR)[: ]|^[IWEF]\d{4} |absl|XNNPACK delegate for CPU|oneDNN|cuda|fully_quantize|tf2onnx|"
    r"tensorflow|"
    r"Estimated count|TF_ENABLE|UserWarning|DeprecationWarning|^\s*warnings\.warn",
    re.IGNORECASE,
)
OWN_STDERR = re.compile(r"^✓ ")  # progress off a terminal: one line per finished stage


def run(*args: str | Path, debug: bool = False) -> tuple[int, list[str], list[str]]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("TF_CPP", "ONDEVICE_AUDIT"))}
    # Wide enough that none of the tool's own lines wraps, whatever the length of the checkout's path.
    command = [sys.executable, "-m", "ondevice_audit", *(["--debug"] if debug else []), *map(str, args)]
    done = subprocess.run(command, capture_output=True, text=True, env={**env, "COLUMNS": "1000"})
    return done.returncode, done.stdout.splitlines(), done.stderr.splitlines()


def foreign(lines: list[str]) -> list[str]:
    return [line for line in lines if FOREIGN.search(line)]


def test_audit_prints_no_library_lines() -> None:
    code, out, err = run("audit", MODEL / "model.tflite", "--data", MANIFEST, "-g", "gender", "--bootstrap", "0",
                         "--permutations", "0")  # fmt: skip
    assert code == 0
    assert foreign(out + err) == []
    assert [line for line in err if not OWN_STDERR.match(line)] == []


@pytest.mark.slow
def test_debug_lets_the_libraries_talk() -> None:
    code, _, err = run("audit", MODEL / "model.tflite", "--data", MANIFEST, "-g", "gender", "--bootstrap", "0",
                       "--permutations", "0", debug=True)  # fmt: skip
    assert code == 0
    assert any("XNNPACK" in line for line in err)


def test_export_prints_no_library_lines(tmp_path: Path) -> None:
    """TensorFlow's import, the TFLite converter (int8: the quantizer's "fully_quantize" line) and tf2onnx."""
    code, out, err = run("export", MODEL / "model.keras", "--to", "tflite,onnx", "--quantize", "f32,int8",
                         "--data", MANIFEST, "--out", tmp_path / "out")  # fmt: skip
    assert code == 0, err
    assert foreign(out + err) == []
    notes = re.compile(r"^(tuning and calibrating on split .* \(--split-file/--split to choose\)$|model[-\w]*\.(tflite|onnx): )")
    assert [line for line in err if not (OWN_STDERR.match(line) or notes.match(line))] == []  # the tool's own notes
    assert sorted(p.name for p in (tmp_path / "out").glob("model*")) == [
        "model-int8.onnx", "model-int8.tflite", "model.onnx", "model.tflite"
    ]  # fmt: skip
