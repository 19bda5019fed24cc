"""GitHub-flavoured Markdown: per attribute a table of groups and the RB verdict."""

from __future__ import annotations

import re
from typing import Any

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

__all__ = ["MarkdownFormat", "escape_markdown"]

_SPECIAL = re.compile(r"([\\`*_{}\[\]#|<>~])")


def escape_markdown(text: object) -> str:
    """Backslash-escape Markdown punctuation and HTML brackets; newlines become spaces (table-safe)."""
    value = _SPECIAL.sub(r"\\\1", str(text))
    return value.replace("\r", " ").replace("\n", " ")


class MarkdownFormat(ReportFormat):
    def format(self, report: dict[str, Any]) -> str:
        metric = report["metric"]["name"]
        names = list(report["overall"]["metrics"])
        lines = [f"# ondevice-audit {report['command']}: reliability bias on {metric}", ""]
        model = report.get("model")
        if model:
            lines += [
                f"Model `{escape_markdown(model['path'])}` ({model['format']}, {model['size_bytes']:,} bytes) on "
                f"{escape_markdown(runtime_text(model))}, {model['seconds_per_sample'] * 1000:.2f} ms per sample.",
                "",
            ]
        overall = report["overall"]
        lines += [
            f"Overall {metric}: **{fmt_number(overall['metrics'].get(metric))}** {fmt_interval(overall['ci'])} "
            f"over {overall['n']} clips.",
            "",
        ]
        if report.get("detection"):
            lines += [detection_sentence(report, escape_markdown), ""]
        for attribute in report["attributes"]:
            lines += [
                f"## {escape_markdown(attribute['name'])}",
                "",
                rb_sentence(report, attribute, escape_markdown),
                "",
            ]
            header = ["group", "n", "speakers", *names, f"{metric} CI", "ln(P_g/P_all)", "in RB"]
            lines.append("| " + " | ".join(escape_markdown(h) for h in header) + " |")
            lines.append("|" + "---|" * len(header))
            for group in attribute["groups"]:
                cells = [
                    escape_markdown(group["name"]),
                    str(group["n"]),
                    "—" if group["n_speakers"] is None else str(group["n_speakers"]),
                    *(fmt_number(group["metrics"].get(m)) for m in names),
                    fmt_interval(group["ci"]),
                    fmt_number(group["log_ratio"]),
                    "yes"
                    if group["in_rb"]
                    else f"no: {escape_markdown(group['left_out'])}"
                    if group.get("left_out")
                    else "no",
                ]
                lines.append("| " + " | ".join(cells) + " |")
            lines += ["", f"Resampling: {escape_markdown(attribute['resampling'])}.", ""]
        across = attributes_sentence(report, escape_markdown)
        if across:
            lines += [across, ""]
        lines += _mcu(report)
        lines += _comparison(report)
        if report["samples"]["failed"]:
            lines += [f"{report['samples']['failed']} of {report['samples']['total']} samples failed.", ""]
        if report["warnings"]:
            lines += ["**Warnings**", ""] + [f"- {escape_markdown(w)}" for w in report["warnings"]] + [""]
        return "\n".join(lines)


def _mcu(report: dict[str, Any]) -> list[str]:
    mcu = mcu_of(report)
    if not mcu:
        return []
    rows = mcu_rows(report)
    verdict = "fits" if mcu["ok"] else "**does NOT fit**"
    lines = [f"## MCU budget: {verdict}", "", _row(["item", "value"]), "|---|---|"]
    return lines + [_row([item, escape_markdown(value)]) for item, value in rows] + [""]


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _comparison(report: dict[str, Any]) -> list[str]:
    """The runs, then per attribute the metric on every run and flips and forgotten clips against run #1."""
    comparison = report.get("comparison")
    if not comparison:
        return []
    lines = [
        "## Comparison of runs",
        "",
        f"Run #1 is the reference: {escape_markdown(comparison['reference'])}. Flips: clips predicted differently "
        "from #1; forgotten: clips #1 gets right and the run gets wrong.",
        "",
    ]
    lines += [_row(list(RUN_COLUMNS)), "|" + "---|" * len(RUN_COLUMNS)]
    for i, run in enumerate(comparison["runs"]):
        lines.append(_row([str(i + 1), escape_markdown(run["label"]), *(escape_markdown(c) for c in run_summary(run))]))
    lines.append("")
    sentences = frontend_sentences(comparison)
    lines += [f"- {escape_markdown(sentence)}" for sentence in sentences] + ([""] if sentences else [])
    header = ["group", "n", *comparison_header(report)]
    for attribute in comparison["attributes"]:
        lines += [f"### {escape_markdown(attribute['name'])} across runs", ""]
        lines += [
            "- " + rb_difference_sentence(report, attribute, run, escape_markdown)
            for run in range(1, len(comparison["runs"]))
        ]
        lines += ["", _row([escape_markdown(h) for h in header]), "|" + "---|" * len(header)]
        overall = comparison["overall"]
        lines.append(_row(["**all**", str(overall["n"]), *(escape_markdown(c) for c in comparison_cells(overall))]))
        for group in attribute["groups"]:
            cells = [
                escape_markdown(group["name"]),
                str(group["n"]),
                *(escape_markdown(c) for c in comparison_cells(group)),
            ]
            lines.append(_row(cells))
        lines += ["", f"Resampling: {escape_markdown(attribute['resampling'])}.", ""]
    return lines
