"""``report runs/NAME``: a sweep folder (hand-written) as one escaped, self-contained, deterministic page."""

from __future__ import annotations

import base64
import csv
import json
import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from ondevice_audit.cli import app
from ondevice_audit.report.html import sweep_html
from ondevice_audit.sweep.folder import NOT_A_SWEEP

SCRIPT = "<script>alert(1)</script>"
HOSTILE_CELL = '002-<img src=x onerror="alert(1)">&'
PNG = re.compile(r"data:image/png;base64,([A-Za-z0-9+/=]+)")
runner = CliRunner()


def ranked(cell: str, architecture: str, accuracy: float, rb: float, size: int) -> dict[str, Any]:
    return {
        "cell": cell,
        "architecture": architecture,
        "accuracy": accuracy,
        "rb": rb,
        "rb_ci_low": rb / 2,
        "rb_ci_high": rb * 2,
        "size_bytes": size,
        "latency_ms": 0.02,
    }


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    """Three finished cells (one with a hostile id, one with a hostile architecture) and one failed cell.
    The hostile cell is the least biased within 1 % of the best accuracy: the recommended one."""
    folder = tmp_path / "runs" / "hostile"
    folder.mkdir(parents=True)
    rows = [
        ranked(HOSTILE_CELL, "ds-cnn", 0.95, 0.02, 2000),
        ranked("000-aaaa", SCRIPT, 0.955, 0.05, 1000),
        ranked("001-bbbb", "ds-cnn", 0.90, 0.04, 3000),
    ]
    analysis = {
        "metric": "accuracy",
        "higher_is_better": True,
        "cells": 4,
        "ok": 3,
        "ranked": rows,
        "effects": [
            {
                "factor": "architecture",
                "levels": [
                    {"level": SCRIPT, "mean_rb": 0.05, "cells": 1},
                    {"level": "ds-cnn", "mean_rb": 0.03, "cells": 2},
                ],
                "spread": 0.02,
                "f_statistic": 1.5,
                "p_value": 0.43,
                "mutual_information": 0.2,
                "below_noise": True,
            }
        ],
        "noise_floor": 0.03,
        "noise_sets": 1,
        "selection": {
            "most_accurate": "000-aaaa",
            "least_biased": HOSTILE_CELL,
            "least_biased_within": HOSTILE_CELL,
            "within_percent": 1.0,
        },
        "pareto": ["000-aaaa", HOSTILE_CELL],
    }
    summary = {
        "matrix": "matrix.toml",
        "cells": {"total": 4, "ok": 3, "failed": 1, "from_cache": 0, "skipped_combinations": 0},
        "analysis": analysis,
    }
    cells = [HOSTILE_CELL, "000-aaaa", "001-bbbb", "003-cccc"]
    architectures = ["ds-cnn", SCRIPT, "ds-cnn", "ds-cnn"]
    state = {
        "matrix": "matrix.toml",
        "bias_attribute": "gender",
        "metric": "accuracy",
        "cells": [
            {"id": c, "factors": {"architecture": a, "seed": 0}} for c, a in zip(cells, architectures, strict=True)
        ],
    }
    (folder / "sweep.json").write_text(json.dumps(state))
    (folder / "summary.json").write_text(json.dumps(summary))
    (folder / "summary.md").write_text("# Sweep\n\n![accuracy vs RB per cell](metric_vs_rb.png)\n")
    with (folder / "results.csv").open("w", newline="") as file:
        writer = csv.DictWriter(file, ["cell", "status", "error", "architecture", "model_sparsity"])
        writer.writeheader()
        for cell, architecture in zip(cells[:3], architectures[:3], strict=True):
            writer.writerow({"cell": cell, "status": "ok", "architecture": architecture, "model_sparsity": 0.5})
        writer.writerow({"cell": "003-cccc", "status": "failed", "error": f"export: {SCRIPT}\nline 2"})
    return folder


def render(folder: Path, *args: str | Path) -> Any:
    return runner.invoke(app, ["report", str(folder), *map(str, args)])


def test_every_value_is_escaped_and_nothing_is_external(sweep: Path, tmp_path: Path) -> None:
    assert render(sweep, "--html", tmp_path / "sweep.html").exit_code == 0
    page = (tmp_path / "sweep.html").read_text()
    assert "<script" not in page and "<img src=x" not in page and 'onerror="' not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "002-&lt;img src=x onerror=&quot;alert(1)&quot;&gt;&amp;" in page
    assert "export: &lt;script&gt;" in page
    assert "http://" not in page and "https://" not in page and "<link" not in page
    assert not re.search(r"""(src|href)\s*=\s*["']?(?!data:)[a-z]+:""", page)


def test_one_scatter_and_the_recommended_cell_named(sweep: Path) -> None:
    state = json.loads((sweep / "sweep.json").read_text())
    summary = json.loads((sweep / "summary.json").read_text())
    page = sweep_html(state, summary, [])
    [chart] = [base64.b64decode(data) for data in PNG.findall(page)]
    assert chart.startswith(b"\x89PNG\r\n\x1a\n") and b"Software" not in chart
    recommended = re.search(r"<h2>Recommended variant</h2>\s*<p[^>]*>(.*?)</p>", page, re.S)
    assert recommended is not None
    assert '<b class="mono">002-&lt;img src=x onerror=&quot;alert(1)&quot;&gt;&amp;</b>' in recommended.group(1)
    assert "within 1 % of the best accuracy" in recommended.group(1)
    assert '<tr class="recommended"><td class="text mono">002-&lt;img' in page
    assert "below: indistinguishable from reseeding" in page and "0.43" in page


def test_same_sweep_same_bytes(sweep: Path, tmp_path: Path) -> None:
    assert render(sweep, "--html", tmp_path / "a.html").exit_code == 0
    assert render(sweep, "--html", tmp_path / "b.html").exit_code == 0
    assert (tmp_path / "a.html").read_bytes() == (tmp_path / "b.html").read_bytes()


def test_markdown_points_the_chart_at_the_sweep_folder(sweep: Path, tmp_path: Path) -> None:
    out = tmp_path / "docs" / "sweep.md"
    assert render(sweep, "--markdown", out).exit_code == 0
    assert out.read_text() == "# Sweep\n\n![accuracy vs RB per cell](../runs/hostile/metric_vs_rb.png)\n"


def test_a_folder_that_is_not_a_finished_sweep_is_a_usage_error(sweep: Path, tmp_path: Path) -> None:
    (sweep / "summary.json").unlink()
    result = render(sweep, "--html", tmp_path / "x.html")
    assert result.exit_code == 2
    message = NOT_A_SWEEP.format(path=sweep, name="summary.json")
    assert message in " ".join(result.stderr.split())
    assert not (tmp_path / "x.html").exists()
