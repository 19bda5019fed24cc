"""The report's ``comparison`` section: several runs of a model on the same clips, side by side.

The first run is the reference that flips, forgotten clips and RB differences are measured against (see
``metrics/disparity.py``); the runs themselves are planned and executed by ``targets/runs.py``.

When TFLite Micro is one of the runs, every other run of the same file is also measured against it
(``against_tflm``): a microcontroller computes what TFLM computes, so a desktop runtime whose decisions differ
from TFLM's gives per-group numbers no board reproduces, and the report warns with the per-group flip rates.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from ondevice_audit._files import model_format
from ondevice_audit.metrics.disparity import DisparityFrame, GroupDisparity
from ondevice_audit.targets.runs import Run, RunRecord

__all__ = ["against_tflm", "comparison_section", "tflm_pairs", "tflm_warning"]


def _latency(seconds: np.ndarray) -> dict[str, float] | None:
    if not len(seconds):
        return None
    milliseconds = seconds * 1000
    return {
        "median": float(np.median(milliseconds)),
        "p90": float(np.quantile(milliseconds, 0.9)),
        "mean": float(milliseconds.mean()),
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
        "latency_ms": _latency(record.latency),
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


def comparison_section(runs: Sequence[Run], records: Sequence[RunRecord], disparity: DisparityFrame) -> dict[str, Any]:
    """The report's ``comparison``: runs with latency and memory, then per attribute the per-group agreement."""
    return {
        "reference": runs[0].label,
        "metric": disparity.metric,
        "runs": [_run_entry(i, run, record) for i, (run, record) in enumerate(zip(runs, records, strict=True))],
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
