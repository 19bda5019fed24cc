"""The explain job: why a compressed variant serves one group worse, and the smallest change that fixes it.

1. Base and variant (and the variant as rebuilt here) run over the audited clips; the variant's RB is compared
   with the base's bootstrap interval, and the *worse-off group* is the one whose metric the variant lowers
   most beyond the overall fall.
2. Per layer and group, the layer's error (``Explainer.layer_errors``: TF Lite's quantization debugger, or the
   pruned layer's output change), speaker by speaker; layers ranked by how much more they hurt the worse-off
   group, with a speaker-bootstrap interval (``ranking.py``). Layers within the noise are not ranked.
3. If the variant's RB is outside the base's interval and some layer is beyond the noise, the top-ranked
   layers are undone one, two, three at a time (kept in float, restored dense); every candidate is audited on
   the same clips with the paired speaker bootstrap, and the smallest whose RB is within the base's interval is
   recommended, with what it costs in bytes and milliseconds.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ondevice_audit.data.manifest import split_file_beside
from ondevice_audit.errors import UsageError
from ondevice_audit.explain.comparison import Comparison, Runs, compare
from ondevice_audit.explain.data import (
    ExplainData,
    SweepCell,
    calibration_inputs,
    read_rows,
    resolve_model,
    sweep_calibration,
    sweep_cell,
    units_of,
)
from ondevice_audit.explain.document import explain_document
from ondevice_audit.explain.interface import Explainer, Layer
from ondevice_audit.explain.ranking import LayerEffect, UnitTable, rank_layers
from ondevice_audit.export.metadata import ModelMetadata, read_metadata
from ondevice_audit.frontend import Frontend
from ondevice_audit.metrics.detection import OperatingPoint
from ondevice_audit.model_io import DetectorOptions, ModelOptions, ReadModel, read_model
from ondevice_audit.progress import NullProgress, Progress
from ondevice_audit.scoring import ScoreOptions
from ondevice_audit.tasks import DetectorTask

__all__ = ["ExplainOptions", "explain_variant"]


@dataclass(frozen=True)
class ExplainOptions:
    out: Path
    """Folder for the candidate files (and the rebuilt variant)."""
    top_layers: int = 3
    """Candidates undo the top 1, 2, ... ``top_layers`` ranked layers."""
    calibration_data: Path | None = None
    """Manifest whose inputs calibrate int8 (as ``export --data`` does); None: the audited manifest, every row."""
    calibration_samples: int = 200
    calibration_seed: int = 0
    latency_samples: int = 20
    """Single-sample calls timed per model (after a warm-up)."""


@dataclass(frozen=True)
class _Models:
    variant: Path
    base: Path
    cell: Path | None
    """The sweep cell folder the variant came from, if it did."""
    model: ReadModel
    """The variant read as ``audit`` reads a model: its task (classes, or a detector's phrase and operating
    point), front-end and how it is opened."""
    metadata: ModelMetadata
    """What the candidates carry: the variant's labels, front-end, task and facts."""

    @property
    def frontend(self) -> Frontend:
        return self.model.frontend


def explain_variant(
    variant: Path,
    base: Path,
    manifest: Path,
    options: ScoreOptions,
    explain: ExplainOptions,
    model_options: ModelOptions | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Explain ``variant`` (a file or sweep cell) against ``base`` on ``manifest``; see the module docstring."""
    progress = progress or NullProgress()
    model_options = model_options or ModelOptions()
    _check_options(options, explain)
    models = _models(variant, base, model_options)
    cell = None if models.cell is None else sweep_cell(models.cell)
    if cell is not None:  # as its sweep scored it, unless the command line says otherwise
        models = dataclasses.replace(models, model=_at_sweeps_point(models.model, cell, model_options.detector))
        options = options if options.metric is not None else dataclasses.replace(options, metric=cell.matrix.data.metric)
    task = models.model.task
    options = task.resolve(options)
    out = _check_output_folder(explain.out, [models.variant, models.base, manifest])
    explainer = _explainer(models, cell, (manifest, options.split_file), explain, model_options.trust_model, progress)
    held_out = None if cell is None else cell.frames["test"]
    data = read_rows(manifest, options, task, models.frontend, progress, held_out)
    out.mkdir(parents=True, exist_ok=True)  # only once the inputs are known good: a refusal writes nothing
    runs = Runs(task, models.model.runtime_options, model_options.batch_size, explain.latency_samples,
                model_options.trust_model)  # fmt: skip
    rebuilt = [("rebuilt", name, path) for name, path in explainer.reference_runs(out)]
    runs.add([("base", base.name, models.base), ("variant", variant.name, models.variant), *rebuilt], data, progress)
    first = compare(runs, data, options)
    worse = first.worse_off()
    layers, effects = _rank(explainer, data, first, worse, options, progress)
    chosen = _to_undo(first, layers, effects, explain.top_layers)
    for k in range(1, len(chosen) + 1):
        undone = chosen[:k]
        path = explainer.candidate(undone, out, f"{explainer.kind}-fix-{k}")
        runs.add([("candidate", f"{', '.join(layer.name for layer in undone)} {explainer.undo}", path)], data,
                 progress)  # fmt: skip
    final = compare(runs, data, options) if chosen else first
    return explain_document(
        explainer=explainer,
        inputs={"variant": models.variant, "base": models.base, "manifest": manifest},
        rows="the sweep's test split" if held_out is not None and options.split_file is None else None,
        data=data,
        options=options,
        comparison=final,
        worse=worse,
        layers=layers,
        effects=effects,
        undone=[[layer.name for layer in chosen[:k]] for k in range(1, len(chosen) + 1)],
        task=task,
    )


def _at_sweeps_point(model: ReadModel, cell: SweepCell, detector: DetectorOptions) -> ReadModel:
    """A detector's sweep cell at its sweep's operating point (``[data] threshold``, ``at_far`` or
    ``at_fa_per_hour``), as the sweep scored it, unless the command line names one."""
    data = cell.matrix.data
    named = (detector.threshold, detector.at_far, detector.at_fa_per_hour) != (None, None, None)
    if named or data.task != "detect" or not isinstance(model.task, DetectorTask):
        return model
    point = OperatingPoint.of(data.threshold, data.at_far, data.at_fa_per_hour)
    return dataclasses.replace(model, task=dataclasses.replace(model.task, point=point))


def _check_options(options: ScoreOptions, explain: ExplainOptions) -> None:
    if not options.groups:
        raise UsageError("name the group column to explain with --group")
    if options.bootstrap < 100:
        raise UsageError(
            "explain tells a layer's effect from noise with the speaker bootstrap: --bootstrap 100 or more"
        )
    if explain.top_layers < 1:
        raise UsageError("--top-layers must be at least 1")
    if explain.latency_samples < 1:
        raise UsageError("--latency-samples must be at least 1")


def _models(variant: Path, base: Path, model_options: ModelOptions) -> _Models:
    """Both models found, and made for the same inputs and outputs; the variant read as ``audit`` reads it."""
    variant_path, base_path = resolve_model(variant, "variant"), resolve_model(base, "base")
    if variant_path.resolve() == base_path.resolve():
        raise UsageError(f"the variant and the base are the same file: {variant_path}")
    _refuse_streaming(variant_path, model_options)
    metadata = read_metadata(variant_path)
    model = read_model(variant_path, metadata, model_options)
    if model.stream is not None:
        raise UsageError(f"{_STATELESS} ({model.stream['chosen']})")
    _check_base(read_metadata(base_path), model)
    cell = variant if variant_path != variant else None
    return _Models(variant_path, base_path, cell, model, _candidate_metadata(metadata, model))


_STATELESS = ("explain needs a stateless model, one call per clip (TF Lite's debugger runs each op once per input): "
              "audit a streaming model with audit --stream")  # fmt: skip


def _refuse_streaming(path: Path, model_options: ModelOptions) -> None:
    """A streaming model (asked with --stream, or holding state in resource variables) is refused before it is
    read: streaming it is what ``read_model`` would set up."""
    from ondevice_audit._files import model_format
    from ondevice_audit.runtimes.tflite_graph import is_stateful

    if model_options.detector.stream:
        raise UsageError(f"{_STATELESS} (asked: --stream)")
    if model_format(path) == "tflite" and is_stateful(path):
        raise UsageError(f"{_STATELESS} (the model keeps state between calls in resource variables)")


def _check_base(base: ModelMetadata | None, model: ReadModel) -> None:
    """What the base's metadata says, where it says it, fits the variant: task, phrase or classes, front-end."""
    if base is None:
        return
    task = model.task
    stated = base.extra.get("task")
    if stated is not None and stated != task.name:
        raise UsageError(f"the base's metadata says task {stated!r}, the variant is read as {task.name!r}")
    phrase = base.extra.get("positive_label")
    if isinstance(task, DetectorTask) and stated == "detect" and phrase and phrase != task.positive_label:
        raise UsageError(f"the base detects {phrase!r}, the variant is read as detecting {task.positive_label!r}")
    labels = list(getattr(task, "labels", ()))
    if labels and base.labels and list(base.labels) != labels:
        raise UsageError(f"the base's labels ({', '.join(base.labels)}) differ from the variant's")
    spec = getattr(model.frontend, "spec", None)
    if base.frontend and spec is not None and base.frontend != spec:
        raise UsageError("the base was made for other inputs than the variant (their front-end settings differ)")


def _candidate_metadata(metadata: ModelMetadata | None, model: ReadModel) -> ModelMetadata:
    """The variant's metadata for the candidates, stating the task as it was read (a detector's phrase too), so a
    candidate from a model without metadata audits without flags."""
    task = model.task
    own = metadata or ModelMetadata(labels=[], frontend=getattr(model.frontend, "spec", None))
    extra = {key: value for key, value in own.extra.items() if key not in ("task", "positive_label")}
    if isinstance(task, DetectorTask):
        labels = list(own.labels) or [task.positive_label]
        extra.update(task="detect", positive_label=task.positive_label)
    else:
        labels = list(task.labels)
    return dataclasses.replace(own, labels=labels, extra=extra)


def _check_output_folder(out: Path, inputs: list[Path]) -> Path:
    """``out``, refused when it holds an input (candidate files are written into it) or is a file."""
    for path in inputs:
        if path.resolve().parent == out.resolve() or out.resolve() in path.resolve().parents:
            raise UsageError(f"--out {out} holds an input ({path}); write the candidates to another folder")
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file, not a folder")
    return out


def _explainer(
    models: _Models,
    cell: SweepCell | None,
    data: tuple[Path, Path | None],
    explain: ExplainOptions,
    trust_model: bool,
    progress: Progress,
) -> Explainer:
    """Quantization for a full-integer variant, pruning for a float one; anything else is refused. ``data`` is
    ``--data`` and ``--split-file``."""
    from ondevice_audit._files import model_format
    from ondevice_audit.explain.quantization import QuantizationExplainer, float_flatbuffer, integer_activations

    if model_format(models.variant) == "tflite":
        full_integer, integer_io = integer_activations(models.variant)
        if full_integer:
            base_model = float_flatbuffer(models.base, trust_model)
            inputs, facts = _calibration(models, cell, data, explain, progress)
            with progress.task("Calibrating the base with TF Lite's calibrator", total=None):
                return QuantizationExplainer(base_model, inputs, integer_io, models.metadata, facts)
    from ondevice_audit.explain.pruning import PruningExplainer

    return PruningExplainer.open(models.base, models.variant, models.metadata, trust_model)


def _calibration(
    models: _Models, cell: SweepCell | None, data: tuple[Path, Path | None], explain: ExplainOptions,
    progress: Progress,
) -> tuple[np.ndarray, dict[str, object]]:
    """What int8 is rebuilt with, as it was made: every row of ``--calibration-data``; else a sweep cell's own
    training split; else, as ``export --data`` calibrates, the training split of ``--data`` that ``--split-file``
    (or the ``split.csv`` beside the base) names; else every row of ``--data``."""
    if explain.calibration_data is None and cell is not None:
        return sweep_calibration(cell, models.frontend, progress)
    manifest, split_file = data
    calibration = explain.calibration_data or manifest
    train_split = None if explain.calibration_data is not None else split_file or split_file_beside(models.base)
    inputs, drawn_from = calibration_inputs(calibration, models.frontend, explain.calibration_samples,
                                            explain.calibration_seed, progress, train_split)  # fmt: skip
    split = {} if train_split is None else {"split_file": str(train_split), "split": "train"}
    return inputs, {"manifest": str(calibration), **split, "rows": drawn_from, "samples": len(inputs),
                    "seed": explain.calibration_seed}  # fmt: skip


def _rank(
    explainer: Explainer,
    data: ExplainData,
    first: Comparison,
    worse: str | None,
    options: ScoreOptions,
    progress: Progress,
) -> tuple[list[Layer], list[LayerEffect] | None]:
    """Every layer's per-group error on the scored clips, ranked against ``worse`` (None: no group to rank for)."""
    frame = data.frame.loc[first.scored_mask].reset_index(drop=True)
    units, unit_group, names = units_of(frame, options.groups[0])
    errors = explainer.layer_errors(data.inputs[first.scored_mask], units, progress)
    if worse is None:
        return errors.layers, None
    included = np.array([first.included[first.groups.index(name)] for name in names])
    table = UnitTable(errors.squared_error, errors.power, np.bincount(units), unit_group, names,
                      [layer.scale for layer in errors.layers])  # fmt: skip
    effects = rank_layers(table, names.index(worse), included, options.bootstrap, options.seed, options.confidence)
    if not first.variant_changed():  # no change to explain: a ranking against the group that lost most would be noise
        effects = [dataclasses.replace(effect, rank=None) for effect in effects]
    return errors.layers, effects


def _to_undo(first: Comparison, layers: list[Layer], effects: list[LayerEffect] | None, top: int) -> list[Layer]:
    """The top-ranked layers to undo, best first; none when the variant is not measurably more biased than the base
    (nothing to fix), when RB is undefined, or when no layer is beyond the noise."""
    if effects is None or not first.variant_changed():
        return []
    ranked = sorted((e for e in effects if e.rank is not None), key=lambda e: e.rank or 0)
    return [layers[e.index] for e in ranked[:top]]
