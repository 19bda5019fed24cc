"""One option name per idea: the gate's Markdown and settings file are --gate-markdown and --gate-config on
``gate`` as on ``score``/``audit``/``sweep``; the old ``gate --markdown``/``--config`` still work, out of --help."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from ondevice_audit.cli import app

runner = CliRunner()


def test_gate_markdown_and_config_have_one_name(tmp_path: Path) -> None:
    rows = [{"label": y, "prediction": y, "g": g} for g in ("a", "b") for y in ("yes", "no") for _ in range(40)]
    pd.DataFrame(rows).to_csv(tmp_path / "p.csv", index=False)
    report = tmp_path / "r.json"
    args = ["score", str(tmp_path / "p.csv"), "-g", "g", "--bootstrap", "0", "--permutations", "0"]
    assert runner.invoke(app, [*args, "-f", "json", "-o", str(report)]).exit_code == 0
    (tmp_path / "gate.toml").write_text("max_rb = 0.5\nuse_ci_bound = false\n")
    for markdown, config in (("--gate-markdown", "--gate-config"), ("--markdown", "--config")):
        out = tmp_path / f"{markdown}.md"
        result = runner.invoke(app, ["gate", str(report), markdown, str(out), config, str(tmp_path / "gate.toml")])
        assert result.exit_code == 0, result.output
        assert "| max\\_rb | g | 0 | 0.5 |" in out.read_text()
    help_text = runner.invoke(app, ["gate", "--help"], env={"COLUMNS": "200"}).stdout
    assert "--gate-markdown" in help_text and "--gate-config" in help_text
    assert " --markdown " not in help_text and " --config " not in help_text
    for command in ("score", "audit"):
        help_text = runner.invoke(app, [command, "--help"], env={"COLUMNS": "200"}).stdout
        assert "--gate-markdown" in help_text and "--gate-config" in help_text
    assert json.loads(report.read_text())["attributes"][0]["name"] == "g"
