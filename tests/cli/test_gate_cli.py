"""``ondevice-audit gate`` end to end on reports built by the library: exit codes, JUnit, Markdown, CI summary."""

from __future__ import annotations

import io
import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from rich.console import Console
from typer.testing import CliRunner

from ondevice_audit.cli import app
from ondevice_audit.cli._gate_options import GateFlags, gate_after_report
from ondevice_audit.gate import config as gate_config
from ondevice_audit.gate import rules as gate_rules
from ondevice_audit.metrics import GroupMetricFrame
from ondevice_audit.report.document import build_report, to_json
from ondevice_audit.sweep.folder import NOT_A_SWEEP

runner = CliRunner()
HOSTILE = '<g>|x_*`&"\x01'


def make_report(accuracies: dict[str, float], column: str = "gender", n: int = 400) -> dict[str, Any]:
    """Accuracy per group exactly as given (n clips each); RB of {0.9, 0.8} is |ln .9/.85| + |ln .8/.85| = 0.1178."""
    y_true: list[str] = []
    y_pred: list[str] = []
    groups: list[str] = []
    for name, accuracy in accuracies.items():
        correct = round(accuracy * n)
        y_true += ["yes"] * n
        y_pred += ["yes"] * correct + ["no"] * (n - correct)
        groups += [name] * n
    frame = GroupMetricFrame(y_true, y_pred, pd.DataFrame({column: groups}), metric="accuracy", n_boot=0, n_perm=0)
    settings = {
        "metric": "accuracy",
        "groups": [column],
        "min_group_size": 30,
        "bootstrap": 0,
        "permutations": 0,
        "seed": 0,
        "confidence": 0.95,
    }
    samples = {"total": len(y_true), "scored": len(y_true), "failed": 0, "failures": []}
    return build_report(command="score", frame=frame, inputs=[], settings=settings, samples=samples, warnings=[])


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder with no pyproject.toml above it that has gate settings, and no step summary."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    return tmp_path


def write(path: Path, report: dict[str, Any]) -> Path:
    path.write_text(to_json(report))
    return path


def gate(*args: str | Path) -> Any:
    return runner.invoke(app, ["gate", *map(str, args)])


def test_exit_0_when_every_rule_passes_and_1_when_one_fails(workdir: Path) -> None:
    report = write(workdir / "report.json", make_report({"f": 0.9, "m": 0.8}))
    passed = gate(report, "--max-rb", "0.2", "--min-metric", "0.8")
    assert passed.exit_code == 0, passed.output
    assert "PASS" in passed.stdout and "FAIL" not in passed.stdout
    failed = gate(report, "--max-rb", "0.1", "--min-metric", "0.8")
    assert failed.exit_code == 1, failed.output
    assert "FAIL" in failed.stdout and "gate failed" in failed.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--max-rb", "accent=0.1"],
            "report: rule max_rb[accent] names attribute 'accent', which the report does not have (it has: gender)",
        ),
        ([], gate_config.NO_RULES),
        (["--max-rb", "x"], "--max-rb 'x': use X or ATTRIBUTE=X with X a finite number"),
        (["--max-metric-drop", "0.1"], gate_rules.NEEDS_BASELINE.format(rule="max_metric_drop")),
    ],
)
def test_exit_2_on_bad_rules(workdir: Path, args: list[str], message: str) -> None:
    report = write(workdir / "report.json", make_report({"f": 0.9, "m": 0.8}))
    result = gate(report, *args)
    assert result.exit_code == 2
    assert message in " ".join(result.stderr.split())


def test_exit_2_on_unknown_schema_version(workdir: Path) -> None:
    document = make_report({"f": 0.9, "m": 0.8})
    document["schema_version"] = "2.0"
    result = gate(write(workdir / "report.json", document), "--max-rb", "0.2")
    assert result.exit_code == 2
    assert "report schema version 2.0 is not one this tool reads" in " ".join(result.stderr.split())


def test_exit_2_on_unreadable_input(workdir: Path) -> None:
    assert gate(workdir / "missing.json", "--max-rb", "0.2").exit_code == 2
    (workdir / "bad.json").write_text("{not json")
    assert gate(workdir / "bad.json", "--max-rb", "0.2").exit_code == 2
    sweep = gate(workdir, "--max-rb", "0.2")
    assert sweep.exit_code == 2
    assert NOT_A_SWEEP.format(path=workdir, name="sweep.json") in " ".join(sweep.stderr.split())


def test_exit_2_on_unknown_config_keys(workdir: Path) -> None:
    report = write(workdir / "report.json", make_report({"f": 0.9, "m": 0.8}))
    (workdir / "gate.toml").write_text("max_rb = 0.2\nmax_bais = 1\n")
    result = gate(report, "--config", workdir / "gate.toml")
    assert result.exit_code == 2
    assert "gate.toml: unknown gate setting(s) max_bais;" in result.stderr


def test_flags_override_pyproject(workdir: Path) -> None:
    report = write(workdir / "report.json", make_report({"f": 0.9, "m": 0.8}))
    (workdir / "pyproject.toml").write_text("[tool.ondevice-audit.gate]\nmax_rb = 0.1\n")
    assert gate(report).exit_code == 1
    assert gate(report, "--max-rb", "0.2").exit_code == 0


def test_use_ci_bound_flag_without_an_interval_fails(workdir: Path) -> None:
    report = write(workdir / "report.json", make_report({"f": 0.9, "m": 0.8}))
    assert gate(report, "--max-rb", "0.2", "--no-use-ci-bound").exit_code == 0
    result = gate(report, "--max-rb", "0.2", "--use-ci-bound", "--markdown", workdir / "gate.md")
    assert result.exit_code == 1
    assert "CI upper" in (workdir / "gate.md").read_text()


def test_baseline_rules(workdir: Path) -> None:
    report = write(workdir / "report.json", make_report({"f": 0.9, "m": 0.8}))
    baseline = write(workdir / "baseline.json", make_report({"f": 0.95, "m": 0.93}))
    assert gate(report, "--baseline", baseline, "--max-metric-drop", "0.1").exit_code == 0
    assert gate(report, "--baseline", baseline, "--max-metric-drop", "0.05").exit_code == 1
    assert gate(report, "--baseline", baseline, "--max-rb-increase", "0.05").exit_code == 1


def test_junit_has_one_testcase_per_rule_and_attribute_and_survives_hostile_names(workdir: Path) -> None:
    report = write(workdir / "report.json", make_report({"f": 0.9, HOSTILE: 0.8}, column=HOSTILE))
    junit = workdir / "out" / "gate.xml"
    result = gate(report, "--max-rb", "0.1", "--max-group-gap", "0.2", "--min-metric", "0.8", "--junit", junit)
    assert result.exit_code == 1, result.output
    root = ET.parse(junit).getroot()
    assert root.tag == "testsuites"
    assert (root.get("tests"), root.get("failures")) == ("3", "1")
    [suite] = root.findall("testsuite")
    assert (suite.get("name"), suite.get("tests"), suite.get("failures")) == ("report", "3", "1")
    cases = suite.findall("testcase")
    shown = HOSTILE.replace("\x01", "\ufffd")
    assert [c.get("name") for c in cases] == [f"max_rb {shown}", f"max_group_gap {shown}", "min_metric"]
    failures = [c.find("failure") for c in cases]
    assert [f is not None for f in failures] == [True, False, False]
    assert failures[0].get("message") == "RB 0.1178 > 0.1"


def test_markdown_escapes_every_data_value(workdir: Path) -> None:
    report = write(workdir / "report.json", make_report({"f": 0.9, "m|x": 0.8}, column="a|b_<c>\nd"))
    markdown = workdir / "gate.md"
    assert gate(report, "--max-rb", "0.1", "--markdown", markdown).exit_code == 1
    rows = [line for line in markdown.read_text().splitlines() if line.startswith("|")]
    assert len(rows) == 3
    assert rows[2].startswith("| report | max\\_rb | a\\|b\\_\\<c\\> d | 0.1178 | 0.1 | point | ❌ **FAIL** |")
    assert all(line.replace("\\|", "").count("|") == 9 for line in rows)


def test_github_step_summary_is_appended(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    summary = workdir / "summary.md"
    summary.write_text("# earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    report = write(workdir / "report.json", make_report({"f": 0.9, "m": 0.8}))
    assert gate(report, "--max-rb", "0.1").exit_code == 1
    text = summary.read_text()
    assert text.startswith("# earlier step\n## ondevice-audit gate: failed (1 of 1 checks)\n")


def test_gate_after_report_returns_the_exit_code(workdir: Path) -> None:
    report = make_report({"f": 0.9, "m": 0.8})
    out = io.StringIO()
    assert gate_after_report(report, GateFlags(max_rb=["gender=0.2"]), console=Console(file=out, width=200)) == 0
    assert gate_after_report(report, GateFlags(max_rb=["0.1"]), console=Console(file=out, width=200)) == 1
    assert "RB 0.1178 > 0.1" in out.getvalue()
    assert json.loads(to_json(report)) == report
