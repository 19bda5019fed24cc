"""A sweep of a detector (``[data] task = "detect"``): MFCC against the micro front-end, with and without a
mitigation, each cell trained as a single-sigmoid detector of 'yes' and scored at one operating point.

Every number checked here is recomputed with numpy from the cells' predictions.csv: the threshold at
``at_far`` on each cell's own negatives, the per-group detection rates at it, and the mitigation's paired
change in the detection rate.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from ondevice_audit.cli import app
from ondevice_audit.errors import UsageError
from ondevice_audit.export.metadata import read_metadata
from ondevice_audit.frontend import MicroFrontendSpec
from ondevice_audit.report.document import load_report
from ondevice_audit.sweep import parse_matrix

runner = CliRunner()
AT_FAR = 0.1
DETECTOR = f'metric = "tpr"\ntask = "detect"\npositive_label = "yes"\nat_far = {AT_FAR}\n'
DETECTOR += 'train_imbalance = "gender=female:0.3"\n'


@pytest.fixture(scope="module")
def detector_sweep(tmp_path_factory: pytest.TempPathFactory, tone_dataset: Path, write_matrix) -> Path:
    root = tmp_path_factory.mktemp("detector-sweep")
    path = write_matrix(root, tone_dataset, 'features = ["mfcc", "micro"]\nmitigation = ["none", "reweight"]\n',
                        epochs=6, batch_size=16, learning_rate=0.01)  # fmt: skip
    path.write_text(path.read_text().replace('metric = "accuracy"\n', DETECTOR))
    out = root / "run"
    result = runner.invoke(app, ["sweep", "-m", str(path), "--out", str(out), "--cache", str(root / "cache")])
    assert result.exit_code == 0, result.output
    return out


def _threshold_at_far(negatives: np.ndarray, far: float) -> float:
    """The lowest score that, as a threshold, accepts at most ``far`` of the negatives."""
    feasible = [v for v in np.unique(negatives) if (negatives >= v).sum() <= far * len(negatives)]
    return float(min(feasible)) if feasible else float(np.nextafter(negatives.max(), np.inf))


def _scored(out: Path, cell: str) -> tuple[pd.DataFrame, float]:
    predictions = pd.read_csv(out / "cells" / cell / "predictions.csv")
    threshold = _threshold_at_far(predictions.loc[predictions["label"] != "yes", "score"].to_numpy(), AT_FAR)
    return predictions.assign(accepted=predictions["score"] >= threshold), threshold


def _tpr(frame: pd.DataFrame) -> float:
    positives = frame[frame["label"] == "yes"]
    return float(positives["accepted"].mean())


def test_every_cell_is_a_detector_scored_at_the_populations_threshold(detector_sweep: Path) -> None:
    results = pd.read_csv(detector_sweep / "results.csv")
    assert list(results["status"]) == ["ok"] * 4
    assert {"tpr", "frr", "far", "fa_per_hour", "eer", "threshold", "rb"} <= set(results.columns)
    for _, row in results.iterrows():
        scored, threshold = _scored(detector_sweep, row["cell"])
        report = load_report(detector_sweep / "cells" / row["cell"] / "report.json")
        assert report["detection"]["threshold"]["value"] == pytest.approx(threshold, abs=1e-7)
        assert row["tpr"] == pytest.approx(_tpr(scored), abs=1e-9)
        for group in report["attributes"][0]["groups"]:
            expected = _tpr(scored[scored["gender"] == group["name"]])
            assert group["metrics"]["tpr"] == pytest.approx(expected, abs=1e-9), (row["cell"], group["name"])
        assert row["far"] <= AT_FAR + 1e-12
        model = next((detector_sweep / "cells" / row["cell"]).glob("model*"))
        metadata = read_metadata(model)
        assert metadata.labels == ["yes"] and metadata.extra["task"] == "detect"
        assert isinstance(metadata.frontend, MicroFrontendSpec) == (row["features"] == "micro")


def test_the_mitigation_change_is_the_paired_difference_of_detection_rates(detector_sweep: Path) -> None:
    results = pd.read_csv(detector_sweep / "results.csv")
    (effect,) = json.loads((detector_sweep / "summary.json").read_text())["analysis"]["mitigation"]
    assert effect["level"] == "reweight" and len(effect["pairs"]) == 2
    changes = [_tpr(_scored(detector_sweep, alt)[0]) - _tpr(_scored(detector_sweep, ref)[0])
               for ref, alt in effect["pairs"]]  # fmt: skip
    assert effect["metric_change"] == pytest.approx(np.mean(changes), abs=1e-9)
    rb = results.set_index("cell")["rb"]
    expected = np.mean([rb[alt] - rb[ref] for ref, alt in effect["pairs"]])
    # the micro cells hear little of a steady tone (the front-end's noise reduction takes it for noise), so a
    # group's detection rate can be 0 and RB undefined: then so is the change
    assert effect["rb_change"] is None if np.isnan(expected) else effect["rb_change"] == pytest.approx(expected)


def test_a_micro_cell_reads_the_frame_factors_and_keeps_a_valid_filterbank() -> None:
    text = 'sample_rate = 8000\nfeatures = "micro"\nn_mels = 10\nframe_length_ms = 30\nframe_step = 0.5\n'
    matrix = parse_matrix(tomllib.loads(text + '[data]\nmanifest = "m.csv"\ngroups = ["gender"]\n'), Path("x.toml"))
    spec = matrix.frontend(matrix.cells[0])
    assert spec == MicroFrontendSpec(sample_rate=8000, window_ms=30, step_ms=15, channels=10, upper_band_limit=3750)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ('task = "detect"\n', "data.task = \"detect\" needs data.positive_label"),
        ('task = "spot"\n', "data.task = 'spot' is not valid"),
        ('positive_label = "yes"\n', 'data.positive_label are for detectors: add data.task = "detect"'),
        ('task = "detect"\npositive_label = "yes"\nmetric = "mcc"\n', "'mcc' is not valid for a detector"),
        ('task = "detect"\npositive_label = "yes"\nthreshold = 0.5\nat_far = 0.1\n', "give exactly one of"),
        ('task = "detect"\npositive_label = "yes"\nat_far = 2.0\n', "--at-far is a share"),
        ('task = "detect"\npositive_label = "yes"\nthreshold = "high"\n', "data.threshold = 'high' must be"),
    ],
)
def test_bad_detector_settings_are_refused_naming_them(data: str, message: str) -> None:
    text = '[data]\nmanifest = "m.csv"\ngroups = ["gender"]\n' + data
    with pytest.raises(UsageError) as caught:
        parse_matrix(tomllib.loads(text), Path("x.toml"))
    assert message in str(caught.value)


def test_a_positive_label_missing_from_the_data_is_refused(tone_dataset: Path, tmp_path: Path, write_matrix) -> None:
    path = write_matrix(tmp_path, tone_dataset, "")
    path.write_text(path.read_text().replace('metric = "accuracy"\n', 'task = "detect"\npositive_label = "maybe"\n'))
    result = runner.invoke(app, ["sweep", "-m", str(path), "--out", str(tmp_path / "run"), "--cache",
                                 str(tmp_path / "cache")], env={"COLUMNS": "200"})  # fmt: skip
    assert result.exit_code == 2
    assert "data.positive_label 'maybe' is not a label in the data" in " ".join(result.output.split())
