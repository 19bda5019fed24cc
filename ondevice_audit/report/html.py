"""A self-contained HTML page of a report, to attach to a CI run or mail around.

Self-contained means no external URL at all (CSS inline, charts as base64 PNG), so it opens offline and
leaks nothing when viewed. Every value from the data is passed through ``html.escape``: group and
attribute names come from user CSVs. The output is deterministic for the same report (no timestamps, PNG
without the Software tag, matplotlib's default style rather than the user's rc file), so tests and CI
diffs can compare bytes.

``sweep_html`` renders a sweep folder the same way: the cells ranked by RB, the metric-vs-RB scatter with the
Pareto front, the per-factor effects against the seed noise floor and the recommended cell.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import re
from typing import Any

from matplotlib import style
from matplotlib.artist import Artist
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from ondevice_audit.report.det import det_chart_png
from ondevice_audit.report.interface import ReportFormat, fmt_interval, fmt_number, mcu_of, mcu_rows
from ondevice_audit.report.sentences import (
    attributes_sentence,
    comparison_cells,
    comparison_header,
    detection_sentence,
    rb_difference_sentence,
    rb_sentence,
    run_summary,
)

__all__ = ["HtmlFormat", "bar_chart_png", "page", "report_charts", "sweep_html", "sweep_scatter_png"]

_MAX_FAILURES_SHOWN = 20
_IN_RB, _NOT_IN_RB, _OVERALL = "#3d6fa5", "#b9c6d3", "#c0392b"

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem auto;max-width:70rem;
padding:0 1rem;color:#1d2330;line-height:1.45}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.25rem;margin-top:2.2rem;border-bottom:1px solid #d5dbe3}
.lead{color:#56607a;margin-top:0}code,.mono{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.9em}
table{border-collapse:collapse;margin:.6rem 0;font-size:.92rem}
th,td{border:1px solid #d5dbe3;padding:.25rem .55rem;text-align:right;vertical-align:top}
th{background:#f1f4f8}td.text,th.text{text-align:left}tr.out td{color:#8a93a6}tr.worst td{background:#fdecea}
.rb{font-size:1.05rem;margin:.6rem 0}.undefined{color:#b03a2e}.chosen{font-weight:600}
img{max-width:100%;height:auto;display:block;margin:.6rem 0}ul.warnings li{color:#8a5a00}
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def page(title: str, parts: list[str]) -> str:
    """A self-contained page in this module's style around ``parts`` (already escaped HTML), for other documents
    (``explain``); ``title`` is escaped here."""
    head = '<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">'
    return "\n".join(
        ["<!DOCTYPE html>", head, f"<title>ondevice-audit {_e(title)}</title>", f"<style>{_CSS}</style></head><body>",
         f"<h1>{_e(title)}</h1>", *parts, "</body></html>"]
    ) + "\n"  # fmt: skip


class HtmlFormat(ReportFormat):
    def format(self, report: dict[str, Any]) -> str:
        metric = report["metric"]
        direction = "higher is better" if metric["higher_is_better"] else "lower is better"
        parts = [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>ondevice-audit {_e(report['command'])}: reliability bias on {_e(metric['name'])}</title>",
            f"<style>{_CSS}</style></head><body>",
            f"<h1>Reliability bias on {_e(metric['name'])}</h1>",
            f'<p class="lead">ondevice-audit {_e(report["tool"]["version"])} · command {_e(report["command"])} · '
            f"{_e(metric['name'])}: {_e(metric['description'])} ({direction}) · report schema "
            f"{_e(report['schema_version'])}</p>",
            _model(report["model"]),
            _inputs(report),
            _overall(report),
        ]
        if report.get("detection"):
            parts.append(f'<p class="rb">{_e(detection_sentence(report))}</p>')
        parts += [_attribute(report, attribute) for attribute in report["attributes"]]
        across = attributes_sentence(report)
        if across:
            parts.append(f"<p>{_e(across)}</p>")
        parts += [_mcu(report), _comparison(report)]
        parts.append(_warnings(report["warnings"]))
        parts.append("</body></html>")
        return "\n".join(parts) + "\n"


def bar_chart_png(report: dict[str, Any], attribute: dict[str, Any]) -> bytes:
    """The chosen metric per group with its interval, pale where a group is left out of RB, and the overall line."""
    metric = report["metric"]["name"]
    groups = attribute["groups"]
    values = [g["metrics"].get(metric) for g in groups]
    overall = report["overall"]["metrics"].get(metric)
    with style.context("default"):
        figure = Figure(figsize=(min(4 + 0.55 * len(groups), 14), 3.8), dpi=100, layout="constrained")
        FigureCanvasAgg(figure)
        axes = figure.add_subplot()
        positions = list(range(len(groups)))
        heights = [math.nan if v is None else v for v in values]
        axes.bar(positions, heights, color=[_IN_RB if g["in_rb"] else _NOT_IN_RB for g in groups], zorder=2)
        for x, group, value in zip(positions, groups, values, strict=True):
            if value is None:
                axes.annotate("undefined", (x, 0), ha="center", va="bottom", rotation=90, fontsize=8, color=_OVERALL)
            elif group["ci"] is not None:
                low, high = group["ci"]
                axes.errorbar(
                    x,
                    value,
                    yerr=[[max(value - low, 0)], [max(high - value, 0)]],
                    fmt="none",
                    ecolor="black",
                    capsize=4,
                    zorder=3,
                )
        handles: list[Artist] = [Patch(color=_IN_RB, label="in RB")]
        if not all(g["in_rb"] for g in groups):
            handles.append(Patch(color=_NOT_IN_RB, label="below min group size (not in RB)"))
        if overall is not None:
            handles.append(axes.axhline(overall, color=_OVERALL, linestyle="--", label=f"all clips {overall:.3f}"))
        labels = [_plain_text(g["name"]) for g in groups]
        rotate = len(groups) > 4 or any(len(label) > 12 for label in labels)
        axes.set_xticks(positions, labels, rotation=30 if rotate else 0, ha="right" if rotate else "center")
        axes.set_ylabel(_plain_text(metric))
        axes.set_title(_plain_text(f"{metric} by {attribute['name']}"))
        axes.grid(axis="y", alpha=0.3, zorder=0)
        axes.legend(handles=handles, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def _plain_text(text: str) -> str:
    """matplotlib reads ``$...$`` as maths; a group name is never maths."""
    return text.replace("$", r"\$")


def _metric_header(name: str, chosen: str) -> str:
    return f'<th class="chosen">{_e(name)}</th>' if name == chosen else f"<th>{_e(name)}</th>"


def _rows(rows: list[tuple[str, str]]) -> str:
    """Key/value table; values are already escaped HTML."""
    body = "".join(f'<tr><th class="text">{_e(key)}</th><td class="text">{value}</td></tr>' for key, value in rows)
    return f"<table>{body}</table>"


def _model(model: dict[str, Any] | None) -> str:
    if model is None:
        return "<h2>Model</h2><p>None: scored predictions made elsewhere.</p>"
    rows = [
        ("path", f"<code>{_e(model['path'])}</code>"),
        ("format", _e(model["format"])),
        ("size", f"{model['size_bytes']:,} bytes"),
        ("sha256", f'<span class="mono">{_e(model["sha256"])}</span>'),
        ("runtime", f"{_e(model['runtime'])} {_e(model['runtime_version'])}"),
        *_kernel_rows(model),
        ("input", f"{_e(model['input_shape'])} {_e(model.get('input_dtype', ''))}"),
        ("output", f"{_e(model['output_shape'])} {_e(model.get('output_dtype', ''))}"),
        ("labels", f"{len(model['labels'])}: {_e(', '.join(model['labels']))}"),
        ("front-end", _e(model["frontend"])),
        ("time per sample", f"{model['seconds_per_sample'] * 1000:.3f} ms"),
    ]
    if model.get("metadata"):
        rows.append(
            ("metadata", f'<pre class="mono">{_e(json.dumps(model["metadata"], indent=2, sort_keys=True))}</pre>')
        )
    return "<h2>Model</h2>" + _rows(rows)


def _kernel_rows(model: dict[str, Any]) -> list[tuple[str, str]]:
    """Kernels, delegate, threads (and ONNX Runtime's graph optimization) as model facts; none for reports
    written before they were recorded."""
    if not model.get("kernels"):
        return []
    threads = model.get("threads")
    rows = [
        ("kernels", _e(model["kernels"])),
        ("delegate", _e(model.get("delegate") or "none")),
        ("threads", "the runtime's default" if threads is None else _e(threads)),
    ]
    if model.get("graph_optimization"):
        rows.append(("graph optimization", _e(model["graph_optimization"])))
    return rows


def _inputs(report: dict[str, Any]) -> str:
    settings = report["settings"]
    samples = report["samples"]
    inputs = "".join(
        f'<tr><td class="text">{_e(i["role"])}</td><td class="text"><code>{_e(i["path"])}</code></td>'
        f'<td class="text mono">{_e(i["sha256"])}</td></tr>'
        for i in report["inputs"]
    )
    parts = ["<h2>Inputs</h2>"]
    if inputs:
        parts.append(
            f'<table><tr><th class="text">role</th><th class="text">path</th><th class="text">sha256</th></tr>{inputs}</table>'
        )
    parts.append(
        _rows(
            [
                ("groups", _e(", ".join(settings["groups"]))),
                ("min group size", _e(settings["min_group_size"])),
                ("bootstrap resamples", _e(settings["bootstrap"])),
                ("permutations", _e(settings["permutations"])),
                ("confidence", f"{settings['confidence']:.0%}"),
                ("seed", _e(settings["seed"])),
                ("samples", f"{samples['scored']} scored of {samples['total']}; {samples['failed']} failed"),
            ]
        )
    )
    failures = samples["failures"]
    if failures:
        rows = "".join(
            f'<tr><td class="text"><code>{_e(f.get("path", f.get("row", "")))}</code></td><td class="text">{_e(f["reason"])}</td></tr>'
            for f in failures[:_MAX_FAILURES_SHOWN]
        )
        more = len(failures) - _MAX_FAILURES_SHOWN
        parts.append(f"<h3>Failures ({len(failures)})</h3><table>{rows}</table>")
        if more > 0:
            parts.append(f"<p>… and {more} more.</p>")
    return "\n".join(parts)


def _overall(report: dict[str, Any]) -> str:
    metric = report["metric"]["name"]
    overall = report["overall"]
    names = list(overall["metrics"])
    header = "".join(_metric_header(m, metric) for m in names)
    cells = "".join(f"<td>{fmt_number(overall['metrics'][m])}</td>" for m in names)
    speakers = "" if overall["n_speakers"] is None else f" from {overall['n_speakers']} speakers"
    return (
        f"<h2>Overall</h2><p>{overall['n']} clips{speakers}: {_e(metric)} "
        f'<span class="chosen">{fmt_number(overall["metrics"].get(metric))}</span> {fmt_interval(overall["ci"])}</p>'
        f"<table><tr>{header}</tr><tr>{cells}</tr></table>"
    )


def _rb_line(report: dict[str, Any], attribute: dict[str, Any]) -> str:
    rb = attribute["rb"]
    style = ' class="rb undefined"' if rb["value"] is None else ' class="rb"'
    permutations = f" ({rb.get('permutations_used', 0)} permutations)" if rb["p_value"] is not None else ""
    return f"<p{style}>{_e(rb_sentence(report, attribute))}{permutations}</p>"


def report_charts(report: dict[str, Any]) -> dict[str, bytes]:
    """The page's charts as PNG files by name (``gender.png``; a detector's ``gender-det.png``), for documents
    that embed a chart rather than the page."""
    charts: dict[str, bytes] = {}
    for attribute in report["attributes"]:
        if not attribute["groups"]:
            continue
        base = re.sub(r"[^A-Za-z0-9_.-]+", "-", attribute["name"]).strip("-.") or "attribute"
        stem, n = base, 1
        while _taken(charts, stem):
            n += 1
            stem = f"{base}-{n}"
        charts[f"{stem}.png"] = bar_chart_png(report, attribute)
        if report.get("detection"):
            charts[f"{stem}-det.png"] = det_chart_png(report, attribute["name"])
    return charts


def _taken(charts: dict[str, bytes], stem: str) -> bool:
    """Another attribute's chart has this name (``age group`` and ``age-group`` both make ``age-group``): the
    second gets ``-2``, rather than one chart silently written over the other."""
    return f"{stem}.png" in charts or f"{stem}-det.png" in charts


def _attribute(report: dict[str, Any], attribute: dict[str, Any]) -> str:
    metric = report["metric"]["name"]
    names = list(dict.fromkeys(m for g in attribute["groups"] for m in g["metrics"]))
    header = "".join(_metric_header(m, metric) for m in names)
    rows = []
    for group in attribute["groups"]:
        classes = " ".join(
            c for c, on in (("out", not group["in_rb"]), ("worst", group["name"] == attribute["worst_group"])) if on
        )
        row = f'<tr class="{classes}">' if classes else "<tr>"
        speakers = "—" if group["n_speakers"] is None else str(group["n_speakers"])
        metrics = "".join(f"<td>{fmt_number(group['metrics'].get(m))}</td>" for m in names)
        rows.append(
            f'{row}<td class="text">{_e(group["name"])}</td><td>{group["n"]}</td><td>{speakers}</td>'
            f"{metrics}<td>{fmt_interval(group['ci'])}</td><td>{fmt_number(group['log_ratio'])}</td>"
            f"<td>{'yes' if group['in_rb'] else _e('no: ' + group['left_out'] if group.get('left_out') else 'no')}</td></tr>"
        )
    parts = [
        f"<h2>{_e(attribute['name'])}</h2>",
        f"<p>Columns {_e(', '.join(attribute['columns']))}; resampling: {_e(attribute['resampling'])}.</p>",
        _rb_line(report, attribute),
    ]
    if attribute["groups"]:
        png = base64.b64encode(bar_chart_png(report, attribute)).decode("ascii")
        alt = f"{metric} per group of {attribute['name']} with {report['settings']['confidence']:.0%} intervals"
        parts.append(f'<img alt="{_e(alt)}" src="data:image/png;base64,{png}">')
    if report.get("detection") and attribute["groups"]:
        det = base64.b64encode(det_chart_png(report, attribute["name"])).decode("ascii")
        alt = f"DET curves per group of {attribute['name']}, the operating point marked"
        parts.append(f'<img alt="{_e(alt)}" src="data:image/png;base64,{det}">')
    parts.append(
        f'<table><tr><th class="text">group</th><th>n</th><th>speakers</th>{header}<th>{_e(metric)} CI</th>'
        f"<th>ln(P_g/P_all)</th><th>in RB</th></tr>{''.join(rows)}</table>"
    )
    return "\n".join(parts)


def _mcu(report: dict[str, Any]) -> str:
    mcu = mcu_of(report)
    if not mcu:
        return ""
    rows = mcu_rows(report)
    verdict = "fits" if mcu["ok"] else "does NOT fit"
    return f"<h2>MCU budget: {verdict}</h2>" + _rows([(item, _e(value)) for item, value in rows])


def _html_table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_e(cell)}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _comparison(report: dict[str, Any]) -> str:
    """The runs, then per attribute the metric on every run, flips and forgotten clips against run #1."""
    comparison = report.get("comparison")
    if not comparison:
        return ""
    parts = [
        "<h2>Comparison of runs</h2>",
        f"<p>Run #1 is the reference: {_e(comparison['reference'])}. Flips: clips predicted differently from #1; "
        "forgotten: clips #1 gets right and the run gets wrong.</p>",
        _html_table(
            ["#", "run", "runtime", "device", "median ms", "p90 ms", "peak MiB", "batches"],
            [[str(i + 1), run["label"], *run_summary(run)] for i, run in enumerate(comparison["runs"])],
        ),
    ]
    header = ["group", "n", *comparison_header(report)]
    for attribute in comparison["attributes"]:
        overall = comparison["overall"]
        rows = [["all", str(overall["n"]), *comparison_cells(overall)]]
        rows += [[group["name"], str(group["n"]), *comparison_cells(group)] for group in attribute["groups"]]
        sentences = "".join(
            f"<li>{_e(rb_difference_sentence(report, attribute, run))}</li>"
            for run in range(1, len(comparison["runs"]))
        )
        parts += [f"<h3>{_e(attribute['name'])} across runs</h3><ul>{sentences}</ul>", _html_table(header, rows)]
    return "".join(parts)


def _warnings(warnings: list[str]) -> str:
    if not warnings:
        return "<h2>Warnings</h2><p>None.</p>"
    items = "".join(f"<li>{_e(w)}</li>" for w in warnings)
    return f'<h2>Warnings</h2><ul class="warnings">{items}</ul>'


_PARETO, _CELL, _RECOMMENDED = "#c0392b", "#3d6fa5", "#e5a50a"
_SWEEP_CSS = "tr.recommended td{background:#fff4d6}td.pareto{color:#c0392b;font-weight:600}"
_SWEEP_COLUMNS = frozenset({"cell", "rb", "rb_ci_low", "rb_ci_high", "size_bytes", "latency_ms"})


def sweep_html(state: dict[str, Any], summary: dict[str, Any], results: list[dict[str, Any]]) -> str:
    """A sweep folder as one page: ``state`` is sweep.json, ``summary`` summary.json, ``results`` the rows of
    results.csv (for sparsity and failed cells). Cell ids and factor levels are escaped like any data."""
    analysis = summary["analysis"]
    metric = analysis["metric"]
    bias = state.get("bias_attribute", "")
    cells = summary["cells"]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>ondevice-audit sweep: {_e(metric)} vs reliability bias over {_e(bias)}</title>",
        f"<style>{_CSS}{_SWEEP_CSS}</style></head><body>",
        f"<h1>Sweep of {_e(cells['total'])} cells: {_e(metric)} vs reliability bias over {_e(bias)}</h1>",
        f'<p class="lead">matrix <code>{_e(state.get("matrix", summary.get("matrix", "")))}</code> · '
        f"{_e(cells['ok'])} finished, {_e(cells['failed'])} failed, {_e(cells['from_cache'])} from the cache, "
        f"{_e(cells['skipped_combinations'])} combination(s) skipped · RB = Σ<sub>g</sub> |ln(P<sub>g</sub>/P<sub>all</sub>)| "
        f"({'higher' if analysis['higher_is_better'] else 'lower'} {_e(metric)} is better)</p>",
        _recommendation(state, analysis),
        _sweep_table(analysis, results),
    ]
    if any(row["rb"] is not None and row.get(metric) is not None for row in analysis["ranked"]):
        png = base64.b64encode(sweep_scatter_png(analysis, bias)).decode("ascii")
        alt = f"{metric} against RB over {bias}, one point per cell labelled by its number, Pareto front ringed"
        parts.append(f'<img alt="{_e(alt)}" src="data:image/png;base64,{png}">')
    parts += [_effects(analysis), _fixed_settings(state), _failed_cells(results), "</body></html>"]
    return "\n".join(parts) + "\n"


def sweep_scatter_png(analysis: dict[str, Any], bias_attribute: str) -> bytes:
    """The metric against RB, one point per finished cell labelled by the number its id starts with; the
    Pareto front ringed in red, the recommended cell as a star."""
    metric = analysis["metric"]
    rows = [r for r in analysis["ranked"] if r["rb"] is not None and r.get(metric) is not None]
    pareto = set(analysis["pareto"])
    chosen = analysis["selection"]["least_biased_within"]
    with style.context("default"):
        figure = Figure(figsize=(7.5, 5), dpi=100, layout="constrained")
        FigureCanvasAgg(figure)
        axes = figure.add_subplot()
        axes.scatter([r[metric] for r in rows], [r["rb"] for r in rows], color=_CELL, label="cell", zorder=2)
        front = [r for r in rows if r["cell"] in pareto]
        axes.scatter(
            [r[metric] for r in front],
            [r["rb"] for r in front],
            s=170,
            facecolors="none",
            edgecolors=_PARETO,
            linewidths=1.6,
            label="Pareto front",
            zorder=3,
        )
        best = [r for r in rows if r["cell"] == chosen]
        if best:
            axes.scatter(
                [best[0][metric]], [best[0]["rb"]], marker="*", s=260, color=_RECOMMENDED, label="recommended", zorder=4
            )
        labels: dict[tuple[float, float], list[str]] = {}
        for row in rows:
            labels.setdefault((row[metric], row["rb"]), []).append(str(row["cell"]).split("-")[0])
        for (x, y), names in sorted(labels.items()):
            axes.annotate(_plain_text(", ".join(names)), (x, y), textcoords="offset points", xytext=(6, 4), fontsize=8)
        axes.set_xlabel(_plain_text(f"{metric} ({'higher' if analysis['higher_is_better'] else 'lower'} is better)"))
        axes.set_ylabel(_plain_text(f"RB over {bias_attribute} (lower is less biased)"))
        axes.margins(0.1)
        axes.grid(alpha=0.3, zorder=0)
        axes.legend(fontsize=8)
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def _g(value: Any, spec: str = ".4g") -> str:
    """A number for the page; missing (None or NaN) shows as a dash."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return _e(format(value, spec))


def _rb_with_ci(row: dict[str, Any]) -> str:
    if row["rb"] is None:
        return '<span class="undefined">undefined</span>'
    if row.get("rb_ci_low") is None or row.get("rb_ci_high") is None:
        return _g(row["rb"])
    return f"{_g(row['rb'])} [{_g(row['rb_ci_low'])}, {_g(row['rb_ci_high'])}]"


def _recommendation(state: dict[str, Any], analysis: dict[str, Any]) -> str:
    metric = analysis["metric"]
    selection = analysis["selection"]
    chosen = selection["least_biased_within"]
    within = f"{_g(selection['within_percent'], 'g')} %"
    parts = ["<h2>Recommended variant</h2>"]
    if chosen is None:
        parts.append(f"<p>None: no finished cell within {within} of the best {_e(metric)} has a defined RB.</p>")
    else:
        row = next(r for r in analysis["ranked"] if r["cell"] == chosen)
        parts.append(
            f'<p class="rb">The least biased cell within {within} of the best {_e(metric)}: '
            f'<b class="mono">{_e(chosen)}</b> — {_e(metric)} {_g(row.get(metric))}, RB {_rb_with_ci(row)}.</p>'
        )
        cells = state.get("cells", [])
        factors: dict[str, Any] = next((c["factors"] for c in cells if c["id"] == chosen), {})
        varied = [(name, _e(level)) for name, level in factors.items() if name not in _constant(cells)]
        if varied:
            parts.append(_rows(varied))
    parts.append(
        _rows(
            [
                (f"most accurate ({metric})", _e(selection["most_accurate"] or "—")),
                ("least biased", _e(selection["least_biased"] or "—")),
                ("Pareto front (metric, RB, size, latency)", _e(", ".join(analysis["pareto"]) or "—")),
            ]
        )
    )
    return "\n".join(parts)


def _sweep_table(analysis: dict[str, Any], results: list[dict[str, Any]]) -> str:
    metric = analysis["metric"]
    ranked = analysis["ranked"]
    if not ranked:
        return "<h2>Cells by RB</h2><p>No cell finished.</p>"
    varied = [k for k in ranked[0] if k not in _SWEEP_COLUMNS and k != metric]
    sparsity = {str(r["cell"]): r.get("model_sparsity") for r in results}
    pareto = set(analysis["pareto"])
    chosen = analysis["selection"]["least_biased_within"]
    header = "".join(f'<th class="text">{_e(name)}</th>' for name in varied)
    rows = []
    for row in ranked:
        cls = ' class="recommended"' if row["cell"] == chosen else ""
        levels = "".join(f'<td class="text">{_e(row[name])}</td>' for name in varied)
        size = row.get("size_bytes")
        rows.append(
            f'<tr{cls}><td class="text mono">{_e(row["cell"])}</td>{levels}<td>{_g(row.get(metric))}</td>'
            f"<td>{_rb_with_ci(row)}</td><td>{_g(None if size is None else size / 1024, ',.1f')}</td>"
            f"<td>{_g(row.get('latency_ms'), '.3g')}</td><td>{_g(sparsity.get(str(row['cell'])), '.1%')}</td>"
            f'<td class="text pareto">{"yes" if row["cell"] in pareto else ""}</td></tr>'
        )
    return (
        f"<h2>Cells by RB ({_e(analysis['ok'])} of {_e(analysis['cells'])} finished)</h2>"
        f'<table><tr><th class="text">cell</th>{header}<th>{_e(metric)}</th><th>RB [CI]</th><th>size KiB</th>'
        f'<th>latency ms</th><th>sparsity</th><th class="text">Pareto</th></tr>{"".join(rows)}</table>'
    )


def _effects(analysis: dict[str, Any]) -> str:
    parts = ["<h2>Which design choice drives bias</h2>"]
    floor = analysis["noise_floor"]
    if not analysis["effects"]:
        parts.append("<p>No factor has two or more levels among cells with a defined RB.</p>")
    else:
        noise = {None: "unknown (no seed replicates)", True: "below: indistinguishable from reseeding", False: "above"}
        rows = "".join(
            f'<tr><td class="text">{_e(e["factor"])}</td><td class="text">'
            + "; ".join(f"{_e(lv['level'])}: {_g(lv['mean_rb'])} ({_e(lv['cells'])})" for lv in e["levels"])
            + f"</td><td>{_g(e['spread'])}</td><td>{_g(e['p_value'], '.3g')}</td>"
            f'<td>{_g(e["mutual_information"], ".3g")}</td><td class="text">{noise[e["below_noise"]]}</td></tr>'
            for e in analysis["effects"]
        )
        parts.append(
            '<table><tr><th class="text">factor</th><th class="text">mean RB per level (cells)</th><th>spread</th>'
            f'<th>F-test p</th><th>MI (nats)</th><th class="text">vs seed noise floor</th></tr>{rows}</table>'
        )
    if floor is None:
        parts.append("<p>Noise floor: unknown (it needs two or more seeds of otherwise-identical cells).</p>")
    else:
        parts.append(
            f"<p>Noise floor: RB varies by {_g(floor)} (pooled standard deviation) across seeds of otherwise-identical "
            f"cells ({_e(analysis['noise_sets'])} set(s)); a factor whose level means spread less is noise.</p>"
        )
    return "\n".join(parts)


def _fixed_settings(state: dict[str, Any]) -> str:
    """Factors every cell shares: what the sweep held constant, so the page is read in its context."""
    cells = state.get("cells", [])
    if not cells:
        return ""
    fixed = [(name, _e(level)) for name, level in _constant(cells).items()]
    return "<h2>Held constant</h2>" + (_rows(fixed) if fixed else "<p>Nothing: every factor varies.</p>")


def _constant(cells: list[dict[str, Any]]) -> dict[str, Any]:
    """Factor -> level for the factors every cell of sweep.json has at the same level."""
    if not cells:
        return {}
    first = cells[0]["factors"]
    return {name: level for name, level in first.items() if all(c["factors"].get(name) == level for c in cells)}


def _failed_cells(results: list[dict[str, Any]]) -> str:
    failed = [r for r in results if r.get("status") == "failed"]
    if not failed:
        return "<h2>Failed cells</h2><p>None.</p>"
    rows = "".join(
        f'<tr><td class="text mono">{_e(r["cell"])}</td><td class="text">{_e(r.get("error", ""))}</td></tr>'
        for r in failed
    )
    return f'<h2>Failed cells ({len(failed)})</h2><table><tr><th class="text">cell</th><th class="text">error</th></tr>{rows}</table>'
