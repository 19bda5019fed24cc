"""The stages of a sweep cell, and the plan that lets cells share them.

A cell is a chain: features -> train -> prune (skipped at sparsity 0) -> export -> infer -> score. Each stage
is a ``Task`` whose cache key covers exactly the settings that change its output, so cells that differ only
later in the chain share the earlier stages: features once per front-end setting, a base model once per
(front-end, architecture, mitigation, seed), a pruning fine-tune once per (base, pruning setting), an export per
(pruned model, format, quantisation), inference per runtime. A task reads its inputs from the cache entries
of the tasks it depends on and writes its own entry, so any process can run any task whose inputs exist:
that is what lets ``--jobs`` run tasks in a process pool, and ``--resume`` pick up after a crash.

The front-end is ``Cell.frontend``: an ``AudioFrontendSpec``, or an ``ImageFrontendSpec`` in an image matrix. All
its fields are in the features key, so image size and colour mode separate features (and everything after) as
the sample rate does; every later stage reads shapes from the features, so it needs nothing per modality.

A mitigation (``model/mitigation.py``) applies to base training and to the pruning fine-tune alike, over
``[data] mitigation_group``; ``[data] train_imbalance`` thins the training split once, before features.
Both enter the keys only when set, so the cache entries of unmitigated cells stay those of earlier sweeps.

With a user's model (``Matrix.model``, ``sweep/user_model.py``) the train stage starts from its file: a copy
of its weights when the cell's front-end is the model's own, else its architecture rebuilt for the new input
and trained from scratch. The ``baseline`` cell, and every cell of a TFLite or ONNX model, has no train stage:
its export is the file as given (or ONNX Runtime's quantisation of it). Their keys hold the file's sha256.

Everything that feeds a result is seeded (``seed_everything`` in training and pruning, the quantisation
calibration subset, the resampling seed), so a task gives the same entry whichever process runs it, when.
"""

from __future__ import annotations

import dataclasses
import json
import os
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ondevice_audit._files import sha256_of
from ondevice_audit.audit import fit_to_shape, frame_warnings, metric_frame
from ondevice_audit.data import read_manifest
from ondevice_audit.errors import OndeviceAuditError, UsageError
from ondevice_audit.metrics import METRICS, GroupMetricFrame
from ondevice_audit.sweep.cache import Cache, digest
from ondevice_audit.sweep.matrix import Cell, Matrix, TrainingSettings

__all__ = [
    "STAGES",
    "CellPlan",
    "Plan",
    "SweepContext",
    "Task",
    "build_plan",
    "execute",
    "init_worker",
    "prepare_context",
]

STAGES = ("features", "train", "prune", "export", "infer", "score")
_SPLITS = ("train", "val", "test")
_SCORING = ("groups", "metric", "negative_labels", "min_group_size", "bootstrap", "permutations", "confidence",
            "resampling_seed", "bias_attribute")  # fmt: skip
"""The data settings a cell's scores depend on (the split is in the features key already)."""
_INFERENCE_BATCH = 64
_LATENCY_WARMUP = 3


@dataclass(frozen=True)
class Task:
    stage: str
    key: str
    settings: dict[str, Any] = field(compare=False)
    deps: tuple[str, ...] = ()
    """Keys of the tasks whose entries this one reads."""


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


@dataclass(frozen=True)
class SweepContext:
    """What every task needs besides its own settings; picklable, sent once to each worker process."""

    matrix: Matrix
    cache_root: Path
    manifest_sha256: str
    data_hash: str
    """Manifest plus the content of every file it lists."""
    frames: dict[str, pd.DataFrame]
    """``train``/``val``/``test`` manifest rows; the index is the row's position in the manifest. ``train`` is
    already thinned by ``[data] train_imbalance``."""
    classes: tuple[str, ...]


def prepare_context(matrix: Matrix, cache_root: Path) -> SweepContext:
    """Read the manifest, hash the data and split it by speaker (the same split for every cell)."""
    from ondevice_audit.model.train import split_by_speaker

    data = matrix.data
    dataset = read_manifest(data.manifest, list(data.groups))
    frame = dataset.frame
    train, val, test = split_by_speaker(frame, data.split, data.split_seed, group=data.stratify)
    if data.train_imbalance:
        from ondevice_audit.model.mitigation import imbalance, parse_imbalance

        train = imbalance(train, *parse_imbalance(data.train_imbalance), seed=data.split_seed)
    if test.empty:
        raise UsageError(f"{data.manifest}: the test split is empty; raise the test share of data.split")
    classes = tuple(sorted(set(frame["label"])))
    if matrix.model is not None:  # the model's output order; every label in the data must be one of them
        unknown = sorted(set(classes) - set(matrix.model.labels))
        if unknown:
            raise UsageError(f"labels in the data that {matrix.model.name} does not know: {', '.join(unknown)}")
        classes = matrix.model.labels
    metric = METRICS[data.metric]
    if metric.needs_negatives and not set(data.negative_labels) & set(classes):
        raise UsageError(
            f"metric {data.metric} needs negative labels (data.negative_labels) that occur in the data; "
            f"found none of {list(data.negative_labels)}"
        )
    files = [
        [relative, sha256_of(Path(full)) if Path(full).is_file() else "missing"]
        for relative, full in zip(frame["path"], frame["file"], strict=True)
    ]
    data_hash = digest({"manifest": dataset.sha256, "files": files})
    frames = {"train": train, "val": val, "test": test}
    return SweepContext(matrix, cache_root, dataset.sha256, data_hash, frames, classes)


def build_plan(context: SweepContext, cache: Cache) -> Plan:
    matrix = context.matrix
    training = matrix.training
    tasks: dict[str, Task] = {}

    def add(stage: str, settings: dict[str, Any], deps: tuple[str, ...]) -> str:
        key = cache.key(stage, settings)
        tasks.setdefault(key, Task(stage, key, settings, deps))
        return key

    split: dict[str, Any] = {
        "fractions": list(matrix.data.split),
        "seed": matrix.data.split_seed,
        "stratify": matrix.data.stratify,
    }
    if matrix.data.train_imbalance:
        split["train_imbalance"] = matrix.data.train_imbalance
    cells = []
    for cell in matrix.cells:
        mitigation = (
            {"mitigation": {"name": cell.mitigation, "group": matrix.data.mitigation_group}}
            if cell.mitigation != "none"
            else {}
        )
        frontend = dataclasses.asdict(matrix.frontend(cell))
        features = _add_features(add, context, {"data": context.data_hash, "split": split, "frontend": frontend})
        scoring = {
            name: list(value) if isinstance(value, tuple) else value
            for name, value in dataclasses.asdict(matrix.data).items()
            if name in _SCORING
        }
        user = matrix.model
        if user is not None and (cell.baseline or not user.retrainable):
            export = add(
                "export",
                {
                    "user_model": user.identity(),
                    "format": user.format,
                    "quantization": cell.quantization,
                    **(
                        {"calibration_samples": training.calibration_samples, "features": features}
                        if cell.quantization != user.quantization
                        else {}
                    ),
                },
                (features,),
            )
            cells.append(_score_chain(add, context, cell, training, scoring, [features], features, export))
            continue
        if user is not None:
            rebuild = matrix.frontend(cell) != user.frontend
            retraining = {"seed": cell.seed, "epochs": training.epochs, "batch_size": training.batch_size,
                          "learning_rate": training.learning_rate} if rebuild else {}  # fmt: skip
            settings = {"features": features, "classes": list(context.classes), "user_model": user.identity(),
                        "rebuild": rebuild, **retraining}  # fmt: skip
            base = add("train", settings, (features,))
        else:
            base = add(
                "train",
                {
                    "features": features,
                    "classes": list(context.classes),
                    "architecture": cell.architecture,
                    "seed": cell.seed,
                    "epochs": training.epochs,
                    "batch_size": training.batch_size,
                    "learning_rate": training.learning_rate,
                    **mitigation,
                },
                (features,),
            )
        chain = [features, base]
        model, model_stage = base, "train"
        if cell.final_sparsity > 0:
            model = add(
                "prune",
                {
                    "model": base,
                    "final_sparsity": cell.final_sparsity,
                    "schedule": cell.schedule,
                    "learning_rate": cell.pruning_learning_rate,
                    "epochs": training.pruning_epochs,
                    "batch_size": training.batch_size,
                    "seed": cell.seed,
                    **mitigation,
                },
                (features, base),
            )
            chain.append(model)
            model_stage = "prune"
        export = add(
            "export",
            {
                "model": model,
                "model_stage": model_stage,
                "format": cell.export,
                "quantization": cell.quantization,
                "calibration_samples": training.calibration_samples,
                "seed": cell.seed,
            },
            (features, base, model) if model != base else (features, base),
        )
        cells.append(_score_chain(add, context, cell, training, scoring, chain, features, export))
    return Plan(tasks, cells)


def _score_chain(
    add: Callable[[str, dict[str, Any], tuple[str, ...]], str],
    context: SweepContext,
    cell: Cell,
    training: TrainingSettings,
    scoring: dict[str, Any],
    chain: list[str],
    features: str,
    export: str,
) -> CellPlan:
    """Inference on the cell's runtime and scoring, after its export: the end of every chain."""
    infer = add(
        "infer",
        {
            "export": export,
            "runtime": cell.runtime,
            "latency_samples": training.latency_samples,
            **({"target": cell.target} if cell.target not in (None, "local") else {}),
        },
        (features, export),
    )
    score = add(
        "score",
        {"infer": infer, "scoring": scoring, "manifest": context.manifest_sha256},
        (features, export, infer),
    )
    return CellPlan((*chain, export, infer, score), export, score)


# -- running one task -------------------------------------------------------------------------------

_WORKER_CONTEXT: list[SweepContext] = []
_FEATURES: dict[str, dict[str, np.ndarray]] = {}
_PARENT_POLL_SECONDS = 1.0
_FEATURES_KEPT = 2
"""Feature sets kept in memory per process: consecutive tasks mostly read the same one."""


def init_worker(context: SweepContext) -> None:
    """Process-pool initializer: the context travels once per worker, not once per task. A worker also
    watches its parent: a pool worker whose sweep was SIGKILLed would otherwise wait for tasks forever
    (it holds its task queue's write end itself), keeping TensorFlow's memory."""
    _WORKER_CONTEXT[:] = [context]
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(_PARENT_POLL_SECONDS)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def execute(task: Task) -> tuple[str, str | None, str]:
    """In a worker: run ``task`` unless its entry exists; return (key, error message or None, traceback)."""
    context = _WORKER_CONTEXT[0]
    try:
        cache = Cache(context.cache_root)
        if not cache.has(task.stage, task.key):
            with cache.writing(task.stage, task.key) as entry:
                _RUNNERS[task.stage](task, context, cache, entry)
        return task.key, None, ""
    except Exception as exc:  # a task's failure is recorded against its cells; the sweep goes on
        return task.key, describe_error(exc), traceback.format_exc()


def describe_error(exc: BaseException) -> str:
    if isinstance(exc, OndeviceAuditError):
        return str(exc)
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def _write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=1, default=str))


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def _features(cache: Cache, key: str) -> dict[str, np.ndarray]:
    if key not in _FEATURES:
        with np.load(cache.entry("features", key) / "features.npz") as stored:
            loaded = {name: stored[name] for name in stored.files}
        while len(_FEATURES) >= _FEATURES_KEPT:
            _FEATURES.pop(next(iter(_FEATURES)))
        _FEATURES[key] = loaded
    return _FEATURES[key]


def _groups(
    context: SweepContext, split: str, rows: np.ndarray, mitigation: dict[str, str] | None
) -> np.ndarray | None:
    """The mitigation group of each clip (None without a mitigation): what balancing and weights are over."""
    if mitigation is None:
        return None
    return context.frames[split].loc[rows, mitigation["group"]].astype(str).to_numpy()


def _mitigation_kwargs(task: Task, context: SweepContext, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    """``mitigation``/``train_groups``/``val_groups`` for ``train_model`` and ``prune``."""
    chosen = task.settings.get("mitigation")
    return {
        "mitigation": chosen["name"] if chosen else "none",
        "train_groups": _groups(context, "train", arrays["train_rows"], chosen),
        "val_groups": _groups(context, "val", arrays["val_rows"], chosen) if len(arrays["val_rows"]) else None,
    }


def _labels(context: SweepContext, split: str, rows: np.ndarray) -> np.ndarray:
    from ondevice_audit.model.train import encode_labels

    labels, _ = encode_labels(list(context.frames[split].loc[rows, "label"]), context.classes)
    return labels


def _keras() -> Any:
    """Keras with a fresh session, so layer and graph names, and so the exported bytes, do not depend on
    what ran earlier in this process."""
    from ondevice_audit import _tensorflow

    keras = _tensorflow.keras()
    keras.backend.clear_session()
    return keras


def _load_model(cache: Cache, stage: str, key: str) -> Any:
    return _keras().models.load_model(str(cache.entry(stage, key) / "model.keras"), compile=False)


_SHARD_CLIPS = 16_384
"""A split of more clips is computed in shards of this many, each a ``features`` task of its own (spread over
the workers, on Ray over machines) that the split's features task joins in order. A multiple of the front-end's
batches, so the joined arrays are bit for bit those of one task; smaller datasets plan exactly as before."""


def _add_features(
    add: Callable[[str, dict[str, Any], tuple[str, ...]], str], context: SweepContext, settings: dict[str, Any]
) -> str:
    """Plan the features of ``settings`` (and their shards); the key never depends on sharding."""
    shards = []
    for split in _SPLITS:
        size = len(context.frames[split])
        if size > _SHARD_CLIPS:
            shards += [
                add("features", {**settings, "shard": {"split": split, "start": start,
                                                       "stop": min(start + _SHARD_CLIPS, size)}}, ())
                for start in range(0, size, _SHARD_CLIPS)
            ]  # fmt: skip
    return add("features", settings, tuple(shards))


def _split_features(frame: pd.DataFrame, frontend: Any) -> tuple[np.ndarray, np.ndarray, dict[str, str]]:
    """Model inputs, manifest row positions and failures (by manifest path) of ``frame``'s clips (not empty)."""
    from ondevice_audit.model.train import compute_features

    features = compute_features(frame, frontend)
    relative = dict(zip(frame["file"], frame["path"], strict=True))
    failures = {relative[file]: reason for file, reason in features.failures.items()}
    return features.inputs, features.frame.index.to_numpy(np.int64), failures


def _run_features(task: Task, context: SweepContext, cache: Cache, entry: Path) -> None:
    from ondevice_audit.sweep.user_model import build_sweep_frontend

    frontend = build_sweep_frontend(task.settings["frontend"])
    shard = task.settings.get("shard")
    if shard is not None:
        frame = context.frames[shard["split"]].iloc[shard["start"] : shard["stop"]]
        x, rows, failures = _split_features(frame, frontend)
        np.savez(entry / "features.npz", x=x, rows=rows)
        _write_json(entry / "features.json", {"shard": shard, "failures": failures})
        return
    shards: dict[str, list[Path]] = {}
    for key in task.deps:  # in plan order: by split, then start
        folder = cache.entry("features", key)
        shards.setdefault(read_json(folder / "features.json")["shard"]["split"], []).append(folder)
    arrays: dict[str, np.ndarray] = {}
    failures: dict[str, str] = {}
    for split in _SPLITS:
        frame = context.frames[split]
        if split in shards:
            parts = []
            for folder in shards[split]:
                with np.load(folder / "features.npz") as stored:
                    parts.append((stored["x"], stored["rows"]))
                failures.update(read_json(folder / "features.json")["failures"])
            x, rows = np.concatenate([part[0] for part in parts]), np.concatenate([part[1] for part in parts])
        elif frame.empty:
            x, rows = np.zeros((0, *arrays["train_x"].shape[1:]), np.float32), np.zeros(0, np.int64)  # train never is
        else:
            x, rows, found = _split_features(frame, frontend)
            failures.update(found)
        arrays[f"{split}_x"], arrays[f"{split}_rows"] = x, rows
    np.savez(entry / "features.npz", **arrays)
    _write_json(entry / "features.json", {"frontend": task.settings["frontend"], "failures": failures})


def _run_train(task: Task, context: SweepContext, cache: Cache, entry: Path) -> None:
    from ondevice_audit.model.train import train_model

    s = task.settings
    if "user_model" in s:
        _run_user_train(task, context, cache, entry)
        return
    arrays = _features(cache, s["features"])
    has_val = len(arrays["val_x"]) > 0
    _keras()  # a fresh session before building the model
    model, history = train_model(
        s["architecture"],
        arrays["train_x"],
        _labels(context, "train", arrays["train_rows"]),
        arrays["val_x"] if has_val else None,
        _labels(context, "val", arrays["val_rows"]) if has_val else None,
        epochs=s["epochs"],
        batch_size=s["batch_size"],
        learning_rate=s["learning_rate"],
        seed=s["seed"],
        n_classes=len(context.classes),
        **_mitigation_kwargs(task, context, arrays),
    )
    model.save(str(entry / "model.keras"))
    settings = {k: s[k] for k in ("architecture", "seed", "epochs", "batch_size", "learning_rate")}
    settings["mitigation"] = {**s.get("mitigation", {"name": "none"}), **history.pop("mitigation")}
    settings["train_imbalance"] = context.matrix.data.train_imbalance
    settings["train_clips"] = int(len(arrays["train_x"]))
    _write_json(entry / "train.json", {"settings": settings, "history": history})


def _run_user_train(task: Task, context: SweepContext, cache: Cache, entry: Path) -> None:
    """The user's Keras model as the cell's base: its weights as they are, or (for another front-end) its
    architecture rebuilt for the new input shape and trained from scratch with ``[training]``."""
    from ondevice_audit.model.train import fit_with_mitigation, seed_everything
    from ondevice_audit.sweep.user_model import load_keras_model, rebuild_for_input

    s = task.settings
    user = context.matrix.model
    assert user is not None
    keras = _keras()
    model = load_keras_model(user)
    history: dict[str, Any] = {"adjustments": []}
    if s["rebuild"]:
        arrays = _features(cache, s["features"])
        has_val = len(arrays["val_x"]) > 0
        seed_everything(s["seed"])  # the fresh weights too
        model = rebuild_for_input(model, tuple(arrays["train_x"].shape[1:]))
        model.compile(optimizer=keras.optimizers.Adam(learning_rate=s["learning_rate"]),
                      loss="sparse_categorical_crossentropy", metrics=["accuracy"])  # fmt: skip
        started = time.perf_counter()
        curves, _ = fit_with_mitigation(
            model, arrays["train_x"], _labels(context, "train", arrays["train_rows"]),
            (arrays["val_x"], _labels(context, "val", arrays["val_rows"])) if has_val else None,
            epochs=s["epochs"], batch_size=s["batch_size"], seed=s["seed"], mitigation="none",
            train_groups=None, val_groups=None, callbacks=[],
        )  # fmt: skip
        history.update({key: [float(v) for v in values] for key, values in curves.items()})
        history["seconds"] = time.perf_counter() - started
    model.save(str(entry / "model.keras"))
    settings = {
        "architecture": f"user:{user.name}",
        "user_model": s["user_model"],
        "rebuilt_and_retrained": s["rebuild"],
        **{k: s[k] for k in ("seed", "epochs", "batch_size", "learning_rate") if k in s},
        "mitigation": {"name": "none"},
    }
    _write_json(entry / "train.json", {"settings": settings, "history": history})


def _run_prune(task: Task, context: SweepContext, cache: Cache, entry: Path) -> None:
    from ondevice_audit.optimize.prune import prune

    s = task.settings
    arrays = _features(cache, task.deps[0])
    mitigation = _mitigation_kwargs(task, context, arrays)
    # Only reweight-heldout reads the validation split; others leave it out, so unmitigated fine-tunes are
    # exactly those of earlier sweeps.
    heldout = mitigation["mitigation"] == "reweight-heldout"
    result = prune(
        _load_model(cache, "train", s["model"]),
        arrays["train_x"],
        _labels(context, "train", arrays["train_rows"]),
        final_sparsity=s["final_sparsity"],
        schedule=s["schedule"],
        learning_rate=s["learning_rate"],
        epochs=s["epochs"],
        batch_size=s["batch_size"],
        seed=s["seed"],
        validation=(arrays["val_x"], _labels(context, "val", arrays["val_rows"])) if heldout else None,
        **mitigation,
    )
    result.model.save(str(entry / "model.keras"))
    summary = {f.name: getattr(result, f.name) for f in dataclasses.fields(result) if f.name != "model"}
    summary["unprunable"] = [dataclasses.asdict(layer) for layer in result.unprunable]
    summary["mitigation"] = s.get("mitigation", {"name": "none"})
    _write_json(entry / "prune.json", summary)


def _model_facts(context: SweepContext, cache: Cache, task: Task) -> dict[str, Any]:
    """The metadata embedded in an exported file: what was trained on what, and how it was pruned."""
    s = task.settings
    features_key, base_key = task.deps[0], task.deps[1]
    trained = read_json(cache.entry("train", base_key) / "train.json")
    frontend = read_json(cache.entry("features", features_key) / "features.json")["frontend"]
    facts: dict[str, Any] = {
        "recipe": trained["settings"]["architecture"],
        "adjustments": trained["history"]["adjustments"],
        "features": frontend["kind"],
        "training": trained["settings"],
        "requested_sparsity": 0.0,
        "achieved_sparsity": 0.0,
        "data_sha256": context.data_hash,
    }
    if s["model_stage"] == "prune":
        pruned = read_json(cache.entry("prune", s["model"]) / "prune.json")
        facts.update(
            requested_sparsity=pruned["requested_sparsity"],
            achieved_sparsity=pruned["achieved_sparsity"],
            model_sparsity=pruned["model_sparsity"],
            prune_schedule=pruned["schedule"],
            unprunable_layers=pruned["unprunable"],
        )
    return facts


def _run_export(task: Task, context: SweepContext, cache: Cache, entry: Path) -> None:
    from ondevice_audit.export.interface import ExportSpec, get_exporter, variant_path
    from ondevice_audit.export.metadata import ModelMetadata
    from ondevice_audit.frontend import spec_from_dict
    from ondevice_audit.optimize.quantize import QuantApproach, QuantizationConfig
    from ondevice_audit.sweep.weights import measure_sparsity

    s = task.settings
    if "user_model" in s:
        _run_user_export(task, context, cache, entry)
        return
    features_key = task.deps[0]
    approach = QuantApproach(s["quantization"])
    spec = ExportSpec(s["format"], QuantizationConfig(approach, s["calibration_samples"], s["seed"]))
    exporter = get_exporter(s["format"])
    inputs = _features(cache, features_key)["train_x"]
    exporter.check(spec, inputs)  # an unsupported combination fails before TensorFlow is loaded
    facts = _model_facts(context, cache, task)
    frontend = read_json(cache.entry("features", features_key) / "features.json")["frontend"]
    embedded = None if frontend.get("kind") == "plugin" else spec_from_dict(frontend)  # a plug-in is not embeddable
    metadata = ModelMetadata(labels=list(context.classes), frontend=embedded, extra=facts)
    path = variant_path(entry, "model", s["format"], approach)
    if s["format"] == "onnx":
        import tf2onnx.convert  # all of tf2onnx: one of its modules takes a name from the counter on import
        import tf2onnx.utils

        # tf2onnx numbers the nodes it creates from a process-wide counter; reset it, so the file's bytes (and
        # size) do not depend on how many models this process converted before.
        tf2onnx.utils.INTERNAL_NAME = 1
    result = exporter.export(_load_model(cache, s["model_stage"], s["model"]), spec, path, metadata, inputs)
    _write_json(
        entry / "export.json",
        {
            **{k: v for k, v in result.to_dict().items() if k != "path"},
            "file": path.name,
            "sparsity": dataclasses.asdict(measure_sparsity(path)),
            "metadata": facts,
            "frontend_description": _frontend_description(frontend),
        },
    )


def _run_user_export(task: Task, context: SweepContext, cache: Cache, entry: Path) -> None:
    """The user's file as given (the baseline, or a TFLite/ONNX model on another runtime), or ONNX Runtime's
    quantisation of an ONNX file, calibrated on the training split through the model's front-end."""
    from ondevice_audit.optimize.quantize import QuantApproach, QuantizationConfig
    from ondevice_audit.sweep.user_model import as_given_sparsity

    s = task.settings
    user = context.matrix.model
    assert user is not None
    features_key = task.deps[0]
    frontend = read_json(cache.entry("features", features_key) / "features.json")["frontend"]
    result: dict[str, Any] = {"format": user.format, "quantization": s["quantization"], "warnings": [],
                              "parity": None, "top1_agreement": None, "parity_ok": None}  # fmt: skip
    if s["quantization"] == user.quantization:
        import shutil

        path = entry / user.name
        shutil.copyfile(user.path, path)
    else:
        from ondevice_audit.optimize.onnx_quantize import quantize_onnx

        approach = QuantApproach(s["quantization"])
        config = QuantizationConfig(approach, s["calibration_samples"])
        path = entry / f"{user.path.stem}_{approach.value}.onnx"
        calibration = config.calibration_set(_features(cache, features_key)["train_x"])
        quantized = quantize_onnx(user.path, path, approach, calibration)
        result.update(parity=quantized.parity, top1_agreement=quantized.top1_agreement,
                      parity_ok=quantized.parity_ok, seconds=quantized.seconds)  # fmt: skip
    sparsity = as_given_sparsity(path, user)
    facts = {
        "recipe": f"user:{user.name}",
        "user_model": s["user_model"],
        "adjustments": [],
        "features": frontend["kind"],
        "requested_sparsity": 0.0,
        "achieved_sparsity": sparsity["prunable"],
        "data_sha256": context.data_hash,
    }
    _write_json(
        entry / "export.json",
        {
            **result,
            "size_bytes": path.stat().st_size,
            "file": path.name,
            "sparsity": sparsity,
            "metadata": facts,
            "frontend_description": _frontend_description(frontend),
        },
    )


def _frontend_description(settings: dict[str, Any]) -> str:
    from ondevice_audit.sweep.user_model import build_sweep_frontend

    return build_sweep_frontend(settings).description


def _run_infer(task: Task, context: SweepContext, cache: Cache, entry: Path) -> None:
    from ondevice_audit.runtimes import load_runtime

    s = task.settings
    if "target" in s:
        _run_infer_on_target(task, context, cache, entry)
        return
    exported = cache.entry("export", s["export"])
    trust_model = context.matrix.model is not None and context.matrix.model.trust_model
    runtime = load_runtime(exported / read_json(exported / "export.json")["file"], s["runtime"], trust_model)
    # A plug-in may leave out the channel axis, as in audit: a same-size reshape fits it to the model.
    inputs = fit_to_shape(_features(cache, task.deps[0])["test_x"], runtime.input_shape)
    scores = runtime.run_all(inputs, _INFERENCE_BATCH).scores
    # Latency as a device sees it: one sample per call, after a warm-up, median of the calls.
    sample = inputs[: _LATENCY_WARMUP + s["latency_samples"]]
    times = []
    for i in range(len(sample)):
        started = time.perf_counter()
        runtime.run_batch(sample[i : i + 1])
        times.append(time.perf_counter() - started)
    _write_inference(entry, scores, times, dataclasses.asdict(runtime.describe()))


def _write_inference(entry: Path, scores: np.ndarray, times: list[float], facts: dict[str, Any]) -> None:
    """The infer entry: every test clip's scores, and the median single-sample latency after the warm-up."""
    latency = float(np.median(times[_LATENCY_WARMUP:] or times)) if times else 0.0
    np.save(entry / "scores.npy", scores)
    _write_json(entry / "infer.json", {"latency_ms": latency * 1000, "facts": facts})


def _run_infer_on_target(task: Task, context: SweepContext, cache: Cache, entry: Path) -> None:
    """Inference on a ``target`` (``targets/``: the device runner in another Python, or over SSH), timed the
    same way, one sample per call after a warm-up, as the runner measures its calls (without the trip there)."""
    from ondevice_audit._files import sha256_of, size_of
    from ondevice_audit.export.metadata import model_format
    from ondevice_audit.targets import parse_target

    s = task.settings
    exported = cache.entry("export", s["export"])
    path = exported / read_json(exported / "export.json")["file"]
    target = parse_target(s["target"], context.matrix.ssh_options)
    with target.open(path, s["runtime"]) as session:
        inputs = fit_to_shape(_features(cache, task.deps[0])["test_x"], session.model.input_shape[1:])
        scores = session.run(inputs, _INFERENCE_BATCH).scores
        sample = inputs[: _LATENCY_WARMUP + s["latency_samples"]]
        # one trip: the runner times each sample in its own call (batch 1) after its warm-up; a trip per
        # sample would start the runner and load the model again for each (seconds over SSH)
        times = session.run(sample, 1).latency.tolist()
        device = session.device
        facts = {
            "path": str(path),
            "format": model_format(path),
            "size_bytes": size_of(path),
            "sha256": sha256_of(path),
            **dataclasses.asdict(session.model),
            "target": target.label,
            "device": {key: getattr(device, key) for key in _DEVICE_FACTS},
        }
    _write_inference(entry, scores, times, facts)


_DEVICE_FACTS = ("python", "machine", "system", "cpu_count", "memory_total_bytes")
"""What a cell's report keeps of the target it ran on (as ``audit --target`` reports it)."""


def _run_score(task: Task, context: SweepContext, cache: Cache, entry: Path) -> None:
    from ondevice_audit.report.document import build_report, validate

    data = context.matrix.data
    options = data.score_options()
    features_key, export_key, infer_key = task.deps
    exported = read_json(cache.entry("export", export_key) / "export.json")
    inferred = read_json(cache.entry("infer", infer_key) / "infer.json")
    scores = np.load(cache.entry("infer", infer_key) / "scores.npy")
    rows = _features(cache, features_key)["test_rows"]
    test = context.frames["test"]
    finite = np.isfinite(scores).all(axis=1) if scores.size else np.zeros(len(rows), bool)
    scored = test.loc[rows[finite]].assign(
        prediction=np.asarray(context.classes, dtype=object)[scores[finite].argmax(axis=1)].astype(str)
    )
    unreadable = read_json(cache.entry("features", features_key) / "features.json")["failures"]
    failures = [{"path": p, "reason": unreadable[p]} for p in test["path"] if p in unreadable]
    failures += [{"path": p, "reason": "model output is NaN or infinite"} for p in test.loc[rows[~finite], "path"]]
    if scored.empty:
        raise UsageError(f"no test file could be scored ({len(failures)} failed)")
    frame = metric_frame(scored, options)
    facts = inferred["facts"]
    report = build_report(
        command="sweep",
        frame=frame,
        inputs=[
            {"role": "model", "path": facts["path"], "sha256": facts["sha256"]},
            {"role": "manifest", "path": str(data.manifest), "sha256": context.manifest_sha256},
        ],
        settings={**options.settings(), "runtime": facts["runtime"], "split": "test"},
        samples={"total": len(test), "scored": len(scored), "failed": len(failures), "failures": failures},
        warnings=_warnings(frame, exported, len(failures)),
        model={
            **facts,
            "labels": list(context.classes),
            "frontend": exported["frontend_description"],
            "seconds_per_sample": inferred["latency_ms"] / 1000,
            "metadata": {"extra": exported["metadata"]},
        },
    )
    validate(report)
    columns = ["path", "label", "prediction", *(["speaker"] if "speaker" in scored.columns else []), *options.groups]
    scored[columns].to_csv(entry / "predictions.csv", index=False)
    _write_json(entry / "report.json", report)
    _write_json(entry / "measurements.json", _measurements(frame, data.bias_attribute, exported, inferred, failures))


def _warnings(frame: GroupMetricFrame, exported: dict[str, Any], failed: int) -> list[str]:
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


def not_pruned(layers: list[dict[str, Any]]) -> str:
    """``depthwise_conv2d (DepthwiseConv2D, 1,152 params), ...``: the layers tfmot left dense."""
    return ", ".join(f"{layer['name']} ({layer['type']}, {layer['params']:,} params)" for layer in layers)


def _measurements(
    frame: GroupMetricFrame,
    bias_attribute: str,
    exported: dict[str, Any],
    inferred: dict[str, Any],
    failures: list[dict[str, str]],
) -> dict[str, Any]:
    """One results row, without the factor levels (cells that share every stage share this)."""
    metric = frame.metric
    low, high = frame.overall_ci or (None, None)
    row: dict[str, Any] = {
        "n_test": len(frame.y_true),
        "n_failed": len(failures),
        **frame.overall,
        f"{metric}_ci_low": low,
        f"{metric}_ci_high": high,
    }
    for attribute in frame.attributes:
        if attribute.name == bias_attribute:
            ci = attribute.rb.ci or (None, None)
            row.update(
                rb=attribute.rb.value,
                rb_ci_low=ci[0],
                rb_ci_high=ci[1],
                rb_p_value=attribute.rb.p_value,
                worst_group=attribute.worst_group,
            )
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


_RUNNERS: dict[str, Callable[[Task, SweepContext, Cache, Path], None]] = {
    "features": _run_features,
    "train": _run_train,
    "prune": _run_prune,
    "export": _run_export,
    "infer": _run_infer,
    "score": _run_score,
}
