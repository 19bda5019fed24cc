"""Predictions made anywhere (a device farm, another tool), read for ``score``.

Layouts of a classifier's predictions, tried in this order:

1. a ``prediction`` column with predicted labels;
2. one ``score_<label>`` column per class (two or more): the prediction is the label with the highest score;
3. one ``score`` column with 1/0 (or true/false) labels: predicted ``1`` when ``score >= threshold``, and
   ``0`` is the negative label for FRR/FAR (kept for files written that way; ``--task detect`` gives the
   detector's own metrics).

A detector's (``read_detector_scores``, for ``score --task detect``): ``label`` (the phrase's clips carry the
positive label), ``score`` (its probability) and optionally ``duration`` (seconds, for false accepts per hour).

Rows whose label is empty or whose scores are not numbers are counted as failures, not dropped silently.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ondevice_audit._files import sha256_of
from ondevice_audit.data.interface import DataError, check_group_columns
from ondevice_audit.data.tables import read_numbered_table

__all__ = ["Predictions", "read_detector_scores", "read_predictions"]

SCORE_PREFIX = "score_"
_BINARY = {"1": "1", "0": "0", "true": "1", "false": "0", "yes": "1", "no": "0"}


@dataclass
class Predictions:
    source: Path
    frame: pd.DataFrame
    """``label``, ``prediction``, optional ``speaker``, group columns; only rows that could be scored."""
    layout: str
    sha256: str
    failures: list[dict[str, str]] = field(default_factory=list)
    """``{"row": ..., "reason": ...}`` for rows that could not be scored."""
    negative_labels: list[str] = field(default_factory=list)
    """Labels implied by the layout (binary: ``0``)."""
    classes: tuple[str, ...] = ()
    """The classes the predictions are made of: the ``score_<label>`` columns' labels (the model's classes), else
    every value predicted (binary: ``0``, ``1``); what ``score --label-map`` may name."""


def read_predictions(path: Path, groups: list[str], threshold: float = 0.5) -> Predictions:
    frame, lines = read_numbered_table(path)
    if "label" not in frame.columns:
        raise DataError(
            f"{path}: missing column label; the first line must name the columns (label, prediction or score columns, groups)"
        )
    score_columns = [c for c in frame.columns if c.startswith(SCORE_PREFIX)]
    reserved = {"label", "prediction", "score", "speaker", *score_columns}
    check_group_columns(frame, groups, path, reserved)
    failures: dict[int, str] = {}
    for row in np.flatnonzero(frame["label"].str.strip().eq("").to_numpy()):
        failures[int(row)] = "empty label"

    negatives: list[str] = []
    if "prediction" in frame.columns:
        layout = "prediction column"
        prediction = frame["prediction"]
        for row in np.flatnonzero(prediction.str.strip().eq("").to_numpy()):
            failures.setdefault(int(row), "empty prediction")
    elif score_columns:
        if len(score_columns) == 1:
            raise DataError(
                f"{path}: a single {score_columns[0]} column is one detector's score, not a class per column "
                "(argmax over one column predicts the same class for every row): name it score and use "
                "score --task detect --positive-label LABEL --threshold T"
            )
        layout = f"{len(score_columns)} score_<label> columns (argmax)"
        scores = frame[score_columns].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
        bad = ~np.isfinite(scores).all(axis=1)
        for row in np.flatnonzero(bad):
            failures.setdefault(int(row), "a class score is not a number")
        names = np.array([c[len(SCORE_PREFIX) :] for c in score_columns])
        prediction = pd.Series(names[np.nan_to_num(scores, nan=-np.inf).argmax(axis=1)], index=frame.index)
    elif "score" in frame.columns:
        layout = f"binary score column, threshold {threshold:g}"
        normalised = frame["label"].str.strip().str.lower().map(_BINARY)
        unknown = sorted(set(frame.loc[normalised.isna() & frame["label"].ne(""), "label"]))
        if unknown:
            raise DataError(f"{path}: a binary score column needs labels 1/0 or true/false; found {unknown[:5]}")
        frame = frame.assign(label=normalised.fillna(""))
        score = pd.to_numeric(frame["score"], errors="coerce")
        for row in np.flatnonzero(score.isna().to_numpy()):
            failures.setdefault(int(row), "score is not a number")
        prediction = pd.Series(np.where(score >= threshold, "1", "0"), index=frame.index)
        negatives = ["0"]
    else:
        raise DataError(f"{path}: no predictions: add a prediction column, score_<label> columns or a score column")

    keep = np.ones(len(frame), dtype=bool)
    keep[list(failures)] = False
    columns = list(dict.fromkeys(["label", *groups] + (["speaker"] if "speaker" in frame.columns else [])))
    scored = frame.loc[keep, columns].assign(prediction=prediction[keep].to_numpy()).reset_index(drop=True)
    if scored.empty:
        first = failures[min(failures)]
        raise DataError(
            f"{path}: no row could be scored ({len(failures)} failed, the first on line {lines[min(failures)]}: "
            f"{first}); fix the label and prediction columns"
        )
    failure_list = [{"row": str(lines[r]), "reason": failures[r]} for r in sorted(failures)]
    if layout.startswith("binary"):
        classes: tuple[str, ...] = ("0", "1")
    elif "prediction" in frame.columns:
        classes = tuple(sorted(set(scored["prediction"])))
    else:
        classes = tuple(str(name) for name in names)
    return Predictions(path, scored, layout, sha256_of(path), failure_list, negatives, classes)


def read_detector_scores(path: Path, groups: list[str]) -> Predictions:
    """A detector's scores: ``label``, ``score`` (a probability), optional ``duration`` and ``speaker``."""
    frame, lines = read_numbered_table(path)
    missing = [c for c in ("label", "score") if c not in frame.columns]
    if missing:
        raise DataError(f"{path}: a detector's scores need the column(s) {', '.join(missing)} (label, score)")
    check_group_columns(frame, groups, path, {"label", "score", "speaker", "duration", "prediction"})
    failures: dict[int, str] = {}
    for row in np.flatnonzero(frame["label"].str.strip().eq("").to_numpy()):
        failures[int(row)] = "empty label"
    score = pd.to_numeric(frame["score"], errors="coerce")
    for row in np.flatnonzero(~np.isfinite(score.to_numpy(dtype=float))):
        failures.setdefault(int(row), "score is not a number")
    columns = ["label", *groups] + (["speaker"] if "speaker" in frame.columns else [])
    values = {"score": score}
    if "duration" in frame.columns:
        duration = pd.to_numeric(frame["duration"], errors="coerce")
        for row in np.flatnonzero(~(duration.to_numpy(dtype=float) > 0)):
            failures.setdefault(int(row), "duration is not a positive number of seconds")
        values["duration"] = duration
    keep = np.ones(len(frame), dtype=bool)
    keep[list(failures)] = False
    scored = frame.loc[keep, columns].assign(**{k: v[keep].to_numpy(dtype=float) for k, v in values.items()})
    if scored.empty:
        first = min(failures)
        raise DataError(f"{path}: no row could be scored ({len(failures)} failed, the first on line {lines[first]}: "
                        f"{failures[first]}); fix the label and score columns")  # fmt: skip
    failure_list = [{"row": str(lines[r]), "reason": failures[r]} for r in sorted(failures)]
    layout = "detector score column" + (" with durations" if "duration" in values else "")
    return Predictions(path, scored.reset_index(drop=True), layout, sha256_of(path), failure_list)
