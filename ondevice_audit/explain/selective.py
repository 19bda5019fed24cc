"""Selective quantization chosen from data in one step: what a sweep's ``int8-keepN`` cell is.

``explain`` tries candidates and audits them; a sweep cell is one candidate, audited on the test speakers like
every cell, so its layers are chosen on other speakers (the validation split). There the float model and the
int8 model (calibrated as the cell's ``int8`` sibling is, so the two differ only in the layers kept) predict
every clip; the group whose metric int8 lowers most beyond the overall fall is the worse-off group; TF Lite's
debugger measures each layer speaker by speaker (``QuantizationDebug``), and the ``keep`` layers ranked highest
by ``ranking.rank_layers`` stay in float. Fewer are kept when fewer are beyond the bootstrap noise, none when
no group can be named: the facts say so, and the cell is then the plain int8 model.
"""

from __future__ import annotations

import dataclasses
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ondevice_audit.explain.comparison import metric_falls
from ondevice_audit.explain.data import units_of
from ondevice_audit.explain.quantization import QuantizationDebug, keras_flatbuffer
from ondevice_audit.explain.ranking import UnitTable, rank_layers
from ondevice_audit.progress import NullProgress, Progress
from ondevice_audit.scoring import ScoreOptions
from ondevice_audit.tasks import ClassifierTask, DetectorTask

__all__ = ["Selection", "keep_worst_layers"]


@dataclass(frozen=True)
class Selection:
    flatbuffer: bytes
    """The int8 model (int8 I/O) with the chosen layers in float."""
    kept: list[str]
    """Names of the layers kept in float, most harmful first."""
    facts: dict[str, Any]
    """How they were chosen, for the file's metadata and the sweep's export record."""


def _int8_scores(flatbuffer: bytes, inputs: np.ndarray) -> np.ndarray:
    from ondevice_audit.runtimes import load_runtime

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "int8.tflite"
        path.write_bytes(flatbuffer)
        return load_runtime(path).run_all(inputs).scores


def keep_worst_layers(
    keras_model: Any,
    calibration: np.ndarray,
    inputs: np.ndarray,
    frame: pd.DataFrame,
    task: ClassifierTask | DetectorTask,
    options: ScoreOptions,
    keep: int,
    progress: Progress | None = None,
) -> Selection:
    """``keep`` layers chosen on ``inputs`` (rows of ``frame``: ``label``, ``speaker``, ``options.groups[0]``),
    the float and int8 models' outputs decided as ``task`` decides them (a detector at its operating point)."""
    options = task.resolve(options)
    assert options.metric is not None
    debug = QuantizationDebug(keras_flatbuffer(keras_model), calibration)
    int8 = debug.quantize((), integer_io=True)
    float_scores = np.asarray(keras_model.predict(inputs, batch_size=256, verbose=0), dtype=np.float32)
    table = frame.reset_index(drop=True)
    plain = dataclasses.replace(options, bootstrap=0)
    runs = [task.outputs(scores) for scores in (float_scores, _int8_scores(int8, inputs))]
    disparity = task.decided(table, runs, plain).disparity()
    attribute = disparity.attributes[0]
    falls = metric_falls(
        options.metric,
        {g.name: g.values[0] for g in attribute.groups},
        {g.name: g.values[1] for g in attribute.groups},
        (disparity.overall.values[0], disparity.overall.values[1]),
        {g.name: g.in_rb for g in attribute.groups},
    )
    facts: dict[str, Any] = {"attribute": attribute.name, "clips": len(table), "requested": keep}
    if not falls:
        return Selection(int8, [], {**facts, "kept_in_float": [], "reason": f"{options.metric} is undefined"})
    worse = max(falls, key=lambda group: falls[group])
    units, unit_group, group_names = units_of(table, options.groups[0])
    errors = debug.layer_errors(inputs, units, progress or NullProgress())
    included = np.array([{g.name: g.in_rb for g in attribute.groups}[name] for name in group_names])
    unit_table = UnitTable(errors.squared_error, errors.power, np.bincount(units), unit_group, group_names,
                           [layer.scale for layer in errors.layers])  # fmt: skip
    effects = rank_layers(unit_table, group_names.index(worse), included, options.bootstrap, options.seed,
                          options.confidence)  # fmt: skip
    ranked = sorted((e for e in effects if e.rank is not None), key=lambda e: e.rank or 0)[:keep]
    chosen = [errors.layers[e.index] for e in ranked]
    facts.update(
        worse_off_group=worse,
        kept_in_float=[layer.name for layer in chosen],
        gaps_db=[e.gap_db for e in ranked],
        beyond_noise=sum(e.rank is not None for e in effects),
    )
    if len(chosen) < keep:
        facts["reason"] = f"only {len(chosen)} layer(s) hurt {worse} more than the other groups beyond the noise"
    return Selection(debug.quantize([layer.node for layer in chosen], integer_io=True), facts["kept_in_float"], facts)
