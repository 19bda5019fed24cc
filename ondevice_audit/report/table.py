"""rich tables for the terminal: overall, then per attribute its groups and RB."""

from __future__ import annotations

import io
from typing import Any

from rich.console import Console, Group
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from ondevice_audit.report.interface import ReportFormat, fmt_interval, fmt_number
from ondevice_audit.report.sentences import (
    comparison_cells,
    comparison_header,
    detection_sentence,
    rb_difference_sentence,
    rb_sentence,
    run_summary,
    runtime_text,
)

__all__ = ["TableFormat"]

_SHOWN_METRICS = ("mcc", "accuracy", "balanced_accuracy", "macro_f1", "tpr", "frr", "far", "fa_per_hour", "eer")
_SHORT = {"balanced_accuracy": "bal. acc", "macro_f1": "macro F1", "accuracy": "acc", "fa_per_hour": "FA/h"}


class TableFormat(ReportFormat):
    def __init__(self, color: bool = False, width: int = 120):
        self.color = color
        self.width = width

    def format(self, report: dict[str, Any]) -> str:
        console = Console(file=io.StringIO(), width=self.width, record=True, force_terminal=self.color,
                          color_system="standard" if self.color else None)  # fmt: skip
        console.print(self.renderable(report))
        return console.export_text(styles=self.color)

    def renderable(self, report: dict[str, Any]) -> Group:
        metric = report["metric"]["name"]
        available = report["overall"]["metrics"]
        shown = [m for m in _SHOWN_METRICS if m in available and m != metric]
        parts: list[Any] = [self._header(report)]
        if report.get("detection"):
            parts.append(Text(detection_sentence(report)))
        for attribute in report["attributes"]:
            table = Table(title=f"{escape(attribute['name'])} — resampling {escape(attribute['resampling'])}",
                          title_justify="left", expand=False)  # fmt: skip
            for column in ("group", "n", "speakers", metric, "CI", *(_SHORT.get(m, m) for m in shown)):
                table.add_column(column, justify="left" if column == "group" else "right", no_wrap=column == "CI")
            table.add_column("ln(P_g/P_all)", justify="right")
            overall = report["overall"]
            table.add_row(
                "[bold]all[/bold]", str(overall["n"]), _count(overall["n_speakers"]),
                fmt_number(overall["metrics"].get(metric)), fmt_interval(overall["ci"]),
                *(fmt_number(overall["metrics"].get(m)) for m in shown), "",
            )  # fmt: skip
            worst = attribute["worst_group"]
            for group in attribute["groups"]:
                name = escape(group["name"]) + ("" if group["in_rb"] else " [dim](not in RB)[/dim]")
                ratio = group["log_ratio"]
                ratio_text = fmt_number(ratio, 3) if ratio is not None else "undefined"
                style = "bold red" if group["name"] == worst else None
                table.add_row(
                    name, str(group["n"]), _count(group["n_speakers"]), fmt_number(group["metrics"].get(metric)),
                    fmt_interval(group["ci"]), *(fmt_number(group["metrics"].get(m)) for m in shown),
                    f"{ratio_text}", style=style,
                )  # fmt: skip
            parts.append(table)
            parts.append(Text(rb_sentence(report, attribute), style="bold"))
        parts += self._comparison(report)
        samples = report["samples"]
        if samples["failed"]:
            parts.append(Text(f"{samples['failed']} of {samples['total']} samples failed", style="yellow"))
        for warning in report["warnings"]:
            parts.append(Text(f"warning: {warning}", style="yellow"))
        return Group(*parts)

    def _comparison(self, report: dict[str, Any]) -> list[Any]:
        """Runs, then per attribute the metric on every run, flips and forgotten clips against run #1."""
        comparison = report.get("comparison")
        if not comparison:
            return []
        runs = Table(title=f"Runs — #1 is the reference: {escape(comparison['reference'])}", title_justify="left")
        for column in ("#", "run", "runtime", "device", "median ms", "p90 ms", "peak MiB", "batches"):
            runs.add_column(column, justify="left" if column in ("run", "runtime", "device", "batches") else "right")
        for i, run in enumerate(comparison["runs"]):
            runs.add_row(str(i + 1), escape(run["label"]), *(escape(cell) for cell in run_summary(run)))
        parts: list[Any] = [runs]
        header = ["group", "n", *comparison_header(report)]
        for attribute in comparison["attributes"]:
            table = Table(title=f"{escape(attribute['name'])} — runs compared per group (flips and forgotten vs #1)",
                          title_justify="left")  # fmt: skip
            for column in header:
                table.add_column(escape(column), justify="left" if column == "group" else "right")
            overall = comparison["overall"]
            table.add_row("[bold]all[/bold]", str(overall["n"]), *comparison_cells(overall))
            for group in attribute["groups"]:
                table.add_row(escape(group["name"]), str(group["n"]), *comparison_cells(group))
            parts.append(table)
            for run in range(1, len(comparison["runs"])):
                parts.append(Text(rb_difference_sentence(report, attribute, run), style="bold"))
        return parts

    def _header(self, report: dict[str, Any]) -> Text:
        lines = [f"ondevice-audit {report['command']} — metric {report['metric']['name']}"]
        model = report.get("model")
        if model:
            lines.append(
                f"model {model['path']} ({model['format']}, {model['size_bytes']:,} bytes, sha256 "
                f"{model['sha256'][:12]}…) on {runtime_text(model)}; "
                f"{model['seconds_per_sample'] * 1000:.2f} ms/sample; front-end: {model['frontend']}"
            )
        for item in report["inputs"]:
            if item["role"] != "model":
                lines.append(f"{item['role']} {item['path']} (sha256 {item['sha256'][:12]}…)")
        return Text("\n".join(lines))


def _count(value: int | None) -> str:
    return "—" if value is None else str(value)
