"""The report document as Python types: the JSON Schema (``schema/report-v1.schema.json``) for the type checker.

Every function that builds or reads a report takes these, so a key renamed in one place and not in another is
a type error (``make lint`` runs mypy), not a ``KeyError`` in a user's CI. ``validate`` still checks documents
read from disk against the schema itself; tests check that both describe the same document.
"""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict

__all__ = [
    "Attribute",
    "Bias",
    "Comparison",
    "Detection",
    "Failure",
    "Gap",
    "Group",
    "InputFile",
    "MetricInfo",
    "ModelSection",
    "Overall",
    "Report",
    "Samples",
    "Settings",
    "Tool",
]


class Tool(TypedDict):
    name: str
    version: str
    python: str


class InputFile(TypedDict):
    role: str
    path: str
    sha256: str


class Settings(TypedDict, total=False):
    """Scoring settings are always there; each command adds its own (runtime, targets, split, sweep...)."""

    metric: str
    groups: list[str]
    negative_labels: list[str]
    min_group_size: int
    bootstrap: int
    permutations: int
    seed: int
    confidence: float
    split_file: str | None
    split: str | None
    max_samples_per_group: int | None
    threshold: float
    runtime: str
    targets: list[str]
    reference: str | None
    batch_size: int
    sweep: dict[str, Any]


class MetricInfo(TypedDict):
    name: str
    description: str
    higher_is_better: bool


class ModelSection(TypedDict):
    path: str
    format: str
    size_bytes: int
    sha256: str
    runtime: str
    runtime_version: str
    input_shape: list[int | None]
    input_dtype: NotRequired[str]
    output_shape: list[int | None]
    output_dtype: NotRequired[str]
    labels: list[str]
    frontend: str
    seconds_per_sample: float
    kernels: NotRequired[str | None]
    delegate: NotRequired[str | None]
    threads: NotRequired[int | None]
    graph_optimization: NotRequired[str | None]
    metadata: NotRequired[dict[str, Any] | None]
    target: NotRequired[str]
    device: NotRequired[dict[str, Any]]
    mcu: NotRequired[dict[str, Any] | None]


class Failure(TypedDict):
    path: NotRequired[str]
    row: NotRequired[str]
    reason: str


class Samples(TypedDict):
    total: int
    scored: int
    failed: int
    failures: list[Failure]
    layout: NotRequired[str]
    inputs: NotRequired[dict[str, Any]]
    """(1.1) Clips cut, padded, resampled or mixed to mono to fit the front-end, counted; images resized,
    stretched to another aspect ratio or converted from another colour mode."""


class Overall(TypedDict):
    n: int
    n_speakers: int | None
    metrics: dict[str, float | None]
    ci: list[float] | None


class Bias(TypedDict):
    value: float | None
    ci: list[float] | None
    p_value: float | None
    undefined_reason: str | None
    bootstrap_undefined_share: NotRequired[float | None]
    permutations_used: NotRequired[int]
    groups: NotRequired[int]
    """(1.1) Groups in RB."""
    mean: NotRequired[float | None]
    """(1.1) RB divided by the groups in it."""
    mean_ci: NotRequired[list[float] | None]
    permutation_mean: NotRequired[float | None]


class Gap(TypedDict):
    """(1.1) The highest metric of a group in RB minus the lowest."""

    value: float | None
    ci: list[float] | None
    high: str | None
    low: str | None
    undefined_reason: str | None


class Group(TypedDict):
    name: str
    n: int
    n_speakers: int | None
    support: NotRequired[int]
    """(1.1) Clips the chosen metric rests on."""
    metrics: dict[str, float | None]
    ci: list[float] | None
    log_ratio: float | None
    in_rb: bool
    left_out: NotRequired[str | None]
    """(1.1) Why the group is not in RB."""


class Attribute(TypedDict):
    name: str
    columns: list[str]
    resampling: str
    worst_group: str | None
    rb: Bias
    gap: NotRequired[Gap]
    groups: list[Group]


class Comparison(TypedDict):
    reference: str
    metric: str
    runs: list[dict[str, Any]]
    overall: dict[str, Any]
    attributes: list[dict[str, Any]]
    against_tflm: NotRequired[list[dict[str, Any]]]


class Detection(TypedDict):
    positive_label: str
    threshold: dict[str, Any]
    positives: int
    negatives: int
    durations: NotRequired[str | None]
    eer: NotRequired[float | None]
    stream: NotRequired[dict[str, Any] | None]
    attributes: list[dict[str, Any]]


class Report(TypedDict):
    schema_version: str
    tool: Tool
    command: str
    inputs: list[InputFile]
    settings: Settings
    metric: MetricInfo
    model: ModelSection | None
    samples: Samples
    overall: Overall
    attributes: list[Attribute]
    warnings: list[str]
    comparison: NotRequired[Comparison]
    detection: NotRequired[Detection]
