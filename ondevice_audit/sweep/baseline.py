"""Every cell of a user-model sweep against the ``baseline`` cell (the model as given).

Per finished cell, the clips both scored are compared with ``metrics.disparity.DisparityFrame`` (the same
comparison ``audit --reference`` makes, reported by ``targets.comparison.comparison_section``): the metric
and RB change, the paired-bootstrap interval of the RB change, and per group the flip rate (clips predicted
differently from the baseline) and the forgotten clips (right on the baseline, wrong now). The cell's
report.json gets the ``comparison`` section; results.csv gets the columns ``comparison_columns`` returns.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ondevice_audit.report.document import load_report, to_json, validate
from ondevice_audit.sweep.cache import atomic_write_text
from ondevice_audit.sweep.folder import CellFolder, SweepFolder
from ondevice_audit.sweep.matrix import DataSettings
from ondevice_audit.sweep.user_model import BASELINE_CELL
from ondevice_audit.targets.interface import LoadedModel, TargetFacts

if TYPE_CHECKING:
    from ondevice_audit.tasks import ClassifierTask, DetectorTask

__all__ = ["COMPARISON_COLUMNS", "compare_with_baseline"]

COMPARISON_COLUMNS = ("n_compared", "metric_delta", "rb_delta", "rb_delta_ci_low", "rb_delta_ci_high", "flip_rate",
                      "forgotten")  # fmt: skip
"""Always present in a user-model sweep's results, before the per-group flip and forgotten columns."""


def compare_with_baseline(
    results: pd.DataFrame, sweep: SweepFolder, data: DataSettings, scoring: ClassifierTask | DetectorTask
) -> pd.DataFrame:
    """``results`` with the comparison columns (empty for the baseline and for failed cells), after writing
    each compared cell's ``comparison`` section into ``cells/<id>/report.json``."""
    baseline_row = results[results["cell"] == BASELINE_CELL]
    if baseline_row.empty or baseline_row["status"].iloc[0] != "ok":
        return results.assign(**{column: np.nan for column in COMPARISON_COLUMNS})
    from ondevice_audit.targets.local import LocalTarget

    baseline = _predictions(sweep.cell(BASELINE_CELL))
    baseline_report = load_report(sweep.cell(BASELINE_CELL).report)
    here = LocalTarget().check()  # the machine the local runs were on, the same for every cell
    rows: list[dict[str, Any]] = []
    for cell, status in zip(results["cell"], results["status"], strict=True):
        if cell == BASELINE_CELL or status != "ok":
            rows.append({})
            continue
        folder = sweep.cell(cell)
        rows.append(_compare(baseline, baseline_report, _predictions(folder), folder, data, scoring, here))
    columns = pd.DataFrame(rows, index=results.index).reindex(
        columns=list(dict.fromkeys([*COMPARISON_COLUMNS, *(k for row in rows for k in row)]))
    )
    return pd.concat([results, columns], axis=1)


def _predictions(folder: CellFolder) -> pd.DataFrame:
    return pd.read_csv(folder.predictions, dtype=str, keep_default_na=False)


def _compare(
    baseline: pd.DataFrame,
    baseline_report: dict[str, Any],
    cell: pd.DataFrame,
    folder: CellFolder,
    data: DataSettings,
    scoring: ClassifierTask | DetectorTask,
    here: TargetFacts,
) -> dict[str, Any]:
    from ondevice_audit.targets.comparison import comparison_section

    column = scoring.output_column
    joined = baseline.merge(cell[["path", column]], on="path", suffixes=("_baseline", ""), validate="1:1")
    outputs = [joined[f"{column}_baseline"].to_numpy(), joined[column].to_numpy()]
    disparity = scoring.disparity(joined, outputs, scoring.resolve(data.score_options()))
    report = load_report(folder.report)
    runs, records = _runs(baseline_report, report, folder.path.name, here)
    report["comparison"] = comparison_section(runs, records, disparity)
    validate(report)
    atomic_write_text(folder.report, to_json(report))
    overall = disparity.overall
    before, after = overall.values
    row: dict[str, Any] = {
        "n_compared": overall.n,
        "metric_delta": None if before is None or after is None else after - before,
        "flip_rate": overall.flip_rate(1),
        "forgotten": overall.forgotten[1],
    }
    for attribute in disparity.attributes:
        if attribute.name == data.bias_attribute:
            change = attribute.rb[1]
            low, high = change.ci or (None, None)
            row.update(rb_delta=change.difference, rb_delta_ci_low=low, rb_delta_ci_high=high)
        for group in attribute.groups:
            row[f"flip_rate.{attribute.name}={group.name}"] = group.flip_rate(1)
            row[f"forgotten.{attribute.name}={group.name}"] = group.forgotten[1]
    return row


def _runs(
    baseline_report: dict[str, Any], report: dict[str, Any], cell: str, here: TargetFacts
) -> tuple[list[Any], list[Any]]:
    """The two runs as ``comparison_section`` describes them: in the sweep's workers, or on the cell's
    ``target``; their latency is the cell's median single-sample latency (the sweep keeps no per-call times)."""
    from ondevice_audit.targets import parse_target
    from ondevice_audit.targets.resume import BatchStats
    from ondevice_audit.targets.runs import Run, RunRecord

    runs, records = [], []
    for role, document in (("baseline", baseline_report), (cell, report)):
        model = document["model"]
        path = Path(model["path"])
        target = parse_target(model.get("target", "local"))
        device = here
        if "device" in model:
            device = TargetFacts(target=target.label, runtimes=[], free_disk_bytes=None, **model["device"])
        where = f" on {target.label}" if target.label != "local" else ""
        runs.append(Run(f"{role}: {path.name} ({model['runtime']}){where}", path, target, model["runtime"]))
        records.append(
            RunRecord(
                model=LoadedModel(**{key: model[key] for key in LoadedModel.__dataclass_fields__}),
                device=device,
                model_sha256=model["sha256"],
                latency=np.asarray([model["seconds_per_sample"]]),
                peak_memory_bytes=None,
                batches=BatchStats(),
            )
        )
    return runs, records
