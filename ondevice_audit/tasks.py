"""What a model's outputs mean, and so how its runs are scored: a classifier's classes or a detector's phrase.

A *classifier* (the bundled DS-CNN) has one output per class; a clip's prediction is the class with the
highest score (as a data label, through the ``--label-map`` when the model names its classes otherwise), scored
per group by ``GroupMetricFrame`` (MCC by default). A *detector* (a wake word) has one
probability for one phrase; clips whose label is ``positive_label`` are positives, every other clip a negative,
and a clip is accepted when its probability reaches the one threshold, scored per group by ``DetectionFrame``
(detection rate by default). ``audit``, ``score`` and every sweep cell score through one of these two, so the
meaning of an output is decided in one place.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ondevice_audit.errors import UsageError
from ondevice_audit.label_map import LabelMap
from ondevice_audit.metrics.definitions import METRICS, DetectorMetric, MetricDefinition
from ondevice_audit.metrics.detection import DETECTION_METRICS, DetectionFrame, OperatingPoint
from ondevice_audit.runtimes.interface import LoadedModel
from ondevice_audit.runtimes.streaming import DetectorOutput
from ondevice_audit.scoring import ScoreOptions, check_label_spellings, disparity_frame, metric_frame, speakers_of

if TYPE_CHECKING:
    import pandas as pd

    from ondevice_audit.metrics import GroupMetricFrame
    from ondevice_audit.metrics.disparity import DisparityFrame

__all__ = ["TASKS", "ClassifierTask", "Decisions", "DetectorTask", "single_output_refusal"]

TASKS = ("classify", "detect")


def single_output_refusal(what: str) -> UsageError:
    """The one line for a single score audited as classes: argmax over one column is always the same class."""
    return UsageError(
        f"{what} has a single output, so it is a detector, not a classifier (argmax over one column predicts the "
        "same class for every clip): audit it with --task detect --positive-label LABEL, or score its outputs "
        "with `score --task detect --positive-label LABEL --threshold T`"
    )


@dataclass(frozen=True)
class Decisions:
    """Runs over one table as discrete decisions, the form paired comparisons count (``audit --reference``,
    a sweep's baseline and mitigation comparisons): predicted classes, or a detector's accept/reject."""

    table: pd.DataFrame
    """The scored rows; ``label`` holds the truth in the decisions' terms."""
    runs: list[np.ndarray]
    options: ScoreOptions
    metric_function: Callable[[np.ndarray], np.ndarray] | None = None
    """Of confusion matrices ``[..., K, K]`` over the sorted decision names; None: ``options.metric``'s."""
    metric_support: tuple[Callable[[np.ndarray], np.ndarray], str] | None = None
    """The clips ``metric_function`` rests on, counted from confusion matrices, and their name."""
    thresholds: list[float] | None = None
    """A detector's: the threshold each run was decided at (None for a classifier)."""

    def disparity(self) -> DisparityFrame:
        return disparity_frame(self.table, self.runs, self.options, self.metric_function, self.metric_support)


@dataclass(frozen=True)
class ClassifierTask:
    labels: tuple[str, ...]
    """Class names in output order."""
    label_map: LabelMap | None = None
    """Model class -> the data label its predictions count as (``--label-map``); None: the names are the labels."""
    name: str = "classify"
    output_column: str = "prediction"
    """Where a predictions file holds a clip's output (the predicted class)."""

    def __post_init__(self) -> None:
        if self.label_map is not None:  # a map naming a class the model does not have is refused up front
            self.label_map.apply(self.labels)

    @property
    def decisions(self) -> tuple[str, ...]:
        """The data label each output stands for, in output order (a ``UsageError`` for a map naming a class
        the model does not have)."""
        return self.labels if self.label_map is None else self.label_map.apply(self.labels)

    @property
    def names(self) -> tuple[str, ...]:
        """The label names the data is compared with (checked against the data's spellings)."""
        return self.decisions

    def resolve(self, options: ScoreOptions) -> ScoreOptions:
        from ondevice_audit.metrics.definitions import metric_name

        return dataclasses.replace(options, metric=metric_name(options.metric or "mcc"))

    def metric(self, name: str) -> MetricDefinition:
        """The definition of a (resolved) metric name: frr, far and precision mean one thing for a classifier
        and another for a detector."""
        return METRICS[name]

    def check_output(self, model: LoadedModel) -> None:
        width = model.output_shape[-1] if model.output_shape else None
        if width == 1 and len(self.labels) != 1:
            raise single_output_refusal("the model")
        if width is not None and width != len(self.labels):
            raise UsageError(f"the model has {width} outputs but {len(self.labels)} label names")

    def check_data(self, labels: Sequence[str]) -> None:
        from ondevice_audit.data import DataError

        unknown = sorted(set(labels) - set(self.decisions))
        if unknown and self.label_map is not None:  # "y=YES" onto "yes": the spelling is the problem, said so
            check_label_spellings({*labels, *self.decisions}, f"{self.label_map.source} and the data's labels")
            raise DataError(f"labels in the data that no model class maps to: {', '.join(unknown)} ({self.label_map.source}"
                            f" leads to {', '.join(sorted(set(self.decisions)))})")  # fmt: skip
        if unknown:
            raise DataError(f"labels in the data that the model does not know: {', '.join(unknown)} (its classes: "
                            f"{', '.join(self.labels)}); leave those rows out, pass --labels FILE if the model's label "
                            "names are wrong, or --label-map MODEL=DATA to map them onto the data's")  # fmt: skip

    def data_warnings(self, labels: Sequence[str]) -> list[str]:
        """What the label map leads to that the data lacks: predictions of it are always wrong."""
        if self.label_map is None:
            return []
        unused = self.label_map.unused(labels)
        return [f"{self.label_map.source} maps classes onto {', '.join(map(repr, unused))}, not a label in the data: "
                "clips predicted as it count as wrong"] if unused else []  # fmt: skip

    def outputs(self, scores: np.ndarray) -> np.ndarray:
        """Each row's predicted label: its highest-scoring class, as a data label; "" for rows not scored."""
        predicted = np.full(len(scores), "", dtype=object)
        finite = np.isfinite(scores).all(axis=1) if scores.shape[1] else np.zeros(len(scores), dtype=bool)
        predicted[finite] = np.asarray(self.decisions, dtype=object)[scores[finite].argmax(axis=1)]
        return predicted

    def frame(self, table: pd.DataFrame, outputs: np.ndarray, options: ScoreOptions) -> GroupMetricFrame:
        return metric_frame(table.assign(prediction=outputs.astype(str)), options)

    def decided(self, table: pd.DataFrame, runs: list[np.ndarray], options: ScoreOptions) -> Decisions:
        return Decisions(table, [run.astype(str) for run in runs], options)

    def disparity(self, table: pd.DataFrame, runs: list[np.ndarray], options: ScoreOptions) -> DisparityFrame:
        return self.decided(table, runs, options).disparity()

    def settings(self) -> dict[str, Any]:
        return {"task": self.name, "label_map": None if self.label_map is None else self.label_map.as_dict()}

    def section(self, frame: GroupMetricFrame | DetectionFrame) -> dict[str, Any] | None:
        return None


@dataclass(frozen=True)
class DetectorTask:
    positive_label: str
    point: OperatingPoint
    output: DetectorOutput = DetectorOutput()
    clip_seconds: float | None = None
    """Seconds of audio each clip gives the model (padding included), for false accepts per hour."""
    name: str = "detect"
    output_column: str = "score"
    """Where a predictions file holds a clip's output (the probability)."""

    @property
    def names(self) -> tuple[str, ...]:
        return (self.positive_label,)

    def resolve(self, options: ScoreOptions) -> ScoreOptions:
        metric = options.metric or "tpr"
        if metric not in DETECTION_METRICS:
            alias = {"recall": "tpr (the detection rate)"}.get(metric, "")
            hint = f"; for a detector read {alias}" if alias else ""
            raise UsageError(
                f"{metric} is not a detector metric: choose one of {', '.join(DETECTION_METRICS)}{hint}"
            )
        return dataclasses.replace(options, metric=metric)

    def metric(self, name: str) -> DetectorMetric:
        return DETECTION_METRICS[name]

    def check_output(self, model: LoadedModel) -> None:
        width = model.output_shape[-1] if model.output_shape else None
        if width is not None and self.output.column >= width:
            raise UsageError(
                f"the model's output has {width} columns: a detector's is one probability (or a two-class softmax "
                "with --labels naming its classes); choose the output with --output NAME|INDEX"
            )

    def check_data(self, labels: Sequence[str]) -> None:
        present = sorted(set(labels))
        if self.positive_label not in present:
            shown = ", ".join(present[:12]) + (" ..." if len(present) > 12 else "")
            raise UsageError(f"--positive-label {self.positive_label!r} is not a label in the data ({shown})")

    def data_warnings(self, labels: Sequence[str]) -> list[str]:
        return []

    def outputs(self, scores: np.ndarray) -> np.ndarray:
        """Each row's probability (NaN for rows that were not scored)."""
        probability = np.full(len(scores), np.nan)
        finite = np.isfinite(scores).all(axis=1) if scores.shape[1] else np.zeros(len(scores), dtype=bool)
        if finite.any():
            probability[finite] = self.output.probability(scores[finite])
        return probability

    def frame(self, table: pd.DataFrame, outputs: np.ndarray, options: ScoreOptions) -> DetectionFrame:
        from ondevice_audit.metrics.detection import DetectionFrame

        if not options.groups:
            raise UsageError("name at least one group column with --group")
        durations = self._durations(table)
        return DetectionFrame(
            positive=(table["label"].astype(str) == self.positive_label).to_numpy(),
            scores=np.asarray(outputs, dtype=np.float64),
            sensitive_features=table[list(options.groups)],
            point=self.point,
            metric=str(options.metric),
            speakers=speakers_of(table),
            durations=durations,
            **options.frame_settings(),
        )

    def _durations(self, table: pd.DataFrame) -> np.ndarray | None:
        if "duration" in table.columns:
            return table["duration"].to_numpy(dtype=np.float64)
        if self.clip_seconds is not None:
            return np.full(len(table), self.clip_seconds)
        return None

    def accepted(self, table: pd.DataFrame, probabilities: np.ndarray) -> tuple[np.ndarray, float]:
        """Accepted or not at this run's threshold: the given one, or chosen on this run's own negatives."""
        probabilities = np.asarray(probabilities, dtype=np.float64)  # a predictions file read as strings
        negative = (table["label"].astype(str) != self.positive_label).to_numpy()
        seconds = self._durations(table)
        seconds = np.full(len(table), np.nan) if seconds is None else seconds
        threshold = float(self.point.choose(probabilities[negative], np.ones((1, int(negative.sum()))),
                                             seconds[negative])[0])  # fmt: skip
        return np.where(probabilities >= threshold, "positive", "negative"), threshold

    def decided(self, table: pd.DataFrame, runs: list[np.ndarray], options: ScoreOptions) -> Decisions:
        """Each run's accept decisions against the truth ``positive``/``negative``, counted by the detector
        metric (the negative audio given by the clips' mean duration: every clip of an audit is as long)."""
        truth = np.where(table["label"].astype(str) == self.positive_label, "positive", "negative")
        seconds = self._durations(table)
        mean_negative = float(np.mean(seconds[truth == "negative"])) if seconds is not None else np.nan
        metric = DETECTION_METRICS[str(options.metric)]
        accepted = [self.accepted(table, run) for run in runs]
        return Decisions(table.assign(label=truth), [decisions for decisions, _ in accepted],
                         dataclasses.replace(options, negative_labels=("negative",)),
                         _binary(metric.function, mean_negative), _binary_support(metric.basis),
                         [threshold for _, threshold in accepted])  # fmt: skip

    def disparity(self, table: pd.DataFrame, runs: list[np.ndarray], options: ScoreOptions) -> DisparityFrame:
        """Flips of the accept decision between runs, and the paired change in RB of the detector metric."""
        return self.decided(table, runs, options).disparity()

    def settings(self) -> dict[str, Any]:
        return {"task": self.name, "positive_label": self.positive_label, **dataclasses.asdict(self.point),
                "output_is_logit": self.output.logit}  # fmt: skip

    def section(self, frame: GroupMetricFrame | DetectionFrame) -> dict[str, Any]:
        """The report's ``detection`` section: the threshold and how it was set, counts, EER and DET curves."""
        assert isinstance(frame, DetectionFrame)  # what this task's frame() makes
        return {
            "positive_label": self.positive_label,
            "threshold": {"value": frame.threshold, "chosen_by": self.point.describe(),
                          "ci": None if frame.threshold_ci is None else list(frame.threshold_ci)},  # fmt: skip
            **frame.counts,
            "durations": "the duration column" if frame.durations is not None and self.clip_seconds is None
            else (None if frame.durations is None else f"{self.clip_seconds:g} s of audio per clip"),
            "eer": frame.overall.get("eer"),
            "attributes": [
                {"name": name, "groups": [_curve(curve) for curve in curves]} for name, curves in frame.curves.items()
            ],
        }


def _curve(curve: Any) -> dict[str, Any]:
    return {
        "name": curve.name,
        "positives": curve.positives,
        "negatives": curve.negatives,
        "eer": curve.eer,
        "eer_ci": None if curve.eer_ci is None else list(curve.eer_ci),
        "det": [list(point) for point in curve.det],
        "fa_per_hour": curve.fa_per_hour,
        "operating_point": None if curve.operating_point is None else list(curve.operating_point),
    }


def _binary_support(basis: str) -> tuple[Callable[[np.ndarray], np.ndarray], str]:
    """Counts of the clips a detector metric rests on, from binary confusion matrices (negative, positive)."""

    def count(cms: np.ndarray) -> np.ndarray:
        if cms.shape[-1] != 2:
            return cms.sum(axis=(-1, -2)) * 0.0
        return {"positives": cms[..., 1, :].sum(axis=-1), "negatives": cms[..., 0, :].sum(axis=-1),
                "accepted": cms[..., :, 1].sum(axis=-1)}[basis]  # fmt: skip

    return count, basis


def _binary(function: Any, mean_negative_seconds: float) -> Any:
    """A detector metric of binary confusion matrices ``[..., 2, 2]`` (negative, positive), the negative audio
    given by the clips' mean duration (every clip of an audit is as long)."""

    def metric(cms: np.ndarray) -> np.ndarray:
        if cms.shape[-1] != 2:  # only one of the two decisions occurs: no rate is defined against the other
            return np.full(cms.shape[:-2], np.nan)
        negatives = cms[..., 0, 0] + cms[..., 0, 1]
        stats = np.stack([cms[..., 1, 1], cms[..., 1, 0], cms[..., 0, 1], cms[..., 0, 0],
                          negatives * mean_negative_seconds], axis=-1)  # fmt: skip
        return function(stats)

    return metric
