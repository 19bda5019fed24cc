"""The plan that lets cells share stages: each cell's chain of tasks, each task once however many cells need it.

A cell is a chain: features -> train -> prune (skipped at sparsity 0) -> export -> infer -> score. Each task's
key is derived from its typed settings (``base.StageSettings``), which hold exactly what changes its output,
so cells that differ only later in the chain share the earlier tasks: features once per front-end setting, a
base model once per (front-end, architecture, mitigation, seed), a pruning fine-tune once per (base, pruning
setting), an export per (pruned model, format, quantisation), inference per runtime and target.

A mitigation applies to base training and to the pruning fine-tune alike, over ``[data] mitigation_group``;
``[data] train_imbalance`` thins the training split once, before features. With a user's model
(``Matrix.model``) the train stage starts from its file, and the ``baseline`` cell, and every cell of a TFLite
or ONNX model, has no train stage: its export is the file as given (or ONNX Runtime's quantisation of it).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import ondevice_audit.sweep.stages.features as features_stage
from ondevice_audit._files import sha256_of
from ondevice_audit.errors import UsageError
from ondevice_audit.sweep.cache import Cache, digest
from ondevice_audit.sweep.matrix import Cell, DataSettings, Matrix, kept_layers
from ondevice_audit.sweep.stages.base import StageSettings, SweepContext
from ondevice_audit.sweep.stages.export import ExportSettings, UserExportSettings
from ondevice_audit.sweep.stages.features import SPLITS, FeatureSettings, Shard, SplitSettings
from ondevice_audit.sweep.stages.infer import InferSettings
from ondevice_audit.sweep.stages.keep_float import KeepFloatSettings
from ondevice_audit.sweep.stages.prune import PruneSettings
from ondevice_audit.sweep.stages.score import SCORING_FIELDS, ScoreSettings
from ondevice_audit.sweep.stages.train import MitigationSettings, TrainSettings, UserTrainSettings

__all__ = ["CellPlan", "Plan", "Task", "build_plan", "prepare_context"]


@dataclass(frozen=True)
class Task:
    key: str
    settings: StageSettings = field(compare=False)
    deps: tuple[str, ...] = ()
    """Keys of the tasks whose entries this one reads."""

    @property
    def stage(self) -> str:
        return self.settings.stage


@dataclass(frozen=True)
class CellPlan:
    chain: tuple[str, ...]
    """Task keys from features to score."""
    export: str
    score: str


@dataclass
class Plan:
    tasks: dict[str, Task]
    cells: list[CellPlan]
    """Aligned with ``Matrix.cells``."""

    def priority(self) -> dict[str, int]:
        """Task key -> the first cell that needs it: running in this order finishes cells one by one."""
        first: dict[str, int] = {}
        for index, cell in enumerate(self.cells):
            for key in cell.chain:
                for needed in (*self.tasks[key].deps, key):  # deps outside the chain: feature shards
                    first.setdefault(needed, index)
        return first


def prepare_context(matrix: Matrix, cache_root: Path) -> SweepContext:
    """Read the manifest, hash the data and split it by speaker (the same split for every cell)."""
    from ondevice_audit.data import read_manifest
    from ondevice_audit.data.split import split_by_speaker
    from ondevice_audit.metrics._groups import group_attributes
    from ondevice_audit.scoring import check_label_spellings

    data = matrix.data
    dataset = read_manifest(data.manifest, list(data.groups))
    frame = dataset.frame
    train, val, test = split_by_speaker(frame, data.split, data.split_seed, group=data.stratify)
    if data.train_imbalance:
        from ondevice_audit.model.mitigation import imbalance, parse_imbalance

        train = imbalance(train, *parse_imbalance(data.train_imbalance), seed=data.split_seed)
    if test.empty:
        raise UsageError(f"{data.manifest}: the test split is empty; raise the test share of data.split")
    # every cell scores (a subset of) the test split per group: too many groups are refused before any training
    group_attributes(test[list(data.groups)], True, data.group_limit(matrix.source))
    labels = tuple(sorted(set(frame["label"])))
    known = (*(matrix.model.labels if matrix.model is not None else ()),
             *((data.positive_label,) if data.task == "detect" else ()))  # fmt: skip
    check_label_spellings({*labels, *known}, f"{data.manifest}" + (" and the model's label names" if known else ""))
    classes = _outputs(matrix, labels)
    files = [
        [relative, sha256_of(Path(full)) if Path(full).is_file() else "missing"]
        for relative, full in zip(frame["path"], frame["file"], strict=True)
    ]
    data_hash = digest({"manifest": dataset.sha256, "files": files})
    frames = {"train": train, "val": val, "test": test}
    return SweepContext(matrix, cache_root, dataset.sha256, data_hash, frames, classes)


def _outputs(matrix: Matrix, labels: tuple[str, ...]) -> tuple[str, ...]:
    """The names of the models' outputs: every label (a user model's own order), or a detector's phrase."""
    from ondevice_audit.metrics import METRICS

    data = matrix.data
    if data.task == "detect":
        return _detector_outputs(matrix, labels)
    classes = labels
    if matrix.model is not None:  # the model's output order; every label in the data must be what one maps to
        try:
            matrix.scoring_task(matrix.model.labels).check_data(labels)
        except UsageError as exc:
            raise UsageError(f"{matrix.model.name}: {exc}") from None
        classes = matrix.model.labels
    if METRICS[data.metric].needs_negatives and not set(data.negative_labels) & set(labels):
        raise UsageError(
            f"metric {data.metric} needs negative labels (data.negative_labels) that occur in the data; "
            f"found none of {list(data.negative_labels)}"
        )
    return classes


def _detector_outputs(matrix: Matrix, labels: tuple[str, ...]) -> tuple[str, ...]:
    positive = matrix.data.positive_label
    if positive not in labels:
        shown = ", ".join(labels[:12]) + (" ..." if len(labels) > 12 else "")
        raise UsageError(f"{matrix.source}: data.positive_label {positive!r} is not a label in the data ({shown})")
    if len(labels) < 2:
        raise UsageError(f"{matrix.source}: a detector needs negatives: the data has only {positive!r} clips")
    if matrix.model is not None and tuple(matrix.model.labels) != (positive,):
        raise UsageError(
            f"{matrix.model.name} has outputs {list(matrix.model.labels)}; a detector sweep over your own model "
            f"needs one output, named {positive!r} (train --task detect --positive-label {positive} writes one)"
        )
    return matrix.data.outputs(labels)


class _Planner:
    """Adds each cell's tasks to the plan; a task shared by cells is added once."""

    def __init__(self, context: SweepContext, cache: Cache):
        self.context, self.cache = context, cache
        self.matrix = context.matrix
        self.tasks: dict[str, Task] = {}
        data = self.matrix.data
        self.split = SplitSettings(data.split, data.split_seed, data.stratify, data.train_imbalance)
        scoring = asdict(data)
        self.scoring = {name: list(v) if isinstance(v, tuple) else v for name, v in scoring.items()
                        if name in SCORING_FIELDS}  # fmt: skip
        user = self.matrix.model
        if user is not None and user.label_map is not None:  # only then: the keys of other sweeps stay as they were
            self.scoring["label_map"] = user.label_map.as_dict()
        if data.max_groups != DataSettings.max_groups:  # likewise; a report states the limit it was scored under
            self.scoring["max_groups"] = data.max_groups

    def add(self, settings: StageSettings, deps: tuple[str, ...]) -> str:
        key = self.cache.key(settings)
        self.tasks.setdefault(key, Task(key, settings, deps))
        return key

    def cell(self, cell: Cell) -> CellPlan:
        frontend = asdict(self.matrix.frontend(cell))
        features = self._features(FeatureSettings(self.context.data_hash, self.split, frontend))
        user = self.matrix.model
        if user is not None and (cell.baseline or not user.retrainable):
            calibrated = cell.quantization != user.quantization
            export = self.add(
                UserExportSettings(features, user.identity(), user.format, cell.quantization,
                                   self.matrix.training.calibration_samples if calibrated else None,
                                   user.output if calibrated else None),
                (features,),
            )  # fmt: skip
            return self._score_chain(cell, [features], features, export)
        base = self.add(self._train_settings(cell, features), (features,))
        chain, model, model_stage = [features, base], base, "train"
        training = self.matrix.training
        if cell.final_sparsity > 0:
            model = self.add(
                PruneSettings(features, base, cell.final_sparsity, cell.schedule, cell.pruning_learning_rate,
                              training.pruning_epochs, training.batch_size, cell.seed, self._mitigation(cell)),
                (features, base),
            )  # fmt: skip
            chain.append(model)
            model_stage = "prune"
        settings = ExportSettings(features, base, model, model_stage, cell.export, cell.quantization,
                                  training.calibration_samples, cell.seed)  # fmt: skip
        keep = kept_layers(cell.quantization)
        if keep is not None:  # int8 with the layers that hurt the worse-off group most kept in float
            settings = KeepFloatSettings(**{**asdict(settings), "quantization": "int8"}, keep=keep,
                                         scoring=self._ranking())  # fmt: skip
        export = self.add(settings, (features, base, model) if model != base else (features, base))
        return self._score_chain(cell, chain, features, export)

    def _ranking(self) -> dict[str, object]:
        """How ``int8-keepN`` cells rank layers: over the bias attribute, with the sweep's metric and bootstrap."""
        data = self.matrix.data
        return {"groups": [data.bias_attribute], "metric": data.metric, "negative_labels": list(data.negative_labels),
                "min_group_size": data.min_group_size, "bootstrap": max(data.bootstrap, 100), "permutations": 0,
                "seed": data.resampling_seed, "confidence": data.confidence}  # fmt: skip

    def _mitigation(self, cell: Cell) -> MitigationSettings | None:
        if cell.mitigation == "none":
            return None
        return MitigationSettings(cell.mitigation, self.matrix.data.mitigation_group)

    def _train_settings(self, cell: Cell, features: str) -> StageSettings:
        training, classes = self.matrix.training, tuple(self.context.classes)
        user = self.matrix.model
        if user is None:
            return TrainSettings(features, classes, cell.architecture, cell.seed, training.epochs,
                                 training.batch_size, training.learning_rate, self._mitigation(cell))  # fmt: skip
        if self.matrix.frontend(cell) == user.frontend:
            return UserTrainSettings(features, classes, user.identity(), rebuild=False)
        return UserTrainSettings(features, classes, user.identity(), True, cell.seed, training.epochs,
                                 training.batch_size, training.learning_rate)  # fmt: skip

    def _features(self, settings: FeatureSettings) -> str:
        """The features of ``settings`` and their shards; the key never depends on sharding."""
        shards = []
        for split in SPLITS:
            size = len(self.context.frames[split])
            step = features_stage.SHARD_CLIPS
            if size > step:
                for start in range(0, size, step):
                    shard = Shard(split, start, min(start + step, size))
                    shards.append(self.add(FeatureSettings(settings.data, settings.split, settings.frontend, shard), ()))
        return self.add(settings, tuple(shards))

    def _score_chain(self, cell: Cell, chain: list[str], features: str, export: str) -> CellPlan:
        """Inference on the cell's runtime and target, and scoring, after its export: the end of every chain."""
        target = cell.target if cell.target not in (None, "local") else None
        infer = self.add(
            InferSettings(features, export, cell.runtime, self.matrix.training.latency_samples, target,
                          None if self.matrix.model is None else self.matrix.model.output),
            (features, export),
        )
        score = self.add(
            ScoreSettings(features, export, infer, self.scoring, self.context.manifest_sha256),
            (features, export, infer),
        )
        return CellPlan((*chain, export, infer, score), export, score)


def build_plan(context: SweepContext, cache: Cache) -> Plan:
    planner = _Planner(context, cache)
    cells = [planner.cell(cell) for cell in context.matrix.cells]
    return Plan(planner.tasks, cells)
