"""One row per overall / group / RB entry, for spreadsheets and pandas; then the runtime that ran the model
(``runtime``, and with several runs one ``run`` row each) and the report's warnings (``warning``), each in the
``note`` column.

Names are written through the csv module (quotes, commas, newlines) and cells that a spreadsheet would run
as a formula (leading ``=``, ``+``, ``-``, ``@``) get a leading apostrophe.
"""

from __future__ import annotations

import csv
import io
from typing import Any

from ondevice_audit.report.interface import ReportFormat
from ondevice_audit.report.sentences import runtime_text

__all__ = ["CsvFormat"]

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _safe(text: str | None) -> str | None:
    return "'" + text if text and text.startswith(_FORMULA_START) else text


class CsvFormat(ReportFormat):
    def format(self, report: dict[str, Any]) -> str:
        metric_names = list(report["overall"]["metrics"])
        header = ["row", "attribute", "group", "n", "speakers", *metric_names, "ci_low", "ci_high", "log_ratio",
                  "in_rb", "rb", "rb_ci_low", "rb_ci_high", "rb_p_value", "note"]  # fmt: skip
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(header)
        overall = report["overall"]
        ci = overall["ci"] or [None, None]
        writer.writerow(
            ["overall", "", "", overall["n"], overall["n_speakers"], *overall["metrics"].values(), *ci] + [None] * 7
        )
        for attribute in report["attributes"]:
            name = _safe(attribute["name"])
            for group in attribute["groups"]:
                ci = group["ci"] or [None, None]
                metrics = [group["metrics"].get(m) for m in metric_names]
                writer.writerow(
                    [
                        "group",
                        name,
                        _safe(group["name"]),
                        group["n"],
                        group["n_speakers"],
                        *metrics,
                        *ci,
                        group["log_ratio"],
                        group["in_rb"],
                        None,
                        None,
                        None,
                        None,
                        None,
                    ]  # fmt: skip
                )
            rb = attribute["rb"]
            rb_ci = rb["ci"] or [None, None]
            writer.writerow(
                ["rb", name, _safe(attribute["worst_group"]), None, None, *[None] * len(metric_names)]
                + [None, None, None, None, rb["value"], *rb_ci, rb["p_value"], rb["undefined_reason"]]
            )
        _detection_rows(writer, report, len(metric_names))
        _note_rows(writer, report, len(metric_names))
        return out.getvalue()


def _note_rows(writer: Any, report: dict[str, Any], n_metrics: int) -> None:
    """The runtime (kernels, delegate, threads) of the model and of every compared run, then each warning."""
    notes: list[tuple[str, str | None, str]] = []
    if report.get("model"):
        notes.append(("runtime", report["model"]["runtime"], runtime_text(report["model"])))
    notes += [("run", run["label"], runtime_text(run)) for run in (report.get("comparison") or {}).get("runs", [])]
    notes += [("warning", None, warning) for warning in report["warnings"]]
    for kind, group, note in notes:
        writer.writerow([kind, "", _safe(group), *[None] * (n_metrics + 10), _safe(note)])


def _detection_rows(writer: Any, report: dict[str, Any], n_metrics: int) -> None:
    """A detector's threshold (value in ``rb``, how it was set in ``note``), and each group's EER with its
    interval (in ``ci_low``/``ci_high``)."""
    detection = report.get("detection")
    if not detection:
        return
    threshold = detection["threshold"]
    low, high = threshold.get("ci") or [None, None]
    writer.writerow(["threshold", "", _safe(detection["positive_label"]), None, None, *[None] * n_metrics, None, None,
                     None, None, threshold["value"], low, high, None, _safe(threshold["chosen_by"])])  # fmt: skip
    for attribute in detection["attributes"]:
        for group in attribute["groups"]:
            low, high = group.get("eer_ci") or [None, None]
            writer.writerow(["eer", _safe(attribute["name"]), _safe(group["name"]), group.get("positives"),
                             None, *[None] * n_metrics, low, high, None, None, group["eer"], None, None, None,
                             "equal error rate (in rb), its interval (ci_low, ci_high)"])  # fmt: skip
