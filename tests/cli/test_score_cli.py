"""`score` through the real CLI: layouts, formats, escaping, exit codes, and no TensorFlow."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from ondevice_audit.cli import app
from ondevice_audit.report import ReportFormatChoice
from ondevice_audit.report.document import validate

runner = CliRunner()
HOSTILE = '<script>alert(1)</script>|*x*_[y](z),"=cmd"'


@pytest.fixture
def predictions(tmp_path):
    rng = np.random.default_rng(0)
    n = 600
    speaker = rng.integers(0, 40, n)
    gender = np.where(speaker % 2 == 0, "female", HOSTILE)
    labels = np.array(["yes", "no", "_unknown_"])
    truth = labels[rng.integers(0, 3, n)]
    right = rng.random(n) < np.where(gender == "female", 0.9, 0.7)
    pred = np.where(right, truth, labels[rng.integers(0, 3, n)])
    path = tmp_path / "predictions.csv"
    pd.DataFrame({"label": truth, "prediction": pred, "gender": gender, "speaker": speaker}).to_csv(path, index=False)
    return path


def _score(path, *extra):
    return runner.invoke(app, ["score", str(path), "-g", "gender", "--bootstrap", "200", "--permutations", "200", *extra])


def test_json_report_validates_and_names_the_worst_group(predictions):
    result = _score(predictions, "-f", "json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    validate(report)
    attribute = report["attributes"][0]
    assert attribute["worst_group"] == HOSTILE
    assert attribute["rb"]["value"] > 0 and attribute["rb"]["ci"][0] <= attribute["rb"]["value"]
    assert report["inputs"][0]["role"] == "predictions" and len(report["inputs"][0]["sha256"]) == 64
    assert report["settings"]["seed"] == 0 and report["samples"]["layout"] == "prediction column"


@pytest.mark.parametrize("choice", list(ReportFormatChoice))
def test_every_format_escapes_group_names(predictions, choice):
    result = _score(predictions, "-f", choice.value)
    assert result.exit_code == 0, result.output
    out = result.stdout
    if choice is ReportFormatChoice.json:
        assert HOSTILE in {g["name"] for g in json.loads(out)["attributes"][0]["groups"]}
    elif choice is ReportFormatChoice.csv:
        rows = list(csv.DictReader(io.StringIO(out)))
        assert "'" + HOSTILE not in {r["group"] for r in rows}  # does not start with a formula character
        assert HOSTILE in {r["group"] for r in rows}
        assert {r["row"] for r in rows} == {"overall", "group", "rb"}
    elif choice is ReportFormatChoice.html:
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in out and "<script>alert" not in out
    elif choice is ReportFormatChoice.markdown:
        assert "<script>" not in out and "\\<script\\>" in out
        assert "\\|" in out and "\\*x\\*" in out
    else:
        assert f"worst off: {HOSTILE}" in " ".join(out.split())  # rich markup did not eat the brackets


def test_csv_guards_formula_cells(tmp_path):
    path = tmp_path / "p.csv"
    pd.DataFrame({"label": ["a", "b"] * 20, "prediction": ["a", "b"] * 20, "g": ["=SUM(A1)", "+x"] * 20}).to_csv(
        path, index=False
    )
    result = runner.invoke(app, ["score", str(path), "-g", "g", "-f", "csv", "--bootstrap", "0", "--permutations", "0",
                                 "--min-group-size", "1", "--metric", "accuracy"])  # fmt: skip
    groups = {r["group"] for r in csv.DictReader(io.StringIO(result.stdout)) if r["row"] == "group"}
    assert groups == {"'=SUM(A1)", "'+x"}


def test_score_columns_and_binary_layouts(tmp_path):
    per_class = tmp_path / "per_class.csv"
    pd.DataFrame(
        {"label": ["yes", "no", "yes", "no"] * 10, "score_yes": [0.9, 0.2, 0.4, 0.3] * 10,
         "score_no": [0.1, 0.8, 0.6, 0.7] * 10, "g": ["a", "a", "b", "b"] * 10}
    ).to_csv(per_class, index=False)  # fmt: skip
    report = json.loads(
        runner.invoke(app, ["score", str(per_class), "-g", "g", "--metric", "accuracy", "--bootstrap", "0",
                            "--permutations", "0", "--min-group-size", "1", "-f", "json"]).stdout  # fmt: skip
    )
    assert [g["metrics"]["accuracy"] for g in report["attributes"][0]["groups"]] == [1.0, 0.5]

    binary = tmp_path / "binary.csv"
    pd.DataFrame({"label": [1, 0, 1, 0] * 10, "score": [0.9, 0.2, 0.4, 0.6] * 10, "g": ["a", "a", "b", "b"] * 10}).to_csv(
        binary, index=False
    )
    args = ["score", str(binary), "-g", "g", "--metric", "frr", "--bootstrap", "0", "--permutations", "0",
            "--min-group-size", "1", "-f", "json"]  # fmt: skip
    report = json.loads(runner.invoke(app, [*args, "--threshold", "0.5"]).stdout)
    assert report["settings"]["negative_labels"] == ["0"]
    assert [g["metrics"]["frr"] for g in report["attributes"][0]["groups"]] == [0.0, 1.0]
    report = json.loads(runner.invoke(app, [*args, "--threshold", "0.3"]).stdout)
    assert [g["metrics"]["far"] for g in report["attributes"][0]["groups"]] == [0.0, 1.0]


def test_unscorable_rows_are_counted(tmp_path):
    path = tmp_path / "p.csv"
    pd.DataFrame({"label": ["a", "", "b", "a"] * 10, "prediction": ["a", "b", "", "a"] * 10, "g": ["x", "y"] * 20}).to_csv(
        path, index=False
    )
    result = runner.invoke(app, ["score", str(path), "-g", "g", "-f", "json", "--bootstrap", "0", "--permutations", "0"])
    report = json.loads(result.stdout)
    assert report["samples"]["failed"] == 20 and report["samples"]["scored"] == 20
    assert report["samples"]["failures"][0] == {"row": "3", "reason": "empty label"}
    strict = runner.invoke(app, ["score", str(path), "-g", "g", "--strict", "--bootstrap", "0", "--permutations", "0"])
    assert strict.exit_code == 1


@pytest.mark.parametrize(
    ("content", "flags", "message"),
    [
        ("label,prediction,g\na,a,x\n", ["-g", "nope"], "unknown --group nope; choose from the group columns: g"),
        ("prediction,g\na,x\n", ["-g", "g"], "missing column label"),
        ("label,g\na,x\n", ["-g", "g"], "no predictions: add a prediction column"),
        ("", ["-g", "g"], "the file is empty"),
        ("label,prediction,g\n", ["-g", "g"], "the table has a header but no rows"),
        ("label,score,g\nup,0.3,x\n", ["-g", "g"], "a binary score column needs labels 1/0 or true/false"),
        ("label,prediction,g\na,a,x\n", ["-g", "g", "--metric", "f3"], "unknown metric 'f3'"),
        ("label,prediction,g\na,a,x\n", ["-g", "g", "--bootstrap", "5"], "at least 100"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, content, flags, message):
    path = tmp_path / "p.csv"
    path.write_text(content)
    result = runner.invoke(app, ["score", str(path), *flags])
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_file_and_debug_traceback(tmp_path):
    missing = tmp_path / "nope.csv"
    result = runner.invoke(app, ["score", str(missing), "-g", "g"])
    assert result.exit_code == 2 and f"file not found: {missing}" in result.stderr
    debug = runner.invoke(app, ["--debug", "score", str(missing), "-g", "g"])
    assert debug.exit_code != 0 and debug.exception is not None


def test_output_file(predictions, tmp_path):
    out = tmp_path / "deep" / "report.json"
    result = _score(predictions, "-f", "json", "-o", str(out))
    assert result.exit_code == 0 and result.stdout == ""
    validate(json.loads(out.read_text()))


def test_help_and_score_do_not_import_tensorflow(predictions):
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from ondevice_audit.cli import app\n"
        "r = CliRunner()\n"
        "assert r.invoke(app, ['--help']).exit_code == 0\n"
        f"assert r.invoke(app, ['score', {str(predictions)!r}, '-g', 'gender']).exit_code == 0\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'tf_keras', 'keras', 'librosa'))\n"
        "print(heavy)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_fail_on_gate_judges_the_report_just_written(predictions, tmp_path):
    passing = _score(predictions, "-f", "json", "--fail-on-gate", "--max-rb", "5", "--no-use-ci-bound")
    assert passing.exit_code == 0, passing.output
    junit = tmp_path / "gate.xml"
    failing = _score(predictions, "-f", "json", "--fail-on-gate", "--max-rb", "0.01", "--junit", str(junit))
    assert failing.exit_code == 1
    assert json.loads(failing.stdout)["attributes"][0]["rb"]["value"] > 0.01  # the report is still written
    assert "<failure" in junit.read_text()
