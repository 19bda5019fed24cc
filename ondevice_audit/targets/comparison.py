"""The report's ``comparison`` section: several runs of a model on the same clips, side by side.

The first run is the reference that flips, forgotten clips and RB differences are measured against (see
``metrics/disparity.py``); the runs themselves are planned and executed by ``targets/runs.py``.

Latency is per sample (each call's time over its samples) as median, p90, p99 and mean of the batches this run
measured; batches read back from the work folder (an interrupted audit resumed) are counted as ``stored_samples``
and left out, unless nothing was measured, when the figures are the stored ones and say so (``stored``). A run
whose target computed the features itself (``--frontend-on-target``) adds ``frontend_on_target``: per group the
largest feature difference from the host's front-end and the flip rate of the model's decisions between the two
feature sets (same model, same target), and the front-end's and the end-to-end latency per sample.
When TFLite Micro is one of the runs, every other run of the same file is also measured against it
(``against_tflm``): a microcontroller computes what TFLM computes, so a desktop runtime whose decisions differ
from TFLM's gives per-group numbers no board reproduces, and the report warns with the per-group flip rates.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from ondevice_audit._files import model_format
from ondevice_audit.metrics._groups import group_attributes
from ondevice_audit.metrics.disparity import DisparityFrame, GroupDisparity
from ondevice_audit.targets.runs import FrontendRecord, Run, RunRecord

__all__ = ["against_tflm", "comparison_section", "frontend_parity", "latency_summary", "tflm_pairs", "tflm_warning"]


def latency_summary(seconds: np.ndarray, stored: np.ndarray | None = None) -> dict[str, Any] | None:
    """Per-sample milliseconds: median (p50), p90, p99, mean over the measured ``seconds``; ``stored`` seconds
    (batches read back from the store) are only counted, or used, and marked, when nothing was measured."""
    stored = np.zeros(0) if stored is None else stored
    from_store = not len(seconds) and bool(len(stored))
    chosen = stored if from_store else seconds
    if not len(chosen):
        return None
    milliseconds = chosen * 1000
    return {
        "median": float(np.median(milliseconds)),
        "p90": float(np.quantile(milliseconds, 0.9)),
        "p99": float(np.quantile(milliseconds, 0.99)),
        "mean": float(milliseconds.mean()),
        "samples": int(len(chosen)),
        "stored": from_store,
        "stored_samples": int(len(stored)),
    }


def _parity(diff: np.ndarray, flipped: np.ndarray) -> dict[str, Any]:
    n = int(len(diff))
    return {
        "n": n,
        "max_abs_diff": float(diff.max()) if n else None,
        "mean_abs_diff": float(diff.mean()) if n else None,
        "flips": int(flipped.sum()),
        "flip_rate": float(flipped.mean()) if n else None,
    }


def frontend_parity(
    record: FrontendRecord, device: np.ndarray, host: np.ndarray, groups: pd.DataFrame, scored: np.ndarray
) -> dict[str, Any]:
    """How the target's front-end compares with the host's, overall and per group (the groups and their
    intersections, as the comparison names them): ``device``/``host`` are the decisions on the target's and on
    the host's features of every row; ``scored`` selects the rows every run scored, ``groups`` holds theirs."""
    diff = record.feature_diff[scored]
    flipped = np.asarray(device[scored] != host[scored])
    attributes = []
    for attribute in group_attributes(groups.reset_index(drop=True), True):
        entries = [
            {"name": name, **_parity(diff[attribute.codes == i], flipped[attribute.codes == i])}
            for i, name in enumerate(attribute.names)
        ]
        attributes.append({"name": attribute.name, "columns": attribute.columns, "groups": entries})
    return {
        "settings": record.settings,
        **_parity(diff, flipped),
        "features_ms": latency_summary(record.feature_latency, record.stored_feature_latency),
        "end_to_end_ms": latency_summary(record.end_to_end, record.stored_end_to_end),
        "attributes": attributes,
    }


def _run_entry(index: int, run: Run, record: RunRecord) -> dict[str, Any]:
    device = record.device
    return {
        "label": run.label,
        "role": "reference" if index == 0 else "compared",
        "model": {"path": str(run.model_path), "sha256": record.model_sha256, "format": model_format(run.model_path)},
        "target": run.target.label,
        **dataclasses.asdict(record.model),
        "device": {
            "python": device.python,
            "machine": device.machine,
            "system": device.system,
            "cpu_count": device.cpu_count,
            "memory_total_bytes": device.memory_total_bytes,
        },
        "latency_ms": latency_summary(record.latency, record.stored_latency),
        "peak_memory_bytes": record.peak_memory_bytes,
        "batches": dataclasses.asdict(record.batches),
    }


def _group_entry(group: GroupDisparity, runs: Sequence[Run]) -> dict[str, Any]:
    return {
        "name": group.name,
        "n": group.n,
        "n_speakers": group.n_speakers,
        "in_rb": group.in_rb,
        "reference_correct": group.reference_correct,
        "runs": [
            {
                "run": run.label,
                "metric": group.values[i],
                "flips": None if i == 0 else group.flips[i],
                "flip_rate": None if i == 0 else group.flip_rate(i),
                "forgotten": None if i == 0 else group.forgotten[i],
                "forgotten_share": None if i == 0 else group.forgotten_share(i),
            }
            for i, run in enumerate(runs)
        ],
    }


def comparison_section(
    runs: Sequence[Run],
    records: Sequence[RunRecord],
    disparity: DisparityFrame,
    frontend: Sequence[dict[str, Any] | None] | None = None,
) -> dict[str, Any]:
    """The report's ``comparison``: runs with latency and memory (and ``frontend`` parity, per run, from
    ``frontend_parity``), then per attribute the per-group agreement."""
    entries = [_run_entry(i, run, record) for i, (run, record) in enumerate(zip(runs, records, strict=True))]
    for entry, parity in zip(entries, frontend or [None] * len(entries), strict=True):
        entry["frontend_on_target"] = parity
    return {
        "reference": runs[0].label,
        "metric": disparity.metric,
        "runs": entries,
        "overall": _group_entry(disparity.overall, runs),
        "attributes": [
            {
                "name": attribute.name,
                "columns": attribute.columns,
                "resampling": attribute.resampling,
                "rb": [
                    {
                        "run": run.label,
                        "value": bias.rb,
                        "difference": bias.difference,
                        "ci": None if bias.ci is None else list(bias.ci),
                        "bootstrap_undefined_share": bias.bootstrap_undefined_share,
                    }
                    for run, bias in zip(runs, attribute.rb, strict=True)
                ],
                "groups": [_group_entry(group, runs) for group in attribute.groups],
            }
            for attribute in disparity.attributes
        ],
    }


def tflm_pairs(runs: Sequence[Run], records: Sequence[RunRecord]) -> list[tuple[int, int]]:
    """(TFLM run, other run) index pairs: every run of a file on another runtime, against that file on TFLM."""
    on_tflm = [i for i, record in enumerate(records) if record.model.runtime == "tflm"]
    return [
        (t, other)
        for t in on_tflm
        for other, record in enumerate(records)
        if record.model.runtime != "tflm" and runs[other].model_path == runs[t].model_path
    ]


def against_tflm(
    runs: Sequence[Run], records: Sequence[RunRecord], compared: Sequence[tuple[int, int, DisparityFrame]]
) -> list[dict[str, Any]]:
    """Per (TFLM run, other run, their disparity with TFLM first): the clips and, per group, the share of clips
    whose decision differs from TFLM's."""

    def flips(group: GroupDisparity) -> dict[str, Any]:
        return {"name": group.name, "n": group.n, "flips": group.flips[1], "flip_rate": group.flip_rate(1)}

    return [
        {
            "run": runs[other].label,
            "tflm_run": runs[t].label,
            "runtime": records[other].model.runtime,
            "kernels": records[other].model.kernels,
            "delegate": records[other].model.delegate,
            **{key: value for key, value in flips(disparity.overall).items() if key != "name"},
            "attributes": [
                {"name": attribute.name, "groups": [flips(group) for group in attribute.groups]}
                for attribute in disparity.attributes
            ],
        }
        for t, other, disparity in compared
    ]


def tflm_warning(entry: dict[str, Any]) -> str | None:
    """The report's warning when a run decides differently from TFLM on some clips; None when it never does."""
    if not entry["flips"]:
        return None
    how = " with ".join(part for part in (entry["kernels"] and f"{entry['kernels']} kernels",
                                          entry["delegate"] and f"delegate {entry['delegate']}") if part)  # fmt: skip
    groups = "; ".join(
        f"{attribute['name']}: "
        + ", ".join(f"{group['name']} {group['flip_rate']:.1%} ({group['flips']} of {group['n']})"
                    for group in attribute["groups"])  # fmt: skip
        for attribute in entry["attributes"]
    )
    return (
        f"{entry['run']}, on {how or entry['runtime']}, decides differently from TFLite Micro ({entry['tflm_run']}) on "
        f"{entry['flips']} of {entry['n']} clips ({entry['flip_rate']:.1%}); per group: {groups}. A microcontroller "
        "computes what TFLM computes: do not ship on this run's per-group numbers (audit on tflm, or litert-ref)"
    )
