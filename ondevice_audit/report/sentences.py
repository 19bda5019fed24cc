"""The sentences and cells every format says the same way: the RB verdict, a run's costs, a detector's threshold.

Each takes an ``escape`` for the target format (rich markup, Markdown, HTML), applied to every value that comes
from the data.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ondevice_audit.report.interface import fmt_interval, fmt_number

__all__ = [
    "RUN_COLUMNS",
    "fmt_rate",
    "frontend_sentences",
    "attributes_sentence",
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
    """The one-line verdict for an attribute: RB, its mean per group, the largest gap between groups and who is
    worst off; ``escape`` is applied to every value from the data."""
    rb = attribute["rb"]
    metric = report["metric"]["name"]
    name = escape(attribute["name"])
    confidence = f"{report['settings']['confidence']:.0%} CI"
    if rb["value"] is None:
        text = f"RB({name}) on {metric}: undefined — {escape(rb['undefined_reason'])}"
    else:
        text = f"RB({name}) on {metric} = {rb['value']:.3f}"
        if rb["ci"]:
            text += f" {fmt_interval(rb['ci'])} ({confidence})"
        if rb["p_value"] is not None:
            text += f", permutation p = {rb['p_value']:.3g}"
        if rb.get("mean") is not None:  # reports before schema 1.1 have no mean
            text += f"; per group {rb['mean']:.3f}"
            text += f" {fmt_interval(rb['mean_ci'])}" if rb.get("mean_ci") else ""
            text += f" (RB / {rb['groups']} groups)"
    gap = attribute.get("gap")
    if gap and gap["value"] is not None:
        text += f"; largest gap {gap['value']:.3f}" + (f" {fmt_interval(gap['ci'])}" if gap["ci"] else "")
        text += f" ({escape(gap['high'])} − {escape(gap['low'])})" if gap["high"] is not None else ""
    if attribute["worst_group"] is not None:
        text += f"; worst off: {escape(attribute['worst_group'])}"
    return text


def attributes_sentence(report: dict[str, Any], escape: Callable[[str], str] = str) -> str | None:
    """With two or more attributes, RB per group of each, highest first: the number to compare attributes on
    (RB itself grows with the number of groups). None when fewer than two have one."""
    means = [(a["name"], a["rb"]) for a in report["attributes"] if a["rb"].get("mean") is not None]
    if len(means) < 2:
        return None
    means.sort(key=lambda item: -item[1]["mean"])
    listed = ", ".join(
        f"{escape(name)} {rb['mean']:.3f}" + (f" {fmt_interval(rb['mean_ci'])}" if rb.get("mean_ci") else "")
        for name, rb in means
    )
    return f"Attributes by RB per group (compare these, not RB, which grows with the number of groups): {listed}"


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
    """Runtime, device, latency (p50, p90, p99), memory and batches of one comparison run, as plain cells."""
    latency = run["latency_ms"]
    device = run["device"]
    batches = run["batches"]
    stored = " (stored)" if latency and latency.get("stored") else ""
    return [
        runtime_text(run),
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
