"""The explain report as one JSON-ready document, and the three findings it states in words.

Every format (``render.py``) renders this document and nothing else, so a number in the table is the number in
the JSON. Its shape is the versioned JSON Schema ``explain/schema/explain-v1.schema.json`` (``validate``); tests
validate every document explain writes. The findings say what the numbers mean: whether the variant changes RB beyond the base's interval,
whether any layer hurts the worse-off group beyond the bootstrap noise, and which candidate (if any) fixes it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ondevice_audit import __version__
from ondevice_audit._files import sha256_of
from ondevice_audit._json_schema import load_schema, validate_against
from ondevice_audit.explain.comparison import Comparison, RunResult
from ondevice_audit.explain.data import ExplainData
from ondevice_audit.explain.interface import Explainer, Layer
from ondevice_audit.explain.ranking import LayerEffect
from ondevice_audit.metrics.detection import DetectionFrame
from ondevice_audit.scoring import ScoreOptions
from ondevice_audit.tasks import ClassifierTask, DetectorTask

__all__ = ["SCHEMA_VERSION", "explain_document", "schema", "validate"]

SCHEMA_VERSION = "explain-1.0"
"""The shape is ``explain/schema/explain-v1.schema.json``; a minor version adds optional fields only."""
_SCHEMA = ("ondevice_audit.explain", "schema/explain-v1.schema.json")
_MAX_LISTED_FAILURES = 1000
_REBUILT_AGREEMENT = 0.99
"""Below this share of clips predicted alike, the rebuilt variant is not the variant: the report says so."""


def explain_document(
    *,
    explainer: Explainer,
    inputs: dict[str, Path],
    data: ExplainData,
    options: ScoreOptions,
    comparison: Comparison,
    worse: str | None,
    layers: list[Layer],
    effects: list[LayerEffect] | None,
    undone: list[list[str]],
    task: ClassifierTask | DetectorTask,
    rows: str | None = None,
) -> dict[str, Any]:
    """``rows``: which rows were explained when not the manifest's (or its ``--split``), in words."""
    metric = comparison.definition
    runs = [_run(run) for run in comparison.runs]
    candidates = [run for run in comparison.runs if run.role == "candidate"]
    for entry, layers_undone in zip((r for r in runs if r["role"] == "candidate"), undone, strict=True):
        entry["undone"] = layers_undone
    recommended = next((run for run in candidates if run.within_base_interval), None)
    return {
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "ondevice-audit", "version": __version__},
        "command": "explain",
        "kind": explainer.kind,
        "undo": explainer.undo,
        "inputs": [{"role": role, "path": str(path), "sha256": sha256_of(path)} for role, path in inputs.items()],
        "settings": _settings(options, task, comparison, rows, explainer),
        "metric": {"name": metric.name, "description": metric.description, "higher_is_better": metric.higher_is_better},
        "samples": _samples(data, comparison),
        "attribute": comparison.attribute,
        "resampling": comparison.resampling,
        "groups": [{"name": g, "in_rb": inc} for g, inc in zip(comparison.groups, comparison.included, strict=True)],
        "base_rb": {"value": comparison.base_rb, "ci": _pair(comparison.base_ci)},
        "worse_off_group": worse,
        "detection": _detection(task, comparison),
        "runs": runs,
        "layers": _layers(layers, effects),
        "findings": {
            "variant": _variant_finding(explainer, comparison, worse),
            "layers": _layer_finding(explainer, comparison, layers, effects, worse),
            "fix": _fix_finding(explainer, comparison, effects, candidates, recommended),
            "operating_point": _operating_point(task, comparison),
        },
        "recommendation": None if recommended is None else _recommendation(recommended, comparison.runs[1], runs),
        "warnings": _warnings(comparison, options),
    }


def schema() -> dict[str, Any]:
    return load_schema(*_SCHEMA)


def validate(document: dict[str, Any]) -> None:
    """Raise ``jsonschema.ValidationError`` when ``document`` does not follow the explain schema."""
    validate_against(document, *_SCHEMA)


def _settings(
    options: ScoreOptions, task: ClassifierTask | DetectorTask, comparison: Comparison, rows: str | None,
    explainer: Explainer,
) -> dict[str, Any]:  # fmt: skip
    """The scoring options, the task's (a detector's phrase and operating point), and how it was explained."""
    explained = {"explained": comparison.attribute, "rows": rows}
    return {**options.settings(), **task.settings(), **explained, **explainer.facts()}


def _pair(values: tuple[float, float] | None) -> list[float] | None:
    return None if values is None else [values[0], values[1]]


def _samples(data: ExplainData, comparison: Comparison) -> dict[str, Any]:
    scored = int(comparison.scored_mask.sum())
    return {
        "total": data.total,
        "scored": scored,
        "failed": data.total - scored,
        "failures": data.failures[:_MAX_LISTED_FAILURES],
    }


def _run(run: RunResult) -> dict[str, Any]:
    return {
        "role": run.role,
        "name": run.name,
        "path": str(run.path),
        "sha256": run.sha256,
        "size_bytes": run.size_bytes,
        "latency_ms": run.latency_ms,
        "metric": run.metric,
        "groups": run.groups,
        "rb": run.rb,
        "rb_difference": run.rb_difference,
        "rb_difference_ci": _pair(run.rb_difference_ci),
        "within_base_interval": run.within_base_interval,
        "threshold": run.threshold,
        "agreement_with_variant": run.agreement,
        "max_score_difference_to_variant": run.max_score_difference,
    }


def _detection(task: ClassifierTask | DetectorTask, comparison: Comparison) -> dict[str, Any] | None:
    """A detector's phrase, its operating point and the base's threshold with its bootstrap interval (re-chosen
    in every replicate, as ``audit`` states it); None for a classifier."""
    frame = comparison.base_frame
    if not isinstance(task, DetectorTask) or not isinstance(frame, DetectionFrame):
        return None
    return {
        "positive_label": task.positive_label,
        "chosen_by": task.point.describe(),
        "threshold": frame.threshold,
        "threshold_ci": _pair(frame.threshold_ci),
        "positives": frame.counts["positives"],
        "negatives": frame.counts["negatives"],
    }


def _operating_point(task: ClassifierTask | DetectorTask, comparison: Comparison) -> str | None:
    """Where a detector's decisions are made, in words: the one threshold, or each model's (``--at-far``), the
    base's with its bootstrap interval; models named as the tables name them (fix 1, fix 2...)."""
    if not isinstance(task, DetectorTask):
        return None
    if not task.point.chosen:
        return (f"Every model accepts a clip when its {task.positive_label!r} probability is at least "
                f"{task.point.threshold:g} (given), the same for every group.")  # fmt: skip
    ci = comparison.base_frame.threshold_ci if isinstance(comparison.base_frame, DetectionFrame) else None
    candidates = [run for run in comparison.runs if run.role == "candidate"]
    chosen = [
        f"{f'fix {candidates.index(run) + 1}' if run.role == 'candidate' else run.role} {run.threshold:.3f}"
        + (_interval(ci) if run.role == "base" else "")
        for run in comparison.runs
        if run.threshold is not None
    ]
    return f"Each model's threshold is {task.point.describe()}, the same for every group: {', '.join(chosen)}."


def _layers(layers: list[Layer], effects: list[LayerEffect] | None) -> list[dict[str, Any]]:
    entries = []
    for index, layer in enumerate(layers):
        effect = None if effects is None else effects[index]
        entries.append(
            {
                "index": index,
                "name": layer.name,
                "op": layer.op,
                "node": layer.node,
                "scale": layer.scale,
                "sparsity": layer.sparsity,
                "base_sparsity": layer.base_sparsity,
                "groups": [] if effect is None else [
                    {"name": g.group, "clips": g.clips, "rmse_per_scale": g.rmse_per_scale, "snr_db": g.snr_db}
                    for g in effect.groups
                ],
                "gap_db": None if effect is None else effect.gap_db,
                "gap_ci": None if effect is None else _pair(effect.ci),
                "beyond_noise": None if effect is None else effect.beyond_noise,
                "rank": None if effect is None else effect.rank,
            }
        )  # fmt: skip
    return entries


def _interval(ci: tuple[float, float] | None, spec: str = ".3f") -> str:
    return "" if ci is None else f" [{ci[0]:{spec}}, {ci[1]:{spec}}]"


def _variant_finding(explainer: Explainer, comparison: Comparison, worse: str | None) -> str:
    base, variant = comparison.runs[0], comparison.runs[1]
    if variant.rb is None and comparison.variant_changed():
        return (
            f"The variant's RB over {comparison.attribute} is undefined (some group's {comparison.metric} is no "
            f"longer positive), the base's is {base.rb:.3f}{_interval(comparison.base_ci)}."
            + _worse_text(comparison, worse)
        )
    if variant.within_base_interval is None or variant.rb_difference is None:
        return (
            f"RB over {comparison.attribute} is undefined for the base or the variant, or the base has no interval "
            "(see the warnings): there is no change to explain."
        )
    change = f"paired change {variant.rb_difference:+.3f}{_interval(variant.rb_difference_ci)}"
    if not comparison.variant_changed():
        return (
            f"The variant's RB {variant.rb:.3f} ({change}) is not measurably above the base's {base.rb:.3f}"
            f"{_interval(comparison.base_ci)}: {explainer.kind} does not measurably change RB over "
            f"{comparison.attribute}."
        )
    text = f"The variant's RB {variant.rb:.3f} is above the base's interval{_interval(comparison.base_ci)} ({change})."
    return text + _worse_text(comparison, worse)


def _worse_text(comparison: Comparison, worse: str | None) -> str:
    before = None if worse is None else comparison.runs[0].groups.get(worse)
    after = None if worse is None else comparison.runs[1].groups.get(worse)
    if before is None or after is None:
        return ""
    return f" It serves {worse} worst relative to the base: {comparison.metric} {before:.3f} -> {after:.3f}."


def _layer_finding(
    explainer: Explainer, comparison: Comparison, layers: list[Layer], effects: list[LayerEffect] | None,
    worse: str | None,
) -> str:  # fmt: skip
    if effects is None or worse is None:
        return "No worse-off group could be named (the metric is undefined for the base or the variant)."
    if not comparison.variant_changed():
        return "No layer is ranked: there is no change in RB to explain. The per-layer errors are shown as measured."
    ranked = sorted((e for e in effects if e.rank is not None), key=lambda e: e.rank or 0)
    if not ranked:
        return (
            f"No layer's {explainer.kind} error hurts {worse} more than the other groups beyond the speaker-bootstrap "
            f"noise ({len(layers)} layers): a ranking would be noise, so none is given."
        )
    first = ranked[0]
    return (
        f"{len(ranked)} of {len(layers)} layers hurt {worse} more than the other groups beyond the noise. First: "
        f"{layers[first.index].name} ({layers[first.index].op}), {first.gap_db:.1f} dB more error relative to "
        f"{worse}'s own signal{_interval(first.ci, '.1f')}."
    )


def _fix_finding(
    explainer: Explainer,
    comparison: Comparison,
    effects: list[LayerEffect] | None,
    candidates: list[RunResult],
    recommended: RunResult | None,
) -> str:
    variant = comparison.runs[1]
    if not candidates:
        if variant.within_base_interval is None or effects is None:
            return "None tried: RB is undefined, so no candidate could be judged."
        if not comparison.variant_changed():
            return "None needed."
        return "None tried: no layer to undo (none is beyond the noise)."
    if recommended is None:
        base_rb = comparison.base_rb or 0.0
        closest = min(candidates, key=lambda c: float("inf") if c.rb is None else abs(c.rb - base_rb))
        rb = "undefined" if closest.rb is None else f"{closest.rb:.3f}"
        return (
            f"None of the {len(candidates)} candidates brings RB within the base's interval; the closest is "
            f"{closest.name} (RB {rb})."
        )
    return (
        f"{recommended.name}: RB {recommended.rb:.3f}, within the base's interval{_interval(comparison.base_ci)}; it "
        f"costs {recommended.size_bytes - variant.size_bytes:+,} bytes and "
        f"{_delta_ms(recommended, variant)} per inference on this machine against the variant."
    )


def _delta_ms(run: RunResult, variant: RunResult) -> str:
    if run.latency_ms is None or variant.latency_ms is None:
        return "an unmeasured time"
    delta = run.latency_ms - variant.latency_ms
    if max(run.latency_ms, variant.latency_ms) < 1:  # a sub-millisecond model: microseconds say more
        return f"{delta * 1000:+.1f} µs"
    return f"{delta:+.3f} ms"


def _recommendation(run: RunResult, variant: RunResult, entries: list[dict[str, Any]]) -> dict[str, Any]:
    entry = next(e for e in entries if e["path"] == str(run.path))
    return {
        "name": run.name,
        "file": str(run.path),
        "undone": entry.get("undone", []),
        "rb": run.rb,
        "size_bytes": run.size_bytes,
        "size_delta_bytes": run.size_bytes - variant.size_bytes,
        "latency_ms": run.latency_ms,
        "latency_delta_ms": None
        if run.latency_ms is None or variant.latency_ms is None
        else run.latency_ms - variant.latency_ms,
    }


def _warnings(comparison: Comparison, options: ScoreOptions) -> list[str]:
    notes = []
    if len(options.groups) > 1:
        notes.append(f"explained over {options.groups[0]} (the first --group); the other columns are not explained")
    rebuilt = next((run for run in comparison.runs if run.role == "rebuilt"), None)
    if rebuilt is not None and rebuilt.agreement < _REBUILT_AGREEMENT:
        notes.append(
            f"the variant rebuilt here from the base predicts {rebuilt.agreement:.1%} of clips as the variant does "
            f"(scores differ by up to {rebuilt.max_score_difference:.3g}): the layer errors and candidates describe the "
            "rebuilt model; pass the calibration data the variant was made with (--calibration-data)"
        )
    return notes + comparison.warnings
