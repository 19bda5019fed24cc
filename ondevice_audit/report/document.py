"""The JSON report: one versioned document that every output format, the gate and `report` read.

Its shape is written down as a JSON Schema in ``report/schema/report-v1.schema.json``; ``validate`` checks a
document against it, and tests validate every report the tool writes.
"""

from __future__ import annotations

import dataclasses
import json
import platform
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jsonschema

from ondevice_audit import __version__
from ondevice_audit._json_schema import load_schema, validate_against
from ondevice_audit.errors import UsageError
from ondevice_audit.metrics import METRICS, AttributeResult, GroupMetricFrame
from ondevice_audit.metrics.definitions import DETECTION_METRICS

if TYPE_CHECKING:
    from ondevice_audit.metrics.detection import DetectionFrame

__all__ = ["SCHEMA_VERSION", "build_report", "load_report", "schema", "to_json", "validate"]

SCHEMA_VERSION = "1.2"
"""1.1 added the optional ``detection`` section (``--task detect``); per attribute, RB's mean over groups
(``rb.mean``, ``rb.mean_ci``, ``rb.groups``), its permutation mean and the largest gap between groups (``gap``); per
group ``support`` and ``left_out``; ``samples.inputs``; per comparison run latency p99 and ``frontend_on_target``.
1.2 the kernels, delegate, threads and graph optimization of the model and of every compared run,
``comparison.against_tflm`` and the ``label_map`` setting. Every 1.x document is a valid 1.2 one."""
_SUPPORTED_MAJOR = "1"


_SCHEMA = ("ondevice_audit.report", "schema/report-v1.schema.json")


def schema() -> dict[str, Any]:
    return load_schema(*_SCHEMA)


def validate(document: dict[str, Any]) -> None:
    """Raise ``jsonschema.ValidationError`` when ``document`` does not follow the schema."""
    validate_against(document, *_SCHEMA)


def load_report(path: Path) -> dict[str, Any]:
    """Read a report written by this tool; a user error for anything else (or a schema we do not know)."""
    if not path.is_file():
        raise UsageError(f"report not found: {path}; check the path")
    try:
        document = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(
            f"{path}: not a JSON report ({exc}); give a report.json written by score, audit or sweep"
        ) from None
    version = str(document.get("schema_version", "")) if isinstance(document, dict) else ""
    if version.split(".")[0] != _SUPPORTED_MAJOR:
        raise UsageError(
            f"{path}: report schema version {version or '(none)'} is not one this tool reads ({SCHEMA_VERSION}); "
            "regenerate it with this version of ondevice-audit"
        )
    try:
        validate(document)
    except jsonschema.ValidationError as exc:
        raise UsageError(f"{path}: invalid report: {exc.message}; regenerate it with score, audit or sweep") from None
    return document


def _interval(ci: tuple[float, float] | None) -> list[float] | None:
    return None if ci is None else [ci[0], ci[1]]


def _attribute_section(attribute: AttributeResult) -> dict[str, Any]:
    return {
        "name": attribute.name,
        "columns": attribute.columns,
        "resampling": attribute.resampling,
        "worst_group": attribute.worst_group,
        "rb": {
            "value": attribute.rb.value,
            "ci": _interval(attribute.rb.ci),
            "p_value": attribute.rb.p_value,
            "undefined_reason": attribute.rb.undefined_reason,
            "bootstrap_undefined_share": attribute.rb.bootstrap_undefined_share,
            "permutations_used": attribute.rb.permutations_used,
            "groups": attribute.rb.groups,
            "mean": attribute.rb.mean,
            "mean_ci": _interval(attribute.rb.mean_ci),
            "permutation_mean": attribute.rb.permutation_mean,
        },
        "gap": {
            "value": attribute.gap.value,
            "ci": _interval(attribute.gap.ci),
            "high": attribute.gap.high,
            "low": attribute.gap.low,
            "undefined_reason": attribute.gap.undefined_reason,
        },
        "groups": [
            {
                "name": g.name,
                "n": g.n,
                "n_speakers": g.n_speakers,
                "support": g.support,
                "metrics": g.metrics,
                "ci": _interval(g.ci),
                "log_ratio": g.log_ratio,
                "in_rb": g.in_rb,
                "left_out": g.left_out,
            }
            for g in attribute.groups
        ],
    }


def build_report(
    *,
    command: str,
    frame: GroupMetricFrame | DetectionFrame,
    inputs: list[dict[str, str]],
    settings: dict[str, Any],
    samples: dict[str, Any],
    warnings: list[str],
    model: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Assemble the report from a computed frame. Everything in it is plain JSON."""
    from ondevice_audit.metrics.detection import DetectionFrame

    # frr, far and precision are both a classifier's and a detector's metric, defined differently
    definition = DETECTION_METRICS[frame.metric] if isinstance(frame, DetectionFrame) else METRICS[frame.metric]
    attributes = [_attribute_section(attribute) for attribute in frame.attributes]
    return {
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "ondevice-audit", "version": __version__, "python": platform.python_version()},
        "command": command,
        "inputs": inputs,
        "settings": settings,
        "metric": {
            "name": frame.metric,
            "description": definition.description,
            "higher_is_better": definition.higher_is_better,
        },
        "model": model,
        "samples": samples,
        "overall": {
            "n": int(len(frame.y_true)),
            "n_speakers": None if frame.speakers is None else int(len(set(map(str, frame.speakers)))),
            "metrics": frame.overall,
            "ci": _interval(frame.overall_ci),
        },
        "attributes": attributes,
        "warnings": warnings,
    }


def to_json(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False, default=_plain) + "\n"


def _plain(value: object) -> object:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")
