import numpy as np
import pandas as pd
import pytest

from ondevice_audit.errors import UsageError
from ondevice_audit.metrics import GroupMetricFrame
from ondevice_audit.report.compare import compare_reports
from ondevice_audit.report.document import build_report


def _report(accuracy_f, accuracy_m, groups=("f", "m"), metric="accuracy"):
    n = 100
    truth = np.array(["yes"] * n)
    pred = np.array(["yes"] * int(accuracy_f * n) + ["no"] * (n - int(accuracy_f * n)) + ["yes"] * int(accuracy_m * n)
                    + ["no"] * (n - int(accuracy_m * n)))  # fmt: skip
    frame = GroupMetricFrame(y_true=np.concatenate([truth, truth]), y_pred=pred, metric=metric,
                             sensitive_features=pd.DataFrame({"g": [groups[0]] * n + [groups[1]] * n}),
                             n_boot=0, n_perm=0, min_group_size=1)  # fmt: skip
    report = build_report(command="score", frame=frame, inputs=[], warnings=[], samples={},
                          settings={"metric": metric})  # fmt: skip
    report["model"] = {"size_bytes": 1000, "seconds_per_sample": 0.001}
    return report


def test_deltas_are_b_minus_a_per_group_attribute_and_model():
    comparison = compare_reports(_report(0.8, 0.9), _report(0.6, 0.9))
    groups = comparison.groups.set_index("group")
    assert groups.loc["f", "delta"] == pytest.approx(-0.2) and groups.loc["m", "delta"] == pytest.approx(0.0)
    bias = comparison.bias.iloc[0]
    assert bias["delta"] == pytest.approx(bias["rb_b"] - bias["rb_a"]) and bias["delta"] > 0
    assert bias["worst_b"] == "f"
    model = comparison.model.set_index("quantity")
    assert model.loc["overall accuracy", "delta"] == pytest.approx(-0.1)
    assert model.loc["ms_per_sample", "a"] == pytest.approx(1.0)


def test_groups_in_one_report_only_are_kept():
    with pytest.raises(UsageError, match="different data.*g groups differ"):
        compare_reports(_report(0.8, 0.9), _report(0.8, 0.9, groups=("f", "x")))
    comparison = compare_reports(_report(0.8, 0.9), _report(0.8, 0.9, groups=("f", "x")), allow_different_data=True)
    assert comparison.data_differences == ["g groups differ (m, x in one report only)"]
    rows = comparison.groups.set_index("group")
    assert pd.isna(rows.loc["m", "metric_b"]) and pd.isna(rows.loc["x", "metric_a"])


def test_different_metrics_are_refused():
    with pytest.raises(UsageError, match="different metrics"):
        compare_reports(_report(0.8, 0.9), _report(0.8, 0.9, metric="mcc"))


def test_compare_command_on_two_report_files(tmp_path):
    import json

    from typer.testing import CliRunner

    from ondevice_audit.cli import app
    from ondevice_audit.report.document import to_json

    a, b = tmp_path / "a.json", tmp_path / "b.json"
    for path, report in ((a, _report(0.8, 0.9)), (b, _report(0.6, 0.9))):
        report.update(model=None, samples={"total": 200, "scored": 200, "failed": 0, "failures": []}, inputs=[],
                      settings={"metric": "accuracy", "groups": ["g"], "min_group_size": 1, "bootstrap": 0,
                                "permutations": 0, "seed": 0, "confidence": 0.95})  # fmt: skip
        path.write_text(to_json(report))
    out = tmp_path / "delta.csv"
    result = CliRunner().invoke(app, ["compare", str(a), str(b), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "-0.2" in result.stdout and "reliability bias" in result.stdout
    assert pd.read_csv(out).set_index("group").loc["f", "delta"] == pytest.approx(-0.2)
    json.loads(a.read_text())  # inputs untouched
