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


def _run_rows(document: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    metric = document["metric"]["name"]
    groups = _groups(document)
    header = ["model", "role", "KiB", "ms", metric, *groups, "RB", "RB − base [CI]", "in base CI"]
    rows = []
    for run in document["runs"]:
        within = {True: "yes", False: "no", None: "—"}[run["within_base_interval"]]
        change = (
            "" if run["rb_difference"] is None else f"{run['rb_difference']:+.3f} {_interval(run['rb_difference_ci'])}"
        )
        rows.append(
            [run["name"], run["role"], f"{run['size_bytes'] / 1024:.1f}", _number(run["latency_ms"]),
             _number(run["metric"]), *(_number(run["groups"].get(g)) for g in groups), _number(run["rb"]),
             change, within]
        )  # fmt: skip
    return header, rows


def _layer_rows(document: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    groups = _groups(document)
    pruning = document["kind"] == "pruning"
    measure = "sparsity (base)" if pruning else "RMSE/scale by group"
    worse = document["worse_off_group"] or "worse-off"
    header = ["rank", "layer", "op", *(f"{g} SNR dB" for g in groups), measure, "gap dB [CI]",
              f"worse for {worse}?"]  # fmt: skip
    rows = []
    for layer in document["layers"]:
        snr = {g["name"]: g["snr_db"] for g in layer["groups"]}
        if pruning:
            measure_text = f"{_number(layer['sparsity'], '.0%')} (base {_number(layer['base_sparsity'], '.0%')})"
        else:
            measure_text = " / ".join(_number(g["rmse_per_scale"], ".2f") for g in layer["groups"])
        gap = "" if layer["gap_db"] is None else f"{layer['gap_db']:+.1f} {_interval(layer['gap_ci'], '.1f')}"
        noise = _verdict(layer["gap_ci"])
        rows.append(
            [_number(layer["rank"], "d"), layer["name"], layer["op"], *(_number(snr.get(g), ".1f") for g in groups),
             measure_text, gap, noise]
        )  # fmt: skip
    return header, rows


def _verdict(ci: list[float] | None) -> str:
    """Whether a layer's gap is above 0 (it hurts the worse-off group more), below, or noise."""
    if ci is None:
        return "—"
    return "yes" if ci[0] > 0 else "no" if ci[1] < 0 else "noise"


def _findings(document: dict[str, Any]) -> list[tuple[str, str]]:
    findings = document["findings"]
    return [("Change", findings["variant"]), ("Layers", findings["layers"]), ("Fix", findings["fix"])]


def _table(document: dict[str, Any], color: bool) -> str:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    buffer = io.StringIO()
    console = Console(file=buffer, width=120, force_terminal=color, no_color=not color, highlight=False)
    console.print(f"[bold]{escape(_title(document))}[/bold]")
    for name, text in _findings(document):
        console.print(f"[bold]{name}:[/bold] {escape(text)}")
    for title, (header, rows) in (("Models on the same clips", _run_rows(document)),
                                  ("Layers (error of each op against its float self, per group)",
                                   _layer_rows(document))):  # fmt: skip
        table = Table(*header, title=title, title_justify="left")
        for row in rows:
            table.add_row(*(escape(cell) for cell in row))
        console.print(table)
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
    lines += ["## Layers", "", _METHOD, "", *_markdown_table(*_layer_rows(document)), ""]
    if document["warnings"]:
        lines += ["## Warnings", "", *(f"- {escape_markdown(w)}" for w in document["warnings"]), ""]
    return "\n".join(lines)


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
    parts += ["<h2>Layers</h2>", f"<p>{_e(_METHOD)}</p>"]
    if any(layer["groups"] for layer in document["layers"]):
        png = base64.b64encode(layer_chart_png(document)).decode("ascii")
        alt = "error relative to each group's own signal, per layer, one bar per group"
        parts.append(f'<img alt="{_e(alt)}" src="data:image/png;base64,{png}">')
    parts.append(_html_table(*_layer_rows(document)))
    if document["warnings"]:
        parts.append("<h2>Warnings</h2><ul>" + "".join(f"<li>{_e(w)}</li>" for w in document["warnings"]) + "</ul>")
    return page(_title(document), parts)


def layer_chart_png(document: dict[str, Any]) -> bytes:
    """Per layer (in model order), one bar per group: the error relative to the group's own signal (-SNR, dB;
    higher is worse); ranked layers marked with their rank."""
    from matplotlib import style
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    layers = document["layers"]
    groups = _groups(document)
    width = 0.8 / max(len(groups), 1)
    with style.context("default"):
        figure = Figure(figsize=(min(5 + 0.45 * len(layers), 16), 4.2), dpi=100, layout="constrained")
        FigureCanvasAgg(figure)
        axes = figure.add_subplot()
        for g, group in enumerate(groups):
            values = [next((-e["snr_db"] for e in layer["groups"] if e["name"] == group and e["snr_db"] is not None),
                           float("nan")) for layer in layers]  # fmt: skip
            positions = [i + (g - (len(groups) - 1) / 2) * width for i in range(len(layers))]
            hatch = "//" if group == document["worse_off_group"] else None
            axes.bar(positions, values, width, label=group.replace("$", r"\$"), hatch=hatch, zorder=2)
        for i, layer in enumerate(layers):
            if layer["rank"] is not None:
                axes.annotate(f"#{layer['rank']}", (i, 1), xycoords=("data", "axes fraction"), ha="center",
                              va="top", fontsize=8, color="#c0392b")  # fmt: skip
        axes.set_xticks(range(len(layers)), [layer["name"].replace("$", r"\$") for layer in layers], rotation=35,
                        ha="right", fontsize=8)  # fmt: skip
        axes.set_ylabel("error relative to the group's signal (dB, -SNR)")
        axes.grid(axis="y", alpha=0.3, zorder=0)
        axes.legend(fontsize=8, title=document["attribute"].replace("$", r"\$"))
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()
