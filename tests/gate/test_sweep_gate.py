"""``gate`` on a sweep folder, built by hand: one outcome per rule × cell, failed cells fail every rule."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

from ondevice_audit.cli import app
from ondevice_audit.gate import NoReport, Rule, RuleKind, evaluate
from ondevice_audit.metrics import GroupMetricFrame
from ondevice_audit.report.document import build_report, to_json
from ondevice_audit.sweep.folder import NOT_A_SWEEP

runner = CliRunner()
PASSING, FAILING, CRASHED = "000-pass", "001-fail", '002-<b>&"x'
ERROR = "train: loss is NaN after epoch 1"


def make_report(accuracies: dict[str, float], n: int = 400) -> dict[str, Any]:
    """Accuracy per gender exactly as given, n clips each (enough that the gate judges point estimates)."""
    y_true: list[str] = []
    y_pred: list[str] = []
    groups: list[str] = []
    for name, accuracy in accuracies.items():
        correct = round(accuracy * n)
        y_true += ["yes"] * n
        y_pred += ["yes"] * correct + ["no"] * (n - correct)
        groups += [name] * n
    frame = GroupMetricFrame(y_true, y_pred, pd.DataFrame({"gender": groups}), metric="accuracy", n_boot=0, n_perm=0)
    settings = {
        "metric": "accuracy",
        "groups": ["gender"],
        "min_group_size": 30,
        "bootstrap": 0,
        "permutations": 0,
        "seed": 0,
        "confidence": 0.95,
    }
    samples = {"total": len(y_true), "scored": len(y_true), "failed": 0, "failures": []}
    return build_report(command="score", frame=frame, inputs=[], settings=settings, samples=samples, warnings=[])


@pytest.fixture
def sweep(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """runs/NAME with a passing cell (RB 0.118, accuracy 0.85), a failing one (RB 0.46, accuracy 0.775) and a
    crashed one (error.txt only), in the order sweep.json lists them."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    folder = tmp_path / "runs" / "small"
    cells = [PASSING, FAILING, CRASHED]
    state = {
        "format": 1,
        "status": "finished",
        "cells": [{"id": c, "factors": {"seed": i}} for i, c in enumerate(cells)],
    }
    (folder / "cells").mkdir(parents=True)
    (folder / "sweep.json").write_text(json.dumps(state))
    for cell, accuracies in ((PASSING, {"f": 0.9, "m": 0.8}), (FAILING, {"f": 0.95, "m": 0.6})):
        (folder / "cells" / cell).mkdir()
        (folder / "cells" / cell / "report.json").write_text(to_json(make_report(accuracies)))
    (folder / "cells" / CRASHED).mkdir()
    (folder / "cells" / CRASHED / "error.txt").write_text(f"{ERROR}\n\nTraceback (most recent call last):\n  ...\n")
    return folder


def gate(*args: str | Path) -> Any:
    return runner.invoke(app, ["gate", *map(str, args)], env={"COLUMNS": "200"})


def test_every_cell_is_gated_and_a_crashed_cell_fails_every_rule(sweep: Path) -> None:
    junit, markdown = sweep / "gate.xml", sweep / "gate.md"
    result = gate(sweep, "--max-rb", "0.2", "--min-metric", "0.8", "--junit", junit, "--markdown", markdown)
    assert result.exit_code == 1, result.output
    assert "gate failed: 4 of 6 checks" in result.stdout
    assert f"cell failed: {ERROR}" in result.stdout

    root = ET.parse(junit).getroot()
    assert (root.get("tests"), root.get("failures")) == ("6", "4")
    suites = root.findall("testsuite")
    assert [(s.get("name"), s.get("tests"), s.get("failures")) for s in suites] == [
        (PASSING, "2", "0"),
        (FAILING, "2", "2"),
        (CRASHED, "2", "2"),
    ]
    crashed = suites[2].findall("testcase")
    assert [c.get("name") for c in crashed] == ["max_rb", "min_metric"]
    assert {c.find("failure").get("message") for c in crashed} == {f"cell failed: {ERROR}"}

    rows = [line for line in markdown.read_text().splitlines() if line.startswith("| 00")]
    assert [row.split(" | ")[0] for row in rows] == ["| 000-pass"] * 2 + ["| 001-fail"] * 2 + ['| 002-\\<b\\>&"x'] * 2


def test_a_sweep_passes_when_every_cell_passes(sweep: Path) -> None:
    (sweep / "cells" / CRASHED / "error.txt").unlink()
    (sweep / "cells" / CRASHED / "report.json").write_text(to_json(make_report({"f": 0.9, "m": 0.8})))
    (sweep / "cells" / FAILING / "report.json").write_text(to_json(make_report({"f": 0.85, "m": 0.85})))
    result = gate(sweep, "--max-rb", "0.2", "--min-metric", "0.8")
    assert result.exit_code == 0, result.output
    assert "gate passed: 6 checks" in result.stdout


def test_an_unfinished_cell_fails_closed(sweep: Path) -> None:
    (sweep / "cells" / CRASHED / "error.txt").unlink()
    result = gate(sweep, "--max-rb", "0.5", "--min-metric", "0.7")
    assert result.exit_code == 1, result.output
    assert "gate failed: 2 of 6 checks" in result.stdout
    assert "cell not finished" in result.stdout


def test_a_folder_that_is_not_a_sweep_is_a_usage_error(sweep: Path) -> None:
    (sweep / "sweep.json").unlink()
    result = gate(sweep, "--max-rb", "0.2")
    assert result.exit_code == 2
    assert NOT_A_SWEEP.format(path=sweep, name="sweep.json") in " ".join(result.stderr.split())
    (sweep / "sweep.json").write_text("{}")
    assert gate(sweep, "--max-rb", "0.2").exit_code == 2


def test_no_report_fails_each_rule_once_under_its_own_attribute() -> None:
    rules = [Rule(RuleKind.MAX_RB, "gender", 0.2), Rule(RuleKind.MAX_GROUP_GAP, None, 0.1)]
    reports = {"ok": make_report({"f": 0.9, "m": 0.8}), "crashed": NoReport("cell failed: x")}
    result = evaluate(reports, rules)
    assert [(o.variant, o.name, o.passed) for o in result.outcomes] == [
        ("ok", "max_rb gender", True),
        ("ok", "max_group_gap gender", True),
        ("crashed", "max_rb gender", False),
        ("crashed", "max_group_gap", False),
    ]
    assert all(o.value is None and o.reason == "cell failed: x" for o in result.outcomes[2:])


def test_a_cell_id_that_leaves_the_cells_folder_is_a_usage_error(sweep: Path) -> None:
    (sweep / "sweep.json").write_text(json.dumps({"cells": [{"id": "../../etc"}]}))
    result = gate(sweep, "--max-rb", "0.2")
    assert result.exit_code == 2
    assert "is not a folder name" in result.stderr


def test_the_table_shows_failures_unless_all(sweep: Path) -> None:
    short = gate(sweep, "--max-rb", "0.2", "--min-metric", "0.8")
    assert short.exit_code == 1, short.output
    assert "PASS" not in short.stdout and short.stdout.count("FAIL") == 4
    assert "2 passing check(s) not shown; --all lists every check" in short.stdout
    assert "gate failed: 4 of 6 checks on 2 of 3 reports" in short.stdout
    assert short.stdout.count(FAILING) == 1
    full = gate(sweep, "--max-rb", "0.2", "--min-metric", "0.8", "--all")
    assert full.stdout.count("PASS") == 2 and full.stdout.count("FAIL") == 4
    assert "not shown" not in full.stdout
    assert full.stdout.count(PASSING) == 1
