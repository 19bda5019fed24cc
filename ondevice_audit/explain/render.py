"""The explain document as a terminal table, JSON, Markdown or a self-contained HTML page with a chart.

The tables are built once as plain text cells (``_run_rows``, ``_layer_rows``) and each format escapes them for
itself: rich markup, Markdown punctuation, HTML. Layer and group names come from the model and the user's CSV.
"""

from __future__ import annotations

import base64
import html
import io
import json
from enum import StrEnum
from typing import Any

from ondevice_audit.report.markdown import escape_markdown

__all__ = ["ExplainFormat", "layer_chart_png", "render"]


class ExplainFormat(StrEnum):
    table = "table"
    json = "json"
    markdown = "markdown"
    html = "html"


def render(document: dict[str, Any], fmt: ExplainFormat, color: bool = False) -> str:
    if fmt is ExplainFormat.json:
        return json.dumps(document, indent=2, sort_keys=False) + "\n"
    if fmt is ExplainFormat.markdown:
        return _markdown(document)
    if fmt is ExplainFormat.html:
        return _html(document)
    return _table(document, color)


def _number(value: float | None, spec: str = ".3f") -> str:
    return "—" if value is None else format(value, spec)


def _interval(values: list[float] | None, spec: str = ".3f") -> str:
    return "" if values is None else f"[{format(values[0], spec)}, {format(values[1], spec)}]"


def _title(document: dict[str, Any]) -> str:
    variant = next(i["path"] for i in document["inputs"] if i["role"] == "variant")
    return f"explain {variant}: {document['kind']} and reliability bias over {document['attribute']}"


def _groups(document: dict[str, Any]) -> list[str]:
    return [g["name"] for g in document["groups"]]


_SHORT_OPS = {"FULLY_CONNECTED": "FC", "DEPTHWISE_CONV_2D": "DW_CONV_2D", "AVERAGE_POOL_2D": "AVG_POOL_2D",
              "BatchNormalization": "BatchNorm", "DepthwiseConv2D": "DWConv2D"}  # fmt: skip


def _run_label(run: dict[str, Any], candidates: list[dict[str, Any]]) -> str:
    return f"fix {candidates.index(run) + 1}" if run["role"] == "candidate" else run["role"]


def _run_rows(document: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    metric = document["metric"]["name"]
    groups = _groups(document)
    candidates = [run for run in document["runs"] if run["role"] == "candidate"]
    header = ["model", "KiB", "ms", metric, *groups, "RB", "ΔRB [CI]", "ok"]
    rows = []
    for run in document["runs"]:
        within = {True: "yes", False: "no", None: "—"}[run["within_base_interval"]]
        change = (
            "" if run["rb_difference"] is None else f"{run['rb_difference']:+.3f} {_interval(run['rb_difference_ci'])}"
        )
        rows.append(
            [_run_label(run, candidates), f"{run['size_bytes'] / 1024:.1f}", _number(run["latency_ms"]),
             _number(run["metric"]), *(_number(run["groups"].get(g)) for g in groups), _number(run["rb"]), change,
             within]
        )  # fmt: skip
    return header, rows


def _legend(document: dict[str, Any]) -> list[str]:
    """What each row of the models table is: its file (and for a candidate, what it undoes)."""
    candidates = [run for run in document["runs"] if run["role"] == "candidate"]
    files = [
        f"{_run_label(run, candidates)}: {run['name'] + ' — ' if run['role'] == 'candidate' else ''}{run['path']}"
        for run in document["runs"]
    ]
    return [*files, _RUN_UNITS]


def _layer_rows(document: dict[str, Any], full: bool = True) -> tuple[list[str], list[list[str]]]:
    """The layers table; not ``full`` (the terminal's): no RMS error in quantization steps, no base sparsity."""
    groups = _groups(document)
    pruning = document["kind"] == "pruning"
    measure_header = ["sparsity"] if pruning else ["RMSE/step"] if full else []
    snr = [f"SNR {g}" for g in groups] if full else groups
    header = ["#", "layer", "op", *snr, *measure_header, "gap dB [CI]", "worse?"]
    rows = []
    for layer in document["layers"]:
        values = {g["name"]: g["snr_db"] for g in layer["groups"]}
        if pruning:
            base = f" (base {_number(layer['base_sparsity'], '.0%')})" if full else ""
            measure = [f"{_number(layer['sparsity'], '.0%')}{base}"]
        else:
            measure = ["/".join(_number(g["rmse_per_scale"], ".2f") for g in layer["groups"])] if full else []
        gap = "" if layer["gap_db"] is None else f"{layer['gap_db']:+.1f} {_interval(layer['gap_ci'], '.1f')}"
        rows.append(
            [_number(layer["rank"], "d"), layer["name"], _SHORT_OPS.get(layer["op"], layer["op"]),
             *(_number(values.get(g), ".1f") for g in groups), *measure, gap, _verdict(layer["gap_ci"])]
        )  # fmt: skip
    return header, rows


def _verdict(ci: list[float] | None) -> str:
    """Whether a layer's gap is above 0 (it hurts the worse-off group more), below, or noise."""
    if ci is None:
        return "—"
    return "yes" if ci[0] > 0 else "no" if ci[1] < 0 else "noise"


def _findings(document: dict[str, Any]) -> list[tuple[str, str]]:
    """The findings in words; a detector's operating point first (every number after it is read there)."""
    findings = document["findings"]
    point = [("Threshold", findings["operating_point"])] if findings["operating_point"] else []
    return [*point, ("Change", findings["variant"]), ("Layers", findings["layers"]), ("Fix", findings["fix"])]


def _table(document: dict[str, Any], color: bool) -> str:
    from rich import box
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=color, no_color=not color, highlight=False)
    console.print(f"[bold]{escape(_title(document))}[/bold]")
    for name, text in _findings(document):
        console.print(f"[bold]{name}:[/bold] {escape(text)}")
    tables = (("Models on the same clips", _run_rows(document), _legend(document), 0),
              ("Layers: each op against its float self, SNR dB per group", _layer_rows(document, full=False),
               [_UNITS], 1))  # fmt: skip
    for title, (header, rows), notes, names in tables:
        table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
        for i, name in enumerate(header):  # numbers stay on one line; the names column folds
            table.add_column(name, no_wrap=i != names, overflow="fold", min_width=7 if i == names else None)
        for row in rows:
            table.add_row(*(escape(cell) for cell in row))
        console.print(table)
        for note in notes:
            console.print(escape(note))
    for warning in document["warnings"]:
        console.print(f"[yellow]warning:[/yellow] {escape(warning)}")
    return buffer.getvalue()


def _markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(escape_markdown(h) for h in header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(escape_markdown(c) for c in row) + " |" for row in rows]


def _markdown(document: dict[str, Any]) -> str:
    lines = [f"# {escape_markdown(_title(document))}", ""]
    lines += [f"**{name}.** {escape_markdown(text)}" + "\n" for name, text in _findings(document)]
    lines += ["## Models on the same clips", "", *_markdown_table(*_run_rows(document)), ""]
    lines += [f"- {escape_markdown(line)}" for line in _legend(document)] + [""]
    lines += ["## Layers", "", _METHOD, "", *_markdown_table(*_layer_rows(document)), ""]
    if document["warnings"]:
        lines += ["## Warnings", "", *(f"- {escape_markdown(w)}" for w in document["warnings"]), ""]
    return "\n".join(lines)


_RUN_UNITS = (
    "ms: median single-sample latency on this machine; ΔRB: RB minus the base's, paired speaker-bootstrap "
    "interval; ok: RB no higher than the top of the base's interval."
)
_UNITS = (
    "SNR: the float output's power over the error's, in dB, on the group's clips; gap: how many dB more error, "
    "relative to its own signal, the worse-off group gets, with its speaker-bootstrap interval; worse?: the "
    "interval above 0 (yes), below (no) or across it (noise)."
)
_METHOD = (
    "Per layer and group: the layer's output against its float (dense) self on the group's clips, as an SNR in dB "
    "(and, for quantization, the RMS error in steps of the layer's output scale; ~0.29 is pure rounding). The gap is "
    "how many dB more error, relative to its own signal, the worse-off group gets than the others, with a "
    "speaker-bootstrap interval; a gap whose interval reaches 0 is noise and is not ranked."
)


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _html_table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _html(document: dict[str, Any]) -> str:
    from ondevice_audit.report.html import page

    parts = [f"<p><b>{_e(name)}.</b> {_e(text)}</p>" for name, text in _findings(document)]
    parts += ["<h2>Models on the same clips</h2>", _html_table(*_run_rows(document))]
    parts.append("<ul>" + "".join(f"<li>{_e(line)}</li>" for line in _legend(document)) + "</ul>")
    parts += ["<h2>Layers</h2>", f"<p>{_e(_METHOD)}</p>"]
    if any(layer["groups"] for layer in document["layers"]):
        png = base64.b64encode(layer_chart_png(document)).decode("ascii")
        alt = "SNR of each layer's output, one bar per group; lower means more error"
        parts.append(f'<img alt="{_e(alt)}" src="data:image/png;base64,{png}">')
    parts.append(_html_table(*_layer_rows(document)))
    if document["warnings"]:
        parts.append("<h2>Warnings</h2><ul>" + "".join(f"<li>{_e(w)}</li>" for w in document["warnings"]) + "</ul>")
    return page(_title(document), parts)


def layer_chart_png(document: dict[str, Any]) -> bytes:
    """Per layer (in model order), one bar per group: the SNR of the layer's output on the group's clips (lower is
    more error); the worse-off group hatched, ranked layers labelled with their rank. Bars are cut at
    ``_CHART_TOP_DB`` (an exact layer is 150 dB), their value written on them."""
    from matplotlib import style
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    layers = document["layers"]
    groups = _groups(document)
    width = 0.8 / max(len(groups), 1)
    with style.context("default"):
        figure = Figure(figsize=(min(5 + 0.5 * len(layers), 16), 4.4), dpi=100, layout="constrained")
        FigureCanvasAgg(figure)
        axes = figure.add_subplot()
        for g, group in enumerate(groups):
            values = [next((e["snr_db"] for e in layer["groups"] if e["name"] == group and e["snr_db"] is not None),
                           float("nan")) for layer in layers]  # fmt: skip
            positions = [i + (g - (len(groups) - 1) / 2) * width for i in range(len(layers))]
            hatch = "//" if group == document["worse_off_group"] else None
            shown = [min(value, _CHART_TOP_DB) for value in values]
            axes.bar(positions, shown, width, label=group.replace("$", r"\$"), hatch=hatch, zorder=2)
            for x, value in zip(positions, values, strict=True):
                if value > _CHART_TOP_DB:
                    axes.annotate(f"{value:.0f}", (x, _CHART_TOP_DB), ha="center", va="top", fontsize=7, rotation=90)
        names = [layer["name"] for layer in layers]
        labels = [
            layer["name"]
            + (f" {_SHORT_OPS.get(layer['op'], layer['op'])}" if names.count(layer["name"]) > 1 else "")
            + ("" if layer["rank"] is None else f" (#{layer['rank']})")
            for layer in layers
        ]
        axes.set_xticks(range(len(layers)), [label.replace("$", r"\$") for label in labels], rotation=35, ha="right",
                        fontsize=8)  # fmt: skip
        axes.set_ylabel("SNR of the layer's output (dB; lower: more error)")
        ranked = any(layer["rank"] is not None for layer in layers)
        title = f"#n: rank by how much more it hurts {document['worse_off_group']}" if ranked else "no layer ranked"
        axes.set_title(f"Per layer and group; {title}".replace("$", r"\$"), fontsize=9)
        axes.grid(axis="y", alpha=0.3, zorder=0)
        axes.legend(fontsize=8, title=document["attribute"].replace("$", r"\$"), loc="upper left",
                    bbox_to_anchor=(1.01, 1))  # fmt: skip
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


_CHART_TOP_DB = 80.0
