"""Front-end plug-ins by file path and by module: loaded quietly, errors in one line, hashed into the report.

The plug-in computes the tiny tone model's own features (MFCCs from the metadata's settings) through a helper
module next to it, so an audit through it must equal the audit through the model's metadata. At import it writes
TensorFlow's start-up lines straight to file descriptor 2, as TensorFlow's C++ does, and prints a line of its own.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ondevice_audit.audit import ModelOptions, ScoreOptions, audit_model
from ondevice_audit.cli import app
from ondevice_audit.errors import UsageError
from ondevice_audit.frontend.plugin import PluginFrontend, normalized_reference

OPTIONS = ScoreOptions(groups=("gender",), metric="accuracy", min_group_size=5, bootstrap=0, permutations=0)
runner = CliRunner()

HELPER = """
from ondevice_audit.frontend import AudioFrontendSpec, build_frontend

FRONTEND = build_frontend(AudioFrontendSpec(kind="mfcc", sample_rate=16000, clip_seconds=0.5, n_mels=20, n_mfcc=10))
"""
PLUGIN = """
import os

import plugin_helper  # a module beside this file

os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\\n")
os.write(2, b"I0000 00:00:1795939293.423728   25050 port.cc:153] oneDNN custom operations are on.\\n")
print("plug-in: features ready")


def features(path):
    return plugin_helper.FRONTEND.transform([path]).inputs[0][..., 0]  # no channel axis, as users' code often has
"""


@pytest.fixture
def plugin(tmp_path: Path) -> Path:
    folder = tmp_path / "my frontend"  # a space: the path is taken as it is
    folder.mkdir()
    (folder / "plugin_helper.py").write_text(HELPER)
    path = folder / "frontend.py"
    path.write_text(PLUGIN)
    return path


def _audit(model: Path, manifest: Path, *extra: str, debug: bool = False):
    return runner.invoke(app, [*(["--debug"] if debug else []), "audit", str(model), "--data", str(manifest), "-g",
                               "gender", "--metric", "accuracy", "--bootstrap", "0", "--permutations", "0",
                               "--min-group-size", "5", "-f", "json", *extra])  # fmt: skip


def test_a_plug_in_by_file_path_audits_as_the_models_own_front_end(tiny_models, tone_dataset, plugin, capfd,
                                                                    monkeypatch):  # fmt: skip
    monkeypatch.setenv("ONDEVICE_AUDIT_DEBUG", "0")  # quiet, whatever an earlier --debug in this process left
    result = _audit(tiny_models["onnx"], tone_dataset, "--frontend", f"{plugin}:features")
    assert result.exit_code == 0, result.output
    captured = capfd.readouterr()
    shown = result.stderr + captured.out + captured.err  # the streams and the raw descriptors
    assert "oneDNN" not in shown and "absl" not in shown
    assert "plug-in: features ready" in result.stderr  # its own words are kept, but off stdout
    report = json.loads(result.stdout)
    own = audit_model(tiny_models["onnx"], tone_dataset, OPTIONS)
    assert report["attributes"] == own["attributes"] and report["overall"] == own["overall"]
    (entry,) = [item for item in report["inputs"] if item["role"] == "front-end plug-in"]
    assert entry == {"role": "front-end plug-in", "path": str(plugin),
                     "sha256": hashlib.sha256(plugin.read_bytes()).hexdigest()}  # fmt: skip
    assert report["model"]["frontend"] == f"plug-in {plugin}:features"


def test_a_relative_path_is_made_absolute_for_other_processes(plugin, monkeypatch):
    monkeypatch.chdir(plugin.parent.parent)
    relative = f"{plugin.parent.name}/{plugin.name}:features"
    assert normalized_reference(relative) == f"{plugin}:features"
    assert PluginFrontend(relative).files() == [plugin]


def test_debug_shows_the_plug_ins_output(tiny_models, tone_dataset, plugin, capfd, monkeypatch):
    monkeypatch.setenv("ONDEVICE_AUDIT_DEBUG", "0")  # --debug sets it for the rest of the process: put it back
    result = _audit(tiny_models["onnx"], tone_dataset, "--frontend", f"{plugin}:features", debug=True)
    assert result.exit_code == 0, result.output
    captured = capfd.readouterr()
    assert "oneDNN custom operations are on" in captured.err + result.output


def _one_line(result, expected: str) -> None:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.strip().splitlines() if line != "plug-in: features ready"]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr  # the plug-in's own print aside
    assert lines[0] == f"error: {expected}"


def test_a_plug_in_that_fails_to_import_is_one_line_naming_the_error(tiny_models, tone_dataset, plugin, capfd,
                                                                      monkeypatch):  # fmt: skip
    monkeypatch.setenv("ONDEVICE_AUDIT_DEBUG", "0")
    plugin.write_text("import os\nos.write(2, b'I0000 00:00:1.1   1 port.cc:153] oneDNN\\n')\nimport no_such_dependency\n")
    result = _audit(tiny_models["onnx"], tone_dataset, "--frontend", f"{plugin}:features")
    _one_line(result, f"--frontend {plugin}:features: loading {plugin} failed: ModuleNotFoundError: No module named "
                      "'no_such_dependency'")  # fmt: skip
    assert "oneDNN" not in capfd.readouterr().err
    debug = _audit(tiny_models["onnx"], tone_dataset, "--frontend", f"{plugin}:features", debug=True)
    assert debug.exit_code != 0 and isinstance(debug.exception, UsageError)
    assert isinstance(debug.exception.__cause__, ModuleNotFoundError)  # --debug keeps the plug-in's own traceback


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        ("{plugin}:nothing", "--frontend {plugin}:nothing: {plugin} has no callable 'nothing'"),
        ("{plugin}", "--frontend '{plugin}' must look like path/to/file.py:callable or package.module:callable"),
        ("{plugin}.missing.py:features", "--frontend {plugin}.missing.py:features: loading {plugin}.missing.py failed: "
                                         "FileNotFoundError: no such file: {plugin}.missing.py"),
        ("no_such_plugin_module:features", "--frontend no_such_plugin_module:features: loading no_such_plugin_module "
         "failed: ModuleNotFoundError: No module named 'no_such_plugin_module'; name it by its file "
         "(path/to/file.py:callable) or put its folder on PYTHONPATH"),
    ],
)  # fmt: skip
def test_bad_references_are_one_line(tiny_models, tone_dataset, plugin, reference, expected):
    result = _audit(tiny_models["onnx"], tone_dataset, "--frontend", reference.format(plugin=plugin))
    _one_line(result, expected.format(plugin=plugin))


def test_the_module_form_still_works_from_the_python_path(tiny_models, tone_dataset, plugin, monkeypatch):
    monkeypatch.syspath_prepend(str(plugin.parent))
    report = audit_model(tiny_models["onnx"], tone_dataset, OPTIONS, ModelOptions(frontend_plugin="frontend:features"))
    own = audit_model(tiny_models["onnx"], tone_dataset, OPTIONS)
    assert report["attributes"] == own["attributes"]
    (entry,) = [item for item in report["inputs"] if item["role"] == "front-end plug-in"]
    assert entry["path"] == str(plugin) and entry["sha256"] == hashlib.sha256(plugin.read_bytes()).hexdigest()


def test_plug_in_help_names_both_forms():
    result = runner.invoke(app, ["audit", "--help"], terminal_width=200)
    text = " ".join(result.output.split())
    assert "path/to/file.py:callable" in text and "package.module:callable" in text

