"""rich tables for the terminal: overall, then per attribute its groups and RB."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

from rich.console import Console, Group
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from ondevice_audit.report.interface import ReportFormat, fmt_interval, fmt_number

__all__ = ["TableFormat", "rb_sentence"]

_SHOWN_METRICS = ("mcc", "accuracy", "balanced_accuracy", "macro_f1", "frr", "far")
_SHORT = {"balanced_accuracy": "bal. acc", "macro_f1": "macro F1", "accuracy": "acc"}


def rb_sentence(report: dict[str, Any], attribute: dict[str, Any], escape: Callable[[str], str] = str) -> str:
    """The one-line verdict for an attribute; ``escape`` is applied to every value from the data."""
    rb = attribute["rb"]
    metric = report["metric"]["name"]
    name = escape(attribute["name"])
    if rb["value"] is None:
        text = f"RB({name}) on {metric}: undefined — {escape(rb['undefined_reason'])}"
    else:
        text = f"RB({name}) on {metric} = {rb['value']:.3f}"
        if rb["ci"]:
            text += f" {fmt_interval(rb['ci'])} ({report['settings']['confidence']:.0%} CI)"
        if rb["p_value"] is not None:
            text += f", permutation p = {rb['p_value']:.3g}"
    if attribute["worst_group"] is not None:
        text += f"; worst off: {escape(attribute['worst_group'])}"
    return text


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
        samples = report["samples"]
        if samples["failed"]:
            parts.append(Text(f"{samples['failed']} of {samples['total']} samples failed", style="yellow"))
        for warning in report["warnings"]:
            parts.append(Text(f"warning: {warning}", style="yellow"))
        return Group(*parts)

    def _header(self, report: dict[str, Any]) -> Text:
        lines = [f"ondevice-audit {report['command']} — metric {report['metric']['name']}"]
        model = report.get("model")
        if model:
            lines.append(
                f"model {model['path']} ({model['format']}, {model['size_bytes']:,} bytes, sha256 "
                f"{model['sha256'][:12]}…) on {model['runtime']} {model['runtime_version']}; "
                f"{model['seconds_per_sample'] * 1000:.2f} ms/sample; front-end: {model['frontend']}"
            )
        for item in report["inputs"]:
            if item["role"] != "model":
                lines.append(f"{item['role']} {item['path']} (sha256 {item['sha256'][:12]}…)")
        return Text("\n".join(lines))


def _count(value: int | None) -> str:
    return "—" if value is None else str(value)
