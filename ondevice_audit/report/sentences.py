"""The sentences and cells every format says the same way: the RB verdict, a run's costs, a detector's threshold.

Each takes an ``escape`` for the target format (rich markup, Markdown, HTML), applied to every value that comes
from the data.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ondevice_audit.report.interface import fmt_interval, fmt_number

__all__ = [
    "comparison_cells",
    "comparison_header",
    "detection_sentence",
    "rb_difference_sentence",
    "rb_sentence",
    "run_summary",
    "runtime_setup",
    "runtime_text",
]


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


def runtime_setup(facts: dict[str, Any]) -> str:
    """How a run computed, as one phrase: ``optimized kernels, delegate XNNPACK (1 partition), 1 thread``.

    ``facts`` is a report's ``model`` or a comparison run; reports written before kernels were recorded give ""."""
    kernels = facts.get("kernels")
    if not kernels:
        return ""
    parts = [f"{kernels} kernels"]
    if facts.get("delegate"):
        parts.append(f"delegate {facts['delegate']}")
    elif kernels == "optimized":
        parts.append("no delegate")
    if facts.get("graph_optimization"):
        parts.append(f"graph optimization {facts['graph_optimization']}")
    threads = facts.get("threads")
    parts.append("the runtime's default threads" if threads is None else f"{threads} thread{'' if threads == 1 else 's'}")
    return ", ".join(parts)


def runtime_text(facts: dict[str, Any]) -> str:
    """``litert 2.3.0 (optimized kernels, delegate XNNPACK (1 partition), 1 thread)``."""
    setup = runtime_setup(facts)
    return f"{facts['runtime']} {facts['runtime_version']}" + (f" ({setup})" if setup else "")


def run_summary(run: dict[str, Any]) -> list[str]:
    """Runtime, device, latency, memory and batches of one comparison run, as plain cells."""
    latency = run["latency_ms"]
    device = run["device"]
    batches = run["batches"]
    return [
        runtime_text(run),
        f"{device.get('machine', '?')}, Python {device.get('python', '?')}",
        "—" if latency is None else f"{latency['median']:.3g}",
        "—" if latency is None else f"{latency['p90']:.3g}",
        "—" if run["peak_memory_bytes"] is None else f"{run['peak_memory_bytes'] / 2**20:.0f}",
        f"{batches['batches']} ({batches['from_cache']} stored, {batches['retries']} retried)",
    ]


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


def detection_sentence(report: dict[str, Any], escape: Callable[[str], str] = str) -> str:
    """One line: the phrase, the threshold and how it was set, the counts and the overall EER."""
    detection = report["detection"]
    threshold = detection["threshold"]
    ci = threshold.get("ci")
    interval = f" [{ci[0]:.3g}, {ci[1]:.3g}]" if ci else ""
    eer = detection.get("eer")
    return (
        f"Detector for {escape(repr(detection['positive_label']))}: threshold {threshold['value']:.4g}{interval} "
        f"({escape(threshold['chosen_by'])}), the same for every group; {detection['positives']} positive and "
        f"{detection['negatives']} negative clips; EER {'undefined' if eer is None else f'{eer:.3f}'} over all clips."
    )
