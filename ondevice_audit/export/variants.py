"""The export job: a trained Keras model, optionally pruned, to every format x quantisation asked for.

``ondevice-audit train`` (float32 TFLite and ONNX after training), ``ondevice-audit export`` (pruning and any
quantisation) and the sweep's export stage all come through here or through ``Exporter.export`` below it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ondevice_audit.errors import UsageError
from ondevice_audit.export import EXPORT_FORMATS, get_exporter
from ondevice_audit.export.interface import ExportResult, ExportSpec
from ondevice_audit.export.metadata import ModelMetadata, write_metadata
from ondevice_audit.optimize.quantize import QuantApproach, QuantizationConfig
from ondevice_audit.progress import NullProgress, Progress

__all__ = ["ExportOptions", "ExportOutcome", "PruneOptions", "export_model", "export_variants", "save_keras",
           "variant_path"]  # fmt: skip


def variant_path(out_dir: Path, stem: str, format: str, approach: QuantApproach) -> Path:
    """``model.tflite`` for float32, ``model-int8.tflite`` and the like for the others."""
    suffix = "" if approach is QuantApproach.F32 else f"-{approach.value}"
    return out_dir / f"{stem}{suffix}.{format}"


def export_variants(
    keras_model: Any,
    formats: Sequence[str],
    approaches: Sequence[QuantApproach],
    out_dir: Path,
    metadata: ModelMetadata,
    representative_inputs: np.ndarray | None = None,
    *,
    stem: str = "model",
    calibration_samples: int = 200,
    seed: int = 0,
    progress: Progress | None = None,
) -> list[ExportResult]:
    """Every format x approach, checked for support up front so a bad combination fails before any work."""
    jobs = []
    for format in formats:
        exporter = get_exporter(format)
        for approach in approaches:
            spec = ExportSpec(format, QuantizationConfig(approach, calibration_samples, seed))
            exporter.check(spec, representative_inputs)
            jobs.append((exporter, spec))
    results = []
    with (progress or NullProgress()).task("Exporting", total=len(jobs)) as advance:
        for exporter, spec in jobs:
            path = variant_path(out_dir, stem, spec.format, spec.approach)
            results.append(exporter.export(keras_model, spec, path, metadata, representative_inputs))
            advance(1)
    return results


def save_keras(keras_model: Any, path: Path, metadata: ModelMetadata) -> None:
    """The model as a ``.keras`` archive with the metadata inside, so it can be audited or exported later."""
    path.parent.mkdir(parents=True, exist_ok=True)
    keras_model.save(str(path))
    write_metadata(path, metadata)


@dataclass(frozen=True)
class PruneOptions:
    """Magnitude pruning before export (``optimize/prune.py``), fine-tuned on the export's data."""

    sparsity: float
    schedule: str = "polynomial"
    learning_rate: float = 1e-4
    epochs: int = 2
    batch_size: int = 64


@dataclass(frozen=True)
class ExportOptions:
    formats: tuple[str, ...] = EXPORT_FORMATS
    approaches: tuple[QuantApproach, ...] = (QuantApproach.F32,)
    calibration_samples: int = 200
    """Inputs used to calibrate int8 (and to check every file's parity)."""
    seed: int = 0
    """Seed for the pruning fine-tune and the calibration sample."""
    prune: PruneOptions | None = None


@dataclass
class ExportOutcome:
    results: list[ExportResult]
    extra: dict[str, Any]
    """The metadata's ``extra`` every exported file carries: the source's, plus pruning facts."""
    pruned_keras: Path | None
    """The pruned Keras model, when pruning was asked for."""


def export_model(
    keras_model: Any,
    metadata: ModelMetadata,
    out_dir: Path,
    options: ExportOptions,
    data: tuple[np.ndarray, np.ndarray | None] | None = None,
    *,
    stem: str = "model",
    progress: Progress | None = None,
) -> ExportOutcome:
    """Prune (if asked) and export ``keras_model``; ``data`` is (inputs, labels) of training speakers: the
    pruning fine-tune's and int8's calibration set (labels are needed only to prune)."""
    from ondevice_audit.optimize.prune import prune

    progress = progress or NullProgress()
    inputs = None if data is None else data[0]
    extra = dict(metadata.extra)
    pruned_keras = None
    if options.prune is not None:
        if data is None or data[1] is None:
            raise UsageError("pruning fine-tunes the model: it needs labelled inputs (--data)")
        result = prune(keras_model, data[0], data[1], final_sparsity=options.prune.sparsity,
                       schedule=options.prune.schedule,  # type: ignore[arg-type]  # checked by the CLI and the matrix
                       learning_rate=options.prune.learning_rate, epochs=options.prune.epochs,
                       batch_size=options.prune.batch_size, seed=options.seed, progress=progress)  # fmt: skip
        keras_model = result.model
        stem = f"{stem}-p{round(options.prune.sparsity * 100)}"
        extra.update(result.facts())
        for layer in result.unprunable:
            progress.note(f"not pruned: {layer.name} ({layer.type}, {layer.params} parameters)")
        pruned_keras = out_dir / f"{stem}.keras"
        save_keras(keras_model, pruned_keras, dataclasses.replace(metadata, extra=extra))
    results = export_variants(keras_model, options.formats, options.approaches, out_dir,
                              dataclasses.replace(metadata, extra=extra), inputs, stem=stem,
                              calibration_samples=options.calibration_samples, seed=options.seed,
                              progress=progress)  # fmt: skip
    return ExportOutcome(results, extra, pruned_keras)
