"""``--help`` stays fast: it must not load the heavy stacks (timings are in ``benchmarks/run.py --only startup``)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("pandas", "matplotlib", "tensorflow", "onnxruntime", "ai_edge_litert", "scipy", "pyarrow", "soundfile")

# Runs the CLI in a fresh interpreter, then prints which top-level packages it imported.
_RUN = """
import json, sys
from ondevice_audit.cli import app
try:
    app(sys.argv[1:], prog_name="ondevice-audit")
except SystemExit as exit:
    code = exit.code
print(json.dumps({"code": code, "modules": sorted({name.split(".")[0] for name in sys.modules})}))
"""


def _run(*args: str) -> tuple[int, set[str], str]:
    done = subprocess.run([sys.executable, "-c", _RUN, *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    *help_lines, last = done.stdout.rstrip("\n").split("\n")
    result = json.loads(last)
    return result["code"], set(result["modules"]), "\n".join(help_lines)


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["score"],
        ["audit"],
        ["sweep"],
        ["compare"],
        ["train"],
        ["export"],
        ["explain"],
        ["report"],
        ["gate"],
        ["demo"],
        ["targets", "check"],
        ["datasets"],
        ["datasets", "synth-kws"],
        ["datasets", "inspect"],
        ["datasets", "synth-shapes"],
    ],
    ids=lambda command: " ".join(command) or "root",
)
def test_help_does_not_import_heavy_packages(command: list[str]) -> None:
    code, modules, text = _run(*command, "--help")
    assert code == 0
    assert "Usage" in text
    assert sorted(modules.intersection(HEAVY)) == []


def test_help_still_shows_values_from_the_library() -> None:
    _, _, text = _run("audit", "--help")
    assert "litert" in text and "tflite_runtime" in text  # runtimes, and those only the device runner has
    assert "256" in text  # --target-batch default: the front-end chunk size
    _, _, text = _run("train", "--help")
    assert "ds-cnn" in text.replace("\n", " ")


def test_import_help_lists_the_corpus_formats() -> None:
    """`datasets import --help` loads the adapters (pandas) only then, to list every format and its summary."""
    from ondevice_audit.data.corpora import ADAPTERS

    code, modules, text = _run("datasets", "import", "--help")
    assert code == 0
    flat = " ".join(text.split())
    for name in ADAPTERS:
        assert f"{name}:" in flat
    assert "pandas" in modules
