"""Every format shows every section: the MCU budget verdict and the runtime comparison, on real audits (TFLM).

One audit of the bundled int8-free model against a budget it cannot fit (8 KiB of RAM) and one comparing LiteRT
with TFLM on a stratified subsample; each report is rendered in every format and the numbers looked for.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ondevice_audit.cli import app
from ondevice_audit.report import ReportFormatChoice

REPO = Path(__file__).resolve().parents[2]
MODEL = REPO / "models" / "kws-ds-cnn" / "model.tflite"
MANIFEST = REPO / "datasets" / "synth-kws" / "manifest.csv"
runner = CliRunner()
pytest.importorskip("tflite_micro")


def audit(tmp_path: Path, name: str, *extra: str) -> tuple[int, dict]:
    out = tmp_path / f"{name}.json"
    result = runner.invoke(app, ["audit", str(MODEL), "--data", str(MANIFEST), "-g", "gender", "--bootstrap", "0",
                                 "--permutations", "0", "--max-samples-per-group", "12", "--format", "json",
                                 "--report-file", str(out), *extra])  # fmt: skip
    return result.exit_code, json.loads(out.read_text())


@pytest.fixture(scope="module")
def too_big(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    folder = tmp_path_factory.mktemp("mcu")
    code, report = audit(folder, "mcu", "--mcu-ram", "8KiB", "--mcu-flash", "1MiB")
    assert code == 0 and report["model"]["mcu"]["ok"] is False
    return folder / "mcu.json", report


@pytest.mark.parametrize("choice", [c for c in ReportFormatChoice if c is not ReportFormatChoice.json])
def test_mcu_verdict_in_every_format(too_big: tuple[Path, dict], choice: ReportFormatChoice) -> None:
    _, report = too_big
    mcu = report["model"]["mcu"]
    text = choice.to_format().format(report)
    if choice is ReportFormatChoice.csv:
        rows = {r["attribute"]: r["note"] for r in csv.DictReader(io.StringIO(text)) if r["row"] == "mcu"}
        assert rows["fits"] == "False"
        assert int(rows["arena_bytes"]) == mcu["arena_bytes"] and int(rows["flash_bytes"]) == mcu["flash_bytes"]
        assert int(rows["ram_limit_bytes"]) == mcu["ram_limit_bytes"]
        return
    assert "does NOT fit" in text
    assert f"{mcu['arena_bytes']:,} bytes of {mcu['ram_limit_bytes']:,} allowed" in text
    assert f"{mcu['flash_bytes']:,} bytes" in text


def test_require_mcu_fit_fails_the_gate(too_big: tuple[Path, dict], tmp_path: Path) -> None:
    path, report = too_big
    result = runner.invoke(app, ["gate", str(path), "--require-mcu-fit", "--junit", str(tmp_path / "gate.xml")])
    assert result.exit_code == 1
    assert "require_mcu_fit" in result.stdout and "FAIL" in result.stdout
    assert "exceeds" in (tmp_path / "gate.xml").read_text()
    fits_path = tmp_path / "fits.json"
    code, fitting = audit(tmp_path, "fits", "--board", "esp32s3")
    assert code == 0 and fitting["model"]["mcu"]["ok"] is True
    assert runner.invoke(app, ["gate", str(tmp_path / "fits.json"), "--require-mcu-fit"]).exit_code == 0
    no_budget = tmp_path / "none.json"
    fits_path.rename(no_budget)
    data = json.loads(no_budget.read_text())
    data["model"]["mcu"] = None
    no_budget.write_text(json.dumps(data))
    result = runner.invoke(app, ["gate", str(no_budget), "--require-mcu-fit"])
    assert result.exit_code == 1 and "no MCU budget" in result.stdout


def test_audit_fail_on_gate_with_require_mcu_fit(tmp_path: Path) -> None:
    code, _ = audit(tmp_path, "gated", "--mcu-ram", "8KiB", "--fail-on-gate", "--require-mcu-fit")
    assert code == 1


def test_runtime_comparison_in_every_format(tmp_path: Path) -> None:
    code, report = audit(tmp_path, "runs", "--runtime", "litert", "--runtime", "tflm")
    assert code == 0
    comparison = report["comparison"]
    rows = list(csv.DictReader(io.StringIO(ReportFormatChoice.csv.to_format().format(report))))
    runs = [r for r in rows if r["row"] == "run"]
    assert [r["group"] for r in runs] == [run["label"] for run in comparison["runs"]]
    for attribute in comparison["attributes"]:
        for group in attribute["groups"]:
            for i, run in enumerate(group["runs"]):
                (row,) = [r for r in rows if r["row"] == "comparison" and r["group"] == group["name"]
                          and r["run"] == str(i + 1)]  # fmt: skip
                assert float(row[comparison["metric"]]) == pytest.approx(run["metric"])
                if i:
                    assert float(row["flip_rate"]) == pytest.approx(run["flip_rate"])
        rb = [r for r in rows if r["row"] == "comparison_rb" and r["attribute"] == attribute["name"]]
        assert len(rb) == len(comparison["runs"])
    for choice in (ReportFormatChoice.table, ReportFormatChoice.markdown, ReportFormatChoice.html):
        text = choice.to_format().format(report)
        for run in comparison["runs"]:
            assert run["label"] in text
        assert "forgotten" in text
