"""`sweep` end to end on real audio with real training, pruning, export and inference (2 cells, ~30 s).

The full matrix (32 cells, SIGKILL and --resume, --jobs 2) is in ``test_sweep_slow.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from ondevice_audit.cli import app
from ondevice_audit.export.metadata import read_metadata
from ondevice_audit.report.document import load_report
from ondevice_audit.sweep import Cache, Matrix, load_matrix, run_sweep
from ondevice_audit.sweep.stages import build_plan, prepare_context

runner = CliRunner()


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sweep-cache")


@pytest.fixture(scope="module")
def pruned_sweep(
    tmp_path_factory: pytest.TempPathFactory, tone_dataset: Path, cache: Path, write_matrix
) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("pruned")
    matrix = write_matrix(root, tone_dataset, 'architecture = "ds-cnn"\n[pruning]\nfinal_sparsity = [0, 0.5]\n')
    result = runner.invoke(app, ["sweep", "--matrix", str(matrix), "--out", str(root / "run"), "--cache", str(cache)])
    assert result.exit_code == 0, result.output
    return matrix, root / "run"


def test_every_cell_is_exported_audited_and_measured(pruned_sweep: tuple[Path, Path]) -> None:
    _, out = pruned_sweep
    results = pd.read_csv(out / "results.csv")
    assert list(results["status"]) == ["ok", "ok"] and list(results["pruning.final_sparsity"]) == [0.0, 0.5]
    unpruned, pruned = results.iloc[0], results.iloc[1]
    # Sparsity is read from the .tflite file itself; ds-cnn's 4 depthwise kernels stay dense.
    assert unpruned["achieved_sparsity"] <= 0.02
    assert abs(pruned["achieved_sparsity"] - 0.5) <= 0.02
    assert (unpruned["dense_kernels"], pruned["dense_kernels"]) == (4, 4)
    assert 0.3 < pruned["model_sparsity"] < pruned["achieved_sparsity"]
    assert results["size_bytes"].gt(0).all() and results["latency_ms"].gt(0).all()
    assert results["n_test"].eq(72).all() and results["rb"].notna().all()
    assert {"rb.gender", "rb.accent", "rb.gender × accent", "accuracy.gender=female"} <= set(results.columns)
    for _, row in results.iterrows():
        folder = out / "cells" / row["cell"]
        report = load_report(folder / "report.json")  # validates against the schema
        assert report["settings"]["sweep"]["cell"] == row["cell"] and report["settings"]["split"] == "test"
        assert report["overall"]["metrics"]["accuracy"] == pytest.approx(row["accuracy"])
        assert report["attributes"][0]["rb"]["value"] == pytest.approx(row["rb"])
        assert report["samples"]["total"] == 72 and Path(report["model"]["path"]) == folder / "model.tflite"
        metadata = read_metadata(folder / "model.tflite")
        assert metadata is not None and metadata.labels == ["_unknown_", "no", "yes"]
        assert (
            metadata.extra["recipe"] == "ds-cnn"
            and metadata.extra["requested_sparsity"] == row["pruning.final_sparsity"]
        )
        assert len(pd.read_csv(folder / "predictions.csv")) == 72
    warnings = load_report(out / "cells" / pruned["cell"] / "report.json")["warnings"]
    assert any("4 depthwise kernel(s) cannot be pruned and stay dense" in w for w in warnings)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["cache"]["misses"] == {"features": 1, "train": 1, "prune": 1, "export": 2, "infer": 2, "score": 2}
    assert summary["cells"] == {"total": 2, "ok": 2, "failed": 0, "from_cache": 0, "skipped_combinations": 0}
    assert (out / "metric_vs_rb.png").read_bytes()[:4] == b"\x89PNG"
    assert "## Which design choice drives bias" in (out / "summary.md").read_text()
    assert (out / "results.parquet").is_file() == summary["results_parquet"]


def test_predictions_of_a_cell_can_be_scored_again(pruned_sweep: tuple[Path, Path]) -> None:
    _, out = pruned_sweep
    cell = next((out / "cells").iterdir())
    scored = runner.invoke(
        app, ["score", str(cell / "predictions.csv"), "-g", "gender", "--metric", "accuracy", "--min-group-size", "5",
              "--bootstrap", "0", "--permutations", "0", "--format", "json"],
    )  # fmt: skip
    assert scored.exit_code == 0, scored.output
    report = json.loads(scored.stdout)
    assert report["overall"]["metrics"]["accuracy"] == pytest.approx(
        load_report(cell / "report.json")["overall"]["metrics"]["accuracy"]
    )


def test_a_second_run_is_served_from_the_cache(pruned_sweep: tuple[Path, Path], cache: Path, tmp_path: Path) -> None:
    matrix, first = pruned_sweep
    result = runner.invoke(
        app, ["sweep", "-m", str(matrix), "--out", str(tmp_path / "again"), "--cache", str(cache), "-q"]
    )
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "again" / "summary.json").read_text())
    assert sum(summary["cache"]["misses"].values()) == 0  # no training, pruning, export or inference
    assert summary["cache"]["hits"]["train"] == 1 and summary["cells"]["from_cache"] == 2
    pd.testing.assert_frame_equal(pd.read_csv(first / "results.csv"), pd.read_csv(tmp_path / "again" / "results.csv"))


@pytest.mark.parametrize("columns", [80, 50])
def test_the_summary_in_a_narrow_log_keeps_every_cell_and_number(
    pruned_sweep: tuple[Path, Path], cache: Path, tmp_path: Path, columns: int
) -> None:
    """A CI log: not a terminal, 80 columns or fewer. A table that does not fit becomes records; nothing is cut."""
    matrix, first = pruned_sweep
    result = runner.invoke(
        app, ["sweep", "-m", str(matrix), "--out", str(tmp_path / "again"), "--cache", str(cache)],
        env={"COLUMNS": str(columns)},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "…" not in result.stdout
    for row in pd.read_csv(first / "results.csv").to_dict("records"):
        line = next(line for line in result.stdout.splitlines() if row["cell"] in line)
        assert f"{row['pruning.final_sparsity']:.3g}" in line and f"{row['accuracy']:.3g}" in result.stdout
        assert f"{row['rb']:.3g} [" in result.stdout
    assert ("cell: " in result.stdout) is (columns == 50)


def test_a_sweep_folder_is_only_continued_with_resume_and_the_same_matrix(
    pruned_sweep: tuple[Path, Path], cache: Path
) -> None:
    matrix, out = pruned_sweep
    again = runner.invoke(app, ["sweep", "-m", str(matrix), "--out", str(out), "--cache", str(cache), "-q"])
    assert again.exit_code == 2 and "pass --resume" in again.output
    resumed = runner.invoke(
        app, ["sweep", "-m", str(matrix), "--out", str(out), "--cache", str(cache), "-q", "--resume"]
    )
    assert resumed.exit_code == 0, resumed.output
    other = matrix.with_name("other.toml")
    other.write_text(matrix.read_text().replace("final_sparsity = [0, 0.5]", "final_sparsity = [0, 0.25]"))
    refused = runner.invoke(app, ["sweep", "-m", str(other), "--out", str(out), "--cache", str(cache), "--resume"])
    assert refused.exit_code == 2 and "different matrix" in refused.output


def block_entry(cache: Path, matrix: Matrix, stage: str, cell: int) -> Path:
    """A plain file where a cell's cache entry must go: the worker does the work but cannot store it."""
    context = prepare_context(matrix, cache)
    plan = build_plan(context, Cache(cache))
    key = next(k for k in plan.cells[cell].chain if plan.tasks[k].stage == stage)
    blocker = Cache(cache).entry(stage, key)
    blocker.parent.mkdir(parents=True, exist_ok=True)
    blocker.write_text("not a folder")
    return blocker


def test_a_failed_cell_is_recorded_and_the_sweep_goes_on(
    tone_dataset: Path, cache: Path, tmp_path: Path, write_matrix
) -> None:
    path = write_matrix(tmp_path, tone_dataset, 'architecture = "ds-cnn"\nquantization = ["f32", "int8"]\n')
    matrix = load_matrix(path)
    blocker = block_entry(cache, matrix, "score", 1)
    result = run_sweep(matrix, tmp_path / "run", cache_dir=cache)
    assert list(result.results["status"]) == ["ok", "failed"]
    failed = result.results.iloc[1]
    assert failed["error"].startswith("score: NotADirectoryError") and pd.isna(failed["accuracy"])
    assert "Traceback" in (tmp_path / "run" / "cells" / failed["cell"] / "error.txt").read_text()
    assert result.cache["failed"]["score"] == 1 and result.cache["misses"]["export"] == 1 and result.analysis.ok == 1
    # Failures are not cached: resuming retries them.
    blocker.unlink()
    resumed = run_sweep(matrix, tmp_path / "run", cache_dir=cache, resume=True)
    assert list(resumed.results["status"]) == ["ok", "ok"]
    assert resumed.cache["misses"] == {"features": 0, "train": 0, "prune": 0, "export": 0, "infer": 0, "score": 1}
    assert not (tmp_path / "run" / "cells" / failed["cell"] / "error.txt").exists()


def test_every_cell_failing_fails_the_command(tone_dataset: Path, cache: Path, tmp_path: Path, write_matrix) -> None:
    path = write_matrix(tmp_path, tone_dataset, 'architecture = "ds-cnn"\n')
    path.write_text(path.read_text().replace("min_group_size = 5", "min_group_size = 6"))  # a new score, same model
    block_entry(cache, load_matrix(path), "score", 0)
    result = runner.invoke(app, ["sweep", "-m", str(path), "--out", str(tmp_path / "run"), "--cache", str(cache), "-q"])
    assert result.exit_code == 3 and "every cell failed" in result.output
    assert pd.read_csv(tmp_path / "run" / "results.csv")["error"].str.startswith("score: NotADirectoryError").all()


def test_sweep_fail_on_gate_judges_every_cell(pruned_sweep: tuple[Path, Path], cache: Path, tmp_path: Path) -> None:
    matrix, out = pruned_sweep
    args = ["sweep", "-m", str(matrix), "--out", str(out), "--cache", str(cache), "-q", "--resume", "--fail-on-gate"]
    junit = tmp_path / "gate.xml"
    strict = runner.invoke(app, [*args, "--max-rb", "-1", "--no-use-ci-bound", "--junit", str(junit)])
    assert strict.exit_code == 1, strict.output
    reports = sorted((out / "cells").glob("*/report.json"))
    checks = sum(len(json.loads(r.read_text())["attributes"]) for r in reports)  # max_rb per attribute and cell
    assert len(reports) == 2 and junit.read_text().count("<testcase") == checks
    lenient = runner.invoke(app, [*args, "--max-rb", "100", "--no-use-ci-bound"])
    assert lenient.exit_code == 0, lenient.output
