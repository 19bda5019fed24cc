"""Output read without a terminal (a CI log at 80 columns): every table keeps every number and group name whole.

Each command runs as a real subprocess with ``COLUMNS=80`` and its output going to a file, as in CI. The values
checked come from the same run's JSON report, formatted as the table formats them.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from rich.table import Table

from ondevice_audit.report.interface import fmt_interval, fmt_number
from ondevice_audit.report.table import ReadableConsole

REPO = Path(__file__).resolve().parents[2]
MODEL = REPO / "models" / "kws-ds-cnn" / "model.tflite"
MANIFEST = REPO / "datasets" / "synth-kws" / "manifest.csv"
ACCENTS = ["en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-us-nyc-long-island-suburbs"]
_SHA_PREFIX = re.compile(r"sha256\s+[0-9a-f]{12}…")


def run(*args: str | Path, cwd: Path, columns: int = 80) -> tuple[int, str, str]:
    """The CLI in a subprocess, stdout and stderr to files (not a terminal), at ``columns`` columns."""
    env = {**os.environ, "COLUMNS": str(columns), "NO_COLOR": "1"}
    out, err = cwd / "stdout.txt", cwd / "stderr.txt"
    with out.open("w") as stdout, err.open("w") as stderr:
        code = subprocess.run(
            [sys.executable, "-m", "ondevice_audit", *map(str, args)], cwd=cwd, env=env, stdout=stdout, stderr=stderr
        ).returncode
    return code, out.read_text(), err.read_text()


def assert_not_truncated(text: str, columns: int = 80) -> None:
    """rich marks a cut cell with "…"; the only ones allowed are the deliberate sha256 prefixes."""
    assert "…" not in _SHA_PREFIX.sub("", text), text
    for line in text.splitlines():
        assert len(line) <= columns or " " not in line.strip(), line  # longer only for one unbreakable field


def assert_report_in_full(report: dict, text: str) -> None:
    metric = report["metric"]["name"]
    for attribute in report["attributes"]:
        for group in attribute["groups"]:
            record = f"group: {group['name']}"
            assert record in text, record
            assert f"n: {group['n']}" in text
            assert f"{metric}: {fmt_number(group['metrics'][metric])}" in text
            assert fmt_interval(group["ci"]) in text
            if group["log_ratio"] is not None:
                assert f"ln(P_g/P_all): {fmt_number(group['log_ratio'])}" in text
        assert f"RB({attribute['name']}) on {metric} = {attribute['rb']['value']:.3f}" in text


@pytest.fixture(scope="module")
def predictions(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Predictions of three long-named accent groups, each scored differently, with speakers."""
    rng = np.random.default_rng(1)
    rows = []
    for a, accent in enumerate(ACCENTS):
        for i in range(120):
            label = ("yes", "no", "_unknown_")[i % 3]
            wrong = rng.random() < 0.1 + 0.08 * a
            rows.append(
                {"label": label, "prediction": "no" if wrong and label != "no" else label, "accent": accent,
                 "gender": ("female", "male")[i % 2], "speaker": f"{accent}-{i % 10}"}
            )  # fmt: skip
    path = tmp_path_factory.mktemp("readable") / "predictions.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def _score(predictions: Path, cwd: Path, *extra: str) -> tuple[int, str, str]:
    return run("score", predictions, "-g", "accent", "-g", "gender", "--bootstrap", "200", "--permutations", "100",
               *extra, cwd=cwd)  # fmt: skip


def test_score_table_at_80_columns_keeps_every_number_and_group(predictions: Path, tmp_path: Path) -> None:
    code, _, _ = _score(predictions, tmp_path, "--format", "json", "--output", "report.json")
    assert code == 0
    report = json.loads((tmp_path / "report.json").read_text())
    code, text, _ = _score(predictions, tmp_path)
    assert code == 0
    assert_report_in_full(report, text)
    assert_not_truncated(text)
    assert "group: en-us-nyc-long-island-suburbs × female" in text


def test_audit_table_at_80_columns(tmp_path: Path) -> None:
    args = ("audit", MODEL, "--data", MANIFEST, "-g", "gender", "-g", "accent", "--bootstrap", "100",
            "--permutations", "0")  # fmt: skip
    assert run(*args, "--format", "json", "--report-file", "report.json", cwd=tmp_path)[0] == 0
    report = json.loads((tmp_path / "report.json").read_text())
    code, text, _ = run(*args, cwd=tmp_path)
    assert code == 0
    assert_report_in_full(report, text)
    assert "group: en-gb-x-gbclan" in text
    assert_not_truncated(text)


def test_gate_compare_inspect_and_targets_at_80_columns(predictions: Path, tmp_path: Path) -> None:
    assert _score(predictions, tmp_path, "--format", "json", "--output", "a.json")[0] == 0
    assert _score(predictions, tmp_path, "--format", "json", "--output", "b.json", "--seed", "3")[0] == 0
    report = json.loads((tmp_path / "a.json").read_text())

    code, text, _ = run(
        "gate", "a.json", "--max-rb", "0.001", "--min-group-metric", "0.99", "--no-use-ci-bound", cwd=tmp_path
    )
    assert code == 1
    assert_not_truncated(text)
    for attribute in report["attributes"]:
        assert f"attribute: {attribute['name']}" in text
        assert f"value: {attribute['rb']['value']:.4g}" in text
    worst = min(report["attributes"][0]["groups"], key=lambda g: g["metrics"]["mcc"])
    assert f"worst group {worst['name']}: mcc {worst['metrics']['mcc']:.4g}" in text

    code, text, _ = run("compare", "a.json", "b.json", cwd=tmp_path)
    assert code == 0
    assert_not_truncated(text)
    for accent in ACCENTS:
        assert accent in text

    code, text, _ = run("datasets", "inspect", MANIFEST, "-g", "accent", cwd=tmp_path)
    assert code == 0
    assert_not_truncated(text)
    manifest = pd.read_csv(MANIFEST)
    for accent, clips in manifest["accent"].value_counts().items():
        assert accent in text and str(clips) in text

    code, text, _ = run("targets", "check", "local", cwd=tmp_path)
    assert code == 0
    assert_not_truncated(text)
    assert f"{sys.version_info.major}.{sys.version_info.minor}" in text


def test_a_wide_table_becomes_records_and_a_narrow_one_stays() -> None:
    """The sweep summary, export and every other table print through this console."""
    wide = Table(title="Cells by RB")
    for column in ("cell", "features", "accuracy", "RB [CI]", "KiB", "ms", "fits MCU"):
        wide.add_column(column)
    wide.add_row("013-9f2c1b7e0d4a", "log-mel", "0.98765", "0.06234 [0.01, 0.12]", "1234.5678", "0.0123", "yes")
    narrow = Table(title="small")
    narrow.add_column("group")
    narrow.add_row("en-gb-x-gbclan")
    console = ReadableConsole(width=40, record=True, file=open(os.devnull, "w"))  # noqa: SIM115
    console.print(wide)
    console.print(narrow)
    text = console.export_text()
    for value in ("013-9f2c1b7e0d4a", "0.98765", "0.06234 [0.01, 0.12]", "1234.5678", "0.0123", "fits MCU: yes"):
        assert value in text
    assert "┃" not in text.split("small")[0] and "en-gb-x-gbclan" in text.split("small")[1]
    assert "│ en-gb-x-gbclan │" in text
    assert_not_truncated(text, 40)


def test_quiet_prints_only_the_verdict(predictions: Path, tmp_path: Path) -> None:
    code, text, err = _score(predictions, tmp_path, "--quiet")
    assert code == 0 and err == ""
    assert [line.split(" on ")[0] for line in text.splitlines() if line.startswith("RB(")] == [
        "RB(accent)", "RB(gender)", "RB(accent × gender)"
    ]  # fmt: skip
    assert "group:" not in text and "┃" not in text
    code, text, err = _score(predictions, tmp_path, "--quiet", "--fail-on-gate", "--max-rb", "0.001")
    assert code == 1
    assert "gate failed" in err and "✓" not in err
