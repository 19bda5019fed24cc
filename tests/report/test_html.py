"""The HTML report: escaped hostile names, nothing external, one chart per attribute, same bytes every time."""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from ondevice_audit.cli import app
from ondevice_audit.cli import report as report_command
from ondevice_audit.metrics import GroupMetricFrame
from ondevice_audit.report.document import build_report, to_json
from ondevice_audit.report.html import HtmlFormat

SCRIPT = "<script>alert(1)</script>"
PNG = re.compile(r"data:image/png;base64,([A-Za-z0-9+/=]+)")
runner = CliRunner()


@pytest.fixture(scope="module")
def hostile_report() -> dict[str, Any]:
    """Two attributes (and their intersection) whose names are markup, entities and matplotlib maths."""
    rng = np.random.default_rng(0)
    n = 240
    groups = pd.DataFrame(
        {SCRIPT: rng.choice([SCRIPT, "a&b", "$x$ \\frac{"], n), "accent": rng.choice(["us", "gb"], n)}
    )
    y_true = rng.choice(["yes", "no"], n)
    wrong = rng.random(n) < np.where(groups[SCRIPT] == "a&b", 0.3, 0.1)
    y_pred = np.where(wrong, np.where(y_true == "yes", "no", "yes"), y_true)
    frame = GroupMetricFrame(y_true, y_pred, groups, metric="accuracy", n_boot=100, n_perm=0)
    settings = {
        "metric": "accuracy",
        "groups": list(groups.columns),
        "min_group_size": 30,
        "bootstrap": 100,
        "permutations": 0,
        "seed": 0,
        "confidence": 0.95,
    }
    samples = {"total": n + 1, "scored": n, "failed": 1, "failures": [{"path": "<b>clip.wav", "reason": "x & y"}]}
    return build_report(
        command="score",
        frame=frame,
        inputs=[],
        settings=settings,
        samples=samples,
        warnings=[f"warning about {SCRIPT}"],
    )


def test_every_value_is_escaped(hostile_report: dict[str, Any]) -> None:
    page = HtmlFormat().format(hostile_report)
    assert "<script" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "a&amp;b" in page and "a&b" not in page
    assert "&lt;b&gt;clip.wav" in page and "x &amp; y" in page
    assert f"<h2>{SCRIPT.replace('<', '&lt;').replace('>', '&gt;')}</h2>" in page


def test_nothing_is_loaded_from_elsewhere(hostile_report: dict[str, Any]) -> None:
    page = HtmlFormat().format(hostile_report)
    assert "http://" not in page and "https://" not in page
    assert not re.search(r"""(src|href)\s*=\s*["']?(?!data:)[a-z]+:""", page)
    assert "<link" not in page


def test_one_embedded_png_chart_per_attribute(hostile_report: dict[str, Any]) -> None:
    page = HtmlFormat().format(hostile_report)
    charts = [base64.b64decode(data) for data in PNG.findall(page)]
    assert len(charts) == len(hostile_report["attributes"]) == 3
    assert all(chart.startswith(b"\x89PNG\r\n\x1a\n") and b"Software" not in chart for chart in charts)


def test_same_report_same_bytes(hostile_report: dict[str, Any]) -> None:
    assert HtmlFormat().format(hostile_report) == HtmlFormat().format(hostile_report)


def test_report_command_writes_html_and_markdown(hostile_report: dict[str, Any], tmp_path: Path) -> None:
    source = tmp_path / "report.json"
    source.write_text(to_json(hostile_report))
    first = runner.invoke(
        app, ["report", str(source), "--html", str(tmp_path / "a.html"), "--markdown", str(tmp_path / "a.md")]
    )
    assert first.exit_code == 0, first.output
    second = runner.invoke(app, ["report", str(source), "--html", str(tmp_path / "b.html")])
    assert second.exit_code == 0, second.output
    assert (tmp_path / "a.html").read_bytes() == (tmp_path / "b.html").read_bytes()
    assert "\\<script\\>" in (tmp_path / "a.md").read_text()


def test_report_command_usage_errors(hostile_report: dict[str, Any], tmp_path: Path) -> None:
    source = tmp_path / "report.json"
    source.write_text(to_json(hostile_report))
    nothing = runner.invoke(app, ["report", str(source)])
    assert nothing.exit_code == 2
    assert report_command.NO_OUTPUT in nothing.stderr
    source.write_text(to_json({**hostile_report, "schema_version": "2.0"}))
    assert runner.invoke(app, ["report", str(source), "--html", str(tmp_path / "x.html")]).exit_code == 2


def test_chart_files_are_named_apart_and_never_hidden(hostile_report: dict[str, Any]) -> None:
    """Names that slug to one file name (``age group``, ``age-group``) get one file each, not one written over
    the other; a name of dots and slashes makes no hidden or outside file."""
    import copy

    from ondevice_audit.report.html import report_charts

    report = copy.deepcopy(hostile_report)
    first = report["attributes"][1]
    report["attributes"] = [
        {**copy.deepcopy(first), "name": name} for name in ("age group", "age-group", "../../.evil", "age-group-2")
    ]
    charts = report_charts(report)
    assert sorted(charts) == ["age-group-2-2.png", "age-group-2.png", "age-group.png", "evil.png"]
