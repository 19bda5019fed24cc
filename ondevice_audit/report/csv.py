"""One row per overall / group / RB entry, for spreadsheets and pandas; then a detector's threshold and per-group EER
(``threshold`` and ``eer`` rows), the MCU budget (``mcu`` rows: item in
``attribute``, value in ``note``), the runtime comparison (``run``, ``comparison`` and ``comparison_rb`` rows,
the run's number in ``run``), the runtime that ran the model (``runtime``: its name in ``group``, its version,
kernels, delegate and threads in ``note``) and the report's warnings (``warning`` rows, the text in ``note``).

Names are written through the csv module (quotes, commas, newlines) and cells that a spreadsheet would run
as a formula (leading ``=``, ``+``, ``-``, ``@``) get a leading apostrophe.
"""

from __future__ import annotations

import csv
import io
from typing import Any

from ondevice_audit.report.interface import ReportFormat, mcu_of
from ondevice_audit.report.sentences import run_summary, runtime_text

__all__ = ["CsvFormat", "safe_cell"]

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(text: str | None) -> str | None:
    """``text`` as a spreadsheet shows it: a leading apostrophe where it would otherwise run as a formula."""
    return "'" + text if text and text.startswith(_FORMULA_START) else text


_INTERVALS = {"ci": ("ci_low", "ci_high"), "rb_ci": ("rb_ci_low", "rb_ci_high"),
              "rb_mean_ci": ("rb_mean_ci_low", "rb_mean_ci_high"), "gap_ci": ("gap_ci_low", "gap_ci_high")}  # fmt: skip


def _with_intervals(row: dict[str, Any]) -> dict[str, Any]:
    """``{"ci": [low, high]}`` as two columns each."""
    for key, (low, high) in _INTERVALS.items():
        interval = row.pop(key, None) or [None, None]
        row[low], row[high] = interval
    return row


class CsvFormat(ReportFormat):
    def format(self, report: dict[str, Any]) -> str:
        metric_names = list(report["overall"]["metrics"])
        header = ["row", "attribute", "group", "n", "speakers", "support", *metric_names, "ci_low", "ci_high",
                  "log_ratio", "in_rb", "rb", "rb_ci_low", "rb_ci_high", "rb_p_value", "rb_mean", "rb_mean_ci_low",
                  "rb_mean_ci_high", "gap", "gap_ci_low", "gap_ci_high", "note", *_COMPARISON_COLUMNS]  # fmt: skip
        out = io.StringIO()
        writer = csv.DictWriter(out, header, lineterminator="\n")
        writer.writeheader()
        overall = report["overall"]
        writer.writerow(_with_intervals({"row": "overall", "n": overall["n"], "speakers": overall["n_speakers"],
                                         **overall["metrics"], "ci": overall["ci"]}))  # fmt: skip
        for attribute in report["attributes"]:
            name = safe_cell(attribute["name"])
            for group in attribute["groups"]:
                writer.writerow(_with_intervals({
                    "row": "group", "attribute": name, "group": safe_cell(group["name"]), "n": group["n"],
                    "speakers": group["n_speakers"], "support": group.get("support"),
                    **{m: group["metrics"].get(m) for m in metric_names}, "ci": group["ci"],
                    "log_ratio": group["log_ratio"], "in_rb": group["in_rb"], "note": group.get("left_out"),
                }))  # fmt: skip
            rb, gap = attribute["rb"], attribute.get("gap") or {}
            writer.writerow(_with_intervals({
                "row": "rb", "attribute": name, "group": safe_cell(attribute["worst_group"]), "rb": rb["value"],
                "rb_ci": rb["ci"], "rb_p_value": rb["p_value"], "rb_mean": rb.get("mean"),
                "rb_mean_ci": rb.get("mean_ci"), "gap": gap.get("value"), "gap_ci": gap.get("ci"),
                "note": rb["undefined_reason"],
            }))  # fmt: skip
        for row in [*_detection_rows(report), *_mcu_rows(report), *_comparison_rows(report), *_note_rows(report)]:
            writer.writerow({key: value for key, value in row.items() if key in header})
        return out.getvalue()


def _note_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The runtime that ran the model (kernels, delegate, threads), then each warning."""
    model = report.get("model")
    rows = [{"row": "runtime", "group": safe_cell(model["runtime"]), "note": safe_cell(runtime_text(model))}] if model else []
    return rows + [{"row": "warning", "note": safe_cell(warning)} for warning in report["warnings"]]


def _detection_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """A detector's threshold (value in ``rb``, how it was set in ``note``), and each group's EER with its
    interval (in ``rb`` and ``ci_low``/``ci_high``)."""
    detection = report.get("detection")
    if not detection:
        return []
    threshold = detection["threshold"]
    low, high = threshold.get("ci") or [None, None]
    rows = [{"row": "threshold", "group": safe_cell(detection["positive_label"]), "rb": threshold["value"],
             "rb_ci_low": low, "rb_ci_high": high, "note": safe_cell(threshold["chosen_by"])}]  # fmt: skip
    for attribute in detection["attributes"]:
        for group in attribute["groups"]:
            low, high = group.get("eer_ci") or [None, None]
            rows.append({"row": "eer", "attribute": safe_cell(attribute["name"]), "group": safe_cell(group["name"]),
                         "n": group.get("positives"), "ci_low": low, "ci_high": high, "rb": group["eer"],
                         "note": "equal error rate (in rb), its interval (ci_low, ci_high)"})  # fmt: skip
    return rows


_COMPARISON_COLUMNS = ["run", "flip_rate", "flips", "forgotten", "forgotten_share", "reference_correct",
                       "rb_difference", "rb_difference_ci_low", "rb_difference_ci_high"]  # fmt: skip


def _mcu_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    mcu = mcu_of(report)
    if not mcu:
        return []
    items = {"board": mcu["budget"]["label"], "fits": mcu["ok"], "arena_bytes": mcu["arena_bytes"],
             "ram_limit_bytes": mcu["ram_limit_bytes"], "ram_bytes": mcu["budget"]["ram_bytes"],
             "flash_bytes": mcu["flash_bytes"], "flash_limit_bytes": mcu["flash_limit_bytes"],
             "flash_budget_bytes": mcu["budget"]["flash_bytes"], "reason": mcu["reason"]}  # fmt: skip
    return [{"row": "mcu", "attribute": item, "note": safe_cell(str(value))} for item, value in items.items()]


def _comparison_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Per run its runtime and device; per group and run the metric, flips and forgotten clips; per attribute
    and run the change in RB against run #1."""
    comparison = report.get("comparison")
    if not comparison:
        return []
    metric = comparison["metric"]
    rows = [
        {"row": "run", "run": i + 1, "group": safe_cell(run["label"]), "note": safe_cell("; ".join(run_summary(run)))}
        for i, run in enumerate(comparison["runs"])
    ]
    scopes = [("", comparison["overall"])] + [
        (attribute["name"], group) for attribute in comparison["attributes"] for group in attribute["groups"]
    ]
    for attribute, group in scopes:
        for i, run in enumerate(group["runs"]):
            rows.append({
                "row": "comparison", "attribute": safe_cell(attribute), "group": safe_cell(group.get("name", "")),
                "n": group["n"], metric: run["metric"], "run": i + 1, "flip_rate": run.get("flip_rate"),
                "flips": run.get("flips"), "forgotten": run.get("forgotten"),
                "forgotten_share": run.get("forgotten_share"), "reference_correct": group["reference_correct"],
            })  # fmt: skip
    for attribute in comparison["attributes"]:
        for i, entry in enumerate(attribute["rb"]):
            ci = entry.get("ci") or [None, None]
            rows.append({
                "row": "comparison_rb", "attribute": safe_cell(attribute["name"]), "run": i + 1, "rb": entry["value"],
                "rb_difference": entry.get("difference"), "rb_difference_ci_low": ci[0], "rb_difference_ci_high": ci[1],
            })  # fmt: skip
    return rows
