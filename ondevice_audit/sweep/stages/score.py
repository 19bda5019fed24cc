"""``score``: a cell's test-split scores per group, as ``audit`` scores them (``scoring.py``).

The entry holds the cell's ``report.json`` (the audit report of its file on held-out speakers),
``predictions.csv`` (every test clip's prediction, for paired comparisons between cells) and
``measurements.json`` (its ``results.csv`` row without the factor levels: cells that share every stage share it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeGuard

import numpy as np

from ondevice_audit.errors import UsageError
from ondevice_audit.scoring import frame_warnings
from ondevice_audit.sweep.stages.base import StageSettings, TaskContext, feature_arrays, read_json, write_json
from ondevice_audit.targets.runs import NAN_OUTPUT

if TYPE_CHECKING:
    from ondevice_audit.metrics import GroupMetricFrame
    from ondevice_audit.metrics.detection import DetectionFrame
    from ondevice_audit.tasks import ClassifierTask, DetectorTask

__all__ = ["SCORING_FIELDS", "ScoreSettings", "not_pruned"]

SCORING_FIELDS = ("groups", "metric", "negative_labels", "min_group_size", "bootstrap", "permutations",
                  "confidence", "resampling_seed", "bias_attribute", "task", "positive_label", "threshold", "at_far",
                  "at_fa_per_hour", "clip_seconds")  # fmt: skip
"""The ``DataSettings`` fields a cell's scores depend on (the split is in the features key already)."""


@dataclass(frozen=True)
class ScoreSettings(StageSettings):
    stage = "score"
    distributions = ("numpy", "scipy", "pandas", "scikit-learn")

    features: str
    export: str
    infer: str
    scoring: dict[str, Any]
    """The ``SCORING_FIELDS`` of the matrix's ``[data]``."""
    manifest: str
    """The manifest's sha256 (its paths and group columns end up in the report and predictions)."""

    def run(self, task: TaskContext, entry: Path) -> None:
        from ondevice_audit.report.document import build_report, validate

        data = task.sweep.matrix.data
        scoring = task.sweep.matrix.scoring_task(task.sweep.classes)
        options = scoring.resolve(data.score_options())
        exported = read_json(task.entry("export", self.export) / "export.json")
        inferred = read_json(task.entry("infer", self.infer) / "infer.json")
        scored, outputs, failures = self._outputs(task, scoring)
        frame = scoring.frame(scored, outputs, options)
        facts = inferred["facts"]
        seen = read_json(task.entry("features", self.features) / "features.json")["inputs"]["test"]
        report = build_report(
            command="sweep",
            frame=frame,
            inputs=[
                {"role": "model", "path": facts["path"], "sha256": facts["sha256"]},
                {"role": "manifest", "path": str(data.manifest), "sha256": task.sweep.manifest_sha256},
                *_plugin_inputs(task),
            ],
            settings={**options.settings(), **scoring.settings(), "runtime": facts["runtime"], "split": "test"},
            samples=self._samples(task, scored, failures, seen["counts"]),
            warnings=seen["warnings"] + _warnings(frame, exported, len(failures)),
            model={
                **facts,
                "labels": list(task.sweep.classes),
                "frontend": exported["frontend_description"],
                "seconds_per_sample": inferred["latency_ms"] / 1000,
                "metadata": {"extra": exported["metadata"]},
            },
        )
        section = scoring.section(frame)
        if section is not None:
            report["detection"] = {**section, "stream": None}
        validate(report)
        groups = list(options.groups)
        speaker = ["speaker"] if "speaker" in scored.columns else []
        written = scored.assign(**{scoring.output_column: outputs})
        written[["path", "label", scoring.output_column, *speaker, *groups]].to_csv(entry / "predictions.csv",
                                                                                     index=False)  # fmt: skip
        write_json(entry / "report.json", report)
        write_json(entry / "measurements.json", _measurements(frame, data.bias_attribute, exported, inferred, failures))

    @staticmethod
    def _samples(
        task: TaskContext, scored: Any, failures: list[dict[str, str]], seen: dict[str, Any] | None
    ) -> dict[str, Any]:
        """The report's ``samples``: test clips scored and failed, and what the front-end changed to fit them."""
        total = len(task.sweep.frames["test"])
        samples = {"total": total, "scored": len(scored), "failed": len(failures), "failures": failures}
        return samples if seen is None else {**samples, "inputs": seen}

    def _outputs(
        self, task: TaskContext, scoring: ClassifierTask | DetectorTask
    ) -> tuple[Any, Any, list[dict[str, str]]]:
        """The test rows that were scored with their outputs (class or probability), and every row that was
        not, with why."""
        scores = np.load(task.entry("infer", self.infer) / "scores.npy")
        rows = feature_arrays(task.cache, self.features)["test_rows"]
        test = task.sweep.frames["test"]
        finite = np.isfinite(scores).all(axis=1) if scores.size else np.zeros(len(rows), bool)
        scored = test.loc[rows[finite]]
        unreadable = read_json(task.entry("features", self.features) / "features.json")["failures"]
        failures = [{"path": p, "reason": unreadable[p]} for p in test["path"] if p in unreadable]
        failures += [{"path": p, "reason": NAN_OUTPUT} for p in test.loc[rows[~finite], "path"]]
        if scored.empty:
            raise UsageError(f"no test file could be scored ({len(failures)} failed)")
        return scored, scoring.outputs(scores[finite]), failures


def _plugin_inputs(task: TaskContext) -> list[dict[str, str]]:
    """The user's front-end plug-in, with the digest its features were computed and cached under."""
    from ondevice_audit.frontend.plugin import plugin_file
    from ondevice_audit.sweep.user_model import PluginReference

    user = task.sweep.matrix.model
    if user is None or not isinstance(user.frontend, PluginReference) or not user.frontend.sha256:
        return []
    path = plugin_file(user.frontend.plugin)
    return [{"role": "front-end plug-in", "path": str(path or user.frontend.plugin), "sha256": user.frontend.sha256}]


def _warnings(frame: GroupMetricFrame | DetectionFrame, exported: dict[str, Any], failed: int) -> list[str]:
    """The cell's export notes, then the same frame warnings every audit report carries."""
    notes = [f"export: {warning}" for warning in exported["warnings"]]
    facts = exported["metadata"]
    notes += [f"{facts['recipe']} adjusted to the input: {note}" for note in facts["adjustments"]]
    sparsity = exported["sparsity"]
    if facts["requested_sparsity"] and sparsity["dense_kernels"]:
        notes.append(
            f"{sparsity['dense_kernels']} depthwise kernel(s) cannot be pruned and stay dense: the file is "
            f"{sparsity['overall']:.1%} sparse over all kernels, {sparsity['prunable']:.1%} over prunable ones"
        )
    if facts.get("unprunable_layers"):
        notes.append(f"not pruned: {not_pruned(facts['unprunable_layers'])}")
    return notes + frame_warnings(frame, failed)


def _is_detection(frame: GroupMetricFrame | DetectionFrame) -> TypeGuard[DetectionFrame]:
    from ondevice_audit.metrics.detection import DetectionFrame

    return isinstance(frame, DetectionFrame)


def not_pruned(layers: list[dict[str, Any]]) -> str:
    """``depthwise_conv2d (DepthwiseConv2D, 1,152 params), ...``: the layers tfmot left dense."""
    return ", ".join(f"{layer['name']} ({layer['type']}, {layer['params']:,} params)" for layer in layers)


def _measurements(
    frame: GroupMetricFrame | DetectionFrame,
    bias_attribute: str,
    exported: dict[str, Any],
    inferred: dict[str, Any],
    failures: list[dict[str, str]],
) -> dict[str, Any]:
    """One results row, without the factor levels."""
    metric = frame.metric
    low, high = frame.overall_ci or (None, None)
    row: dict[str, Any] = {
        "n_test": len(frame.y_true),
        "n_failed": len(failures),
        **frame.overall,
        f"{metric}_ci_low": low,
        f"{metric}_ci_high": high,
        **({"threshold": frame.threshold} if _is_detection(frame) else {}),
    }
    for attribute in frame.attributes:
        if attribute.name == bias_attribute:
            ci, mean_ci, gap_ci = (x or (None, None) for x in (attribute.rb.ci, attribute.rb.mean_ci, attribute.gap.ci))
            row.update(rb=attribute.rb.value, rb_ci_low=ci[0], rb_ci_high=ci[1], rb_p_value=attribute.rb.p_value,
                       rb_mean=attribute.rb.mean, rb_mean_ci_low=mean_ci[0], rb_mean_ci_high=mean_ci[1],
                       group_gap=attribute.gap.value, group_gap_ci_low=gap_ci[0], group_gap_ci_high=gap_ci[1],
                       worst_group=attribute.worst_group)  # fmt: skip
    row.update({f"rb.{attribute.name}": attribute.rb.value for attribute in frame.attributes})
    row.update(
        {
            f"{metric}.{attribute.name}={group.name}": group.metrics.get(metric)
            for attribute in frame.attributes
            for group in attribute.groups
        }
    )
    sparsity = exported["sparsity"]
    row.update(
        size_bytes=exported["size_bytes"],
        achieved_sparsity=sparsity["prunable"],
        model_sparsity=sparsity["overall"],
        dense_kernels=sparsity["dense_kernels"],
        parity_max_abs=exported["parity"],
        top1_agreement=exported["top1_agreement"],
        parity_ok=exported["parity_ok"],
        latency_ms=inferred["latency_ms"],
        not_pruned=not_pruned(exported["metadata"].get("unprunable_layers", [])),
    )
    return row
