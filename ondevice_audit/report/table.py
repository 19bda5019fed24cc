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

__all__ = [
    "TableFormat",
    "comparison_cells",
    "comparison_header",
    "rb_difference_sentence",
    "rb_sentence",
    "run_summary",
]

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


def rb_difference_sentence(
    report: dict[str, Any], attribute: dict[str, Any], run: int, escape: Callable[[str], str] = str
) -> str:
    """How RB of run ``run`` (of ``report["comparison"]``) differs from the reference's, for one attribute."""
    entry, reference = attribute["rb"][run], attribute["rb"][0]
    text = (
        f"RB({escape(attribute['name'])}) on {report['comparison']['metric']}: {fmt_number(entry['value'])} on "
        f"#{run + 1} vs {fmt_number(reference['value'])} on #1"
    )
    if entry["difference"] is None:
        return text + "; the difference is undefined"
    text += f", difference {entry['difference']:+.3f}"
    if entry["ci"]:
        text += f" {fmt_interval(entry['ci'])} (paired {report['settings']['confidence']:.0%} CI"
        text += ", no detectable change)" if entry["ci"][0] <= 0 <= entry["ci"][1] else ")"
    return text


def run_summary(run: dict[str, Any]) -> list[str]:
    """Runtime, device, latency (p50, p90, p99), memory and batches of one comparison run, as plain cells."""
    latency = run["latency_ms"]
    device = run["device"]
    batches = run["batches"]
    stored = " (stored)" if latency and latency.get("stored") else ""
    return [
        f"{run['runtime']} {run['runtime_version']}",
        f"{device.get('machine', '?')}, Python {device.get('python', '?')}",
        *("—" if latency is None or key not in latency else f"{latency[key]:.3g}{stored}" for key in _PERCENTILES),
        "—" if run["peak_memory_bytes"] is None else f"{run['peak_memory_bytes'] / 2**20:.0f}",
        f"{batches['batches']} ({batches['from_cache']} stored, {batches['retries']} retried)",
    ]


_PERCENTILES = ("median", "p90", "p99")
RUN_COLUMNS = ("#", "run", "runtime", "device", "median ms", "p90 ms", "p99 ms", "peak MiB", "batches")
"""The columns of the runs table: ``#``, the label, then ``run_summary``'s cells."""


def frontend_sentences(comparison: dict[str, Any]) -> list[str]:
    """Per run whose target computed the features: how they compare with the host's, and what they cost."""
    sentences = []
    for i, run in enumerate(comparison["runs"]):
        parity = run.get("frontend_on_target")
        if not parity:
            continue
        groups = "; ".join(
            f"{group['name']} {_difference(group['max_abs_diff'])}, {fmt_rate(group['flip_rate'])}"
            for attribute in parity["attributes"]
            for group in attribute["groups"]
        )
        text = (
            f"#{i + 1} front-end on the target ({parity['features']}): largest feature difference from the host's "
            f"{_difference(parity['max_abs_diff'])}, decisions flipped against the host's features "
            f"{fmt_rate(parity['flip_rate'])} ({parity['flips']} of {parity['n']}); per group (difference, "
            f"flipped): {groups}"
        )
        for name, key in (("features", "features_ms"), ("end to end", "end_to_end_ms")):
            latency = parity[key]
            if latency:
                stored = " (stored)" if latency.get("stored") else ""
                text += f"; {name} {latency['median']:.3g} ms/sample median, p99 {latency['p99']:.3g}{stored}"
        sentences.append(text)
    return sentences


def fmt_rate(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def _difference(value: float | None) -> str:
    """Feature differences run from float32 rounding (1e-6) to whole dB: two significant digits at any scale."""
    return "—" if value is None else f"{value:.2g}"


def comparison_cells(group: dict[str, Any]) -> list[str]:
    """Per run the metric, then per compared run the flip rate and the forgotten share, with counts."""
    runs = group["runs"]
    cells = [fmt_number(r["metric"]) for r in runs]
    for r in runs[1:]:
        cells.append(f"{r['flip_rate']:.1%} ({r['flips']})")
        cells.append(f"{r['forgotten_share']:.1%} ({r['forgotten']} of {group['reference_correct']})")
    return cells


def comparison_header(report: dict[str, Any]) -> list[str]:
    comparison = report["comparison"]
    n_runs = len(comparison["runs"])
    header = [f"{comparison['metric']} #{i + 1}" for i in range(n_runs)]
    for i in range(1, n_runs):
        header += [f"flips #{i + 1}", f"forgotten #{i + 1}"]
    return header


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
                f"{model['sha256'][:12]}…) on {model['runtime']} {model['runtime_version']}; "
                f"{model['seconds_per_sample'] * 1000:.2f} ms/sample; front-end: {model['frontend']}"
            )
        for item in report["inputs"]:
            if item["role"] != "model":
                lines.append(f"{item['role']} {item['path']} (sha256 {item['sha256'][:12]}…)")
        return Text("\n".join(lines))


def _count(value: int | None) -> str:
    return "—" if value is None else str(value)
