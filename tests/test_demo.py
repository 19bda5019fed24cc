"""`ondevice-audit demo` end to end (slow: trains the 32-cell demo matrix)."""

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from ondevice_audit.cli import app

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_demo_writes_the_audit_and_the_sweep(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    result = CliRunner().invoke(app, ["demo", "--out", str(tmp_path / "demo"), "--root", str(ROOT)])
    assert result.exit_code == 0, result.output
    assert "Recommended variant" in result.stdout
    report = json.loads((tmp_path / "demo" / "audit.json").read_text())
    assert report["overall"]["n"] == 672 and report["overall"]["n_speakers"] == 48
    results = pd.read_csv(tmp_path / "demo" / "sweep" / "results.csv")
    assert len(results) == 32 and (results["status"] == "ok").all()
    finding = " ".join(result.stdout.split("What the sweep found")[1].split())  # rich wraps at 80 columns
    assert "RB(gender)" in finding and "The speakers are synthetic" in finding
    again = CliRunner().invoke(app, ["demo", "--out", str(tmp_path / "demo"), "--root", str(ROOT)])
    assert again.exit_code == 0 and "from the cache" in again.stdout
