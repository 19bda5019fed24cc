"""One row per overall / group / RB entry, for spreadsheets and pandas.

Names are written through the csv module (quotes, commas, newlines) and cells that a spreadsheet would run
as a formula (leading ``=``, ``+``, ``-``, ``@``) get a leading apostrophe.
"""

from __future__ import annotations

import csv
import io
from typing import Any

from ondevice_audit.report.interface import ReportFormat

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
                  "rb_mean_ci_high", "gap", "gap_ci_low", "gap_ci_high", "note"]  # fmt: skip
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
        return out.getvalue()
