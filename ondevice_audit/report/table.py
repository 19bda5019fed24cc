"""rich tables for the terminal: overall, then per attribute its groups and RB.

Read without a terminal too: a CI log is 80 columns and kept as text, and there rich would squeeze a wide table
by cutting cells to "0.0…" and "en-gb-x-gbc…". ``ReadableConsole`` prints such a table as one record per row
instead ("column: value" fields, wrapped only between fields), so no number or group name is ever cut.
"""

from __future__ import annotations

import io
import shutil
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.markup import escape
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from ondevice_audit.report.interface import ReportFormat, fmt_interval, fmt_number, mcu_of, mcu_rows
from ondevice_audit.report.sentences import (
    RUN_COLUMNS,
    attributes_sentence,
    comparison_cells,
    comparison_header,
    detection_sentence,
    frontend_sentences,
    rb_difference_sentence,
    rb_sentence,
    run_summary,
    runtime_text,
)

__all__ = ["ReadableConsole", "TableFormat", "table_records", "verdict_lines"]

_SHOWN_METRICS = ("mcc", "accuracy", "balanced_accuracy", "macro_f1", "tpr", "frr", "far", "fa_per_hour", "eer")
_SHORT = {"balanced_accuracy": "bal. acc", "macro_f1": "macro F1", "accuracy": "acc", "fa_per_hour": "FA/h"}


_FIELD_SEPARATOR = " · "
_UNBOUNDED = 100_000


class ReadableConsole(Console):
    """A rich console on which a table wider than the console becomes one record per row, never truncated.

    ``COLUMNS`` and ``NO_COLOR`` are honoured as rich does; off a terminal the width is ``COLUMNS`` or 80."""

    def print(self, *objects: Any, **kwargs: Any) -> None:
        super().print(*(self.readable(o) for o in objects), **kwargs)

    def readable(self, renderable: Any) -> Any:
        """``renderable`` with every table that does not fit the console replaced by its records."""
        if isinstance(renderable, Table):
            # measured on an unbounded line: rich caps a measurement at the width it is given
            natural = Measurement.get(self, self.options.update_width(_UNBOUNDED), renderable).maximum
            return renderable if natural <= self.width else table_records(self, renderable)
        if isinstance(renderable, Group):
            return Group(*(self.readable(part) for part in renderable.renderables))
        return renderable


def table_records(console: Console, table: Table) -> Group:
    """The title, then per row its non-empty cells as "header: value" fields wrapped between fields."""
    parts: list[RenderableType] = []
    if table.title:
        parts.append(_text(console, table.title, bold=True))
    headers = [_text(console, column.header).plain for column in table.columns]
    cells = [list(column.cells) for column in table.columns]
    for i, row in enumerate(table.rows):
        fields = []
        for header, column in zip(headers, cells, strict=True):
            value = _text(console, column[i])
            if value.plain.strip():
                fields.append(Text(f"{header}: " if header.strip() else "") + value)
        record = _wrap_fields(fields, console.width)
        if row.style:
            record.stylize(row.style)
        parts.append(record)
    if table.caption:
        parts.append(_text(console, table.caption))
    return Group(*parts)


def _text(console: Console, cell: Any, bold: bool = False) -> Text:
    """A cell, header or title as one line of styled text (markup rendered, line breaks made spaces)."""
    text = (
        cell.copy()
        if isinstance(cell, Text)
        else console.render_str(str(cell))
        if isinstance(cell, str)
        else Text(str(cell))
    )
    text.plain = text.plain.replace("\n", " ")  # same length: the styles stay on their characters
    if bold:
        text.stylize("bold")
    return text


def _wrap_fields(fields: list[Text], width: int) -> Text:
    """Fields joined by " · " on lines of at most ``width`` cells, breaking only between fields."""
    lines: list[Text] = []
    line = Text("  ")
    for field in fields:
        if line.plain.strip() and line.cell_len + len(_FIELD_SEPARATOR) + field.cell_len > width:
            lines.append(line)
            line = Text("    ")
        elif line.plain.strip():
            line.append(_FIELD_SEPARATOR)
        line.append_text(field)
    lines.append(line)
    return Text("\n").join(lines)


class TableFormat(ReportFormat):
    def __init__(self, color: bool = False, width: int | None = None):
        """``width`` None: ``COLUMNS``, else the terminal's width, else 80."""
        self.color = color
        self.width = width or shutil.get_terminal_size((80, 24)).columns

    def format(self, report: dict[str, Any]) -> str:
        console = ReadableConsole(file=io.StringIO(), width=self.width, record=True, force_terminal=self.color,
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
        across = attributes_sentence(report)
        if across:
            parts.append(Text(across))
        parts += _mcu(report)
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
        for column in RUN_COLUMNS:
            runs.add_column(column, justify="left" if column in ("run", "runtime", "device", "batches") else "right")
        for i, run in enumerate(comparison["runs"]):
            runs.add_row(str(i + 1), escape(run["label"]), *(escape(cell) for cell in run_summary(run)))
        parts: list[Any] = [runs, *(Text(sentence) for sentence in frontend_sentences(comparison))]
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


def _mcu(report: dict[str, Any]) -> list[Any]:
    mcu = mcu_of(report)
    if not mcu:
        return []
    rows = mcu_rows(report)
    fits = mcu["ok"]
    table = Table(title="MCU budget — " + ("fits" if fits else "[bold red]does NOT fit[/bold red]"),
                  title_justify="left", show_header=False)  # fmt: skip
    table.add_column("item")
    table.add_column("value")
    for item, value in rows:
        table.add_row(item, escape(value), style=None if fits or item != "fits" else "bold red")
    return [table]


def verdict_lines(report: dict[str, Any]) -> list[str]:
    """What ``--quiet`` keeps of the report: the RB verdict per attribute, the MCU fit, the counts of failed
    samples and of warnings (the full report, with ``--output`` or without ``--quiet``, has them)."""
    lines = [rb_sentence(report, attribute) for attribute in report["attributes"]]
    mcu = mcu_of(report)
    if mcu:
        lines.append(f"MCU budget: {'fits' if mcu['ok'] else 'does NOT fit'} — {mcu['reason']}")
    samples = report["samples"]
    if samples["failed"]:
        lines.append(f"{samples['failed']} of {samples['total']} samples failed")
    if report["warnings"]:
        lines.append(f"{len(report['warnings'])} warning(s): see the full report")
    return lines


def _count(value: int | None) -> str:
    return "—" if value is None else str(value)
