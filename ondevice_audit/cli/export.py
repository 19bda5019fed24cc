"""``ondevice-audit export``: a trained Keras model to TFLite/ONNX variants (pruned, quantised)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Column, Table

from ondevice_audit import _tensorflow
from ondevice_audit._extras import require_extra
from ondevice_audit._files import model_format
from ondevice_audit.cli._app import app
from ondevice_audit.cli._progress import Quiet, RichProgress, stderr, stdout
from ondevice_audit.errors import UsageError
from ondevice_audit.export import EXPORT_FORMATS
from ondevice_audit.export.interface import ExportResult
from ondevice_audit.export.metadata import ModelMetadata, read_metadata
from ondevice_audit.export.variants import ExportOptions, PruneOptions
from ondevice_audit.optimize.prune import SCHEDULES
from ondevice_audit.optimize.quantize import QuantApproach

_PRUNING = "Pruning"
_DEFAULTS = ExportOptions()
_PRUNE_DEFAULTS = PruneOptions(sparsity=0.0)


def _formats(text: str) -> list[str]:
    formats = [x.strip().lower() for x in text.split(",") if x.strip()]
    unknown = [f for f in formats if f not in EXPORT_FORMATS]
    if unknown or not formats:
        raise UsageError(f"--to {text!r}: choose from {', '.join(EXPORT_FORMATS)} (comma-separated)")
    return list(dict.fromkeys(formats))


def _load_model(path: Path) -> tuple[Any, ModelMetadata]:
    if not path.exists():
        raise UsageError(f"model not found: {path}")
    if model_format(path) != "keras":
        raise UsageError(f"{path}: export starts from a Keras model (.keras, .h5 or SavedModel)")
    metadata = read_metadata(path)
    if metadata is None:
        raise UsageError(
            f"{path}: no ondevice-audit metadata (labels, front-end); train it with `ondevice-audit train`"
        )
    try:
        model = _tensorflow.keras().models.load_model(str(path), compile=False)
    except Exception as exc:  # Keras raises ValueError, OSError, TypeError... for a bad file
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UsageError(f"{path}: not a Keras model TensorFlow can load ({message})") from None
    return model, metadata


@app.command()
def export(
    model: Annotated[Path, typer.Argument(help="Keras model written by `ondevice-audit train` (with metadata).")],
    out: Annotated[Path, typer.Option("--out", help="Folder for the exported files and export_summary.json.")],
    to: Annotated[
        str, typer.Option("--to", help=f"Formats, comma-separated: {', '.join(EXPORT_FORMATS)}.")
    ] = ",".join(_DEFAULTS.formats),
    quantize: Annotated[
        str, typer.Option(help=f"Quantizations, comma-separated: {', '.join(a.value for a in QuantApproach)}.")
    ] = "f32",
    data: Annotated[
        Path | None,
        typer.Option(
            "--data", "-d", help="Manifest of training speakers: int8 calibration, pruning fine-tune and parity inputs."
        ),
    ] = None,
    prune_sparsity: Annotated[
        float | None,
        typer.Option(
            "--prune",
            min=0.0,
            max=0.99,
            help="Prune Conv2D/Dense kernels to this sparsity first.",
            rich_help_panel=_PRUNING,
        ),
    ] = None,
    prune_schedule: Annotated[
        str, typer.Option(help=f"{' or '.join(SCHEDULES)}.", rich_help_panel=_PRUNING)
    ] = _PRUNE_DEFAULTS.schedule,
    prune_learning_rate: Annotated[float, typer.Option(rich_help_panel=_PRUNING)] = _PRUNE_DEFAULTS.learning_rate,
    prune_epochs: Annotated[int, typer.Option(min=1, rich_help_panel=_PRUNING)] = _PRUNE_DEFAULTS.epochs,
    prune_batch_size: Annotated[int, typer.Option(min=1, rich_help_panel=_PRUNING)] = _PRUNE_DEFAULTS.batch_size,
    calibration_samples: Annotated[
        int, typer.Option(min=1, help="Inputs used to calibrate int8.")
    ] = _DEFAULTS.calibration_samples,
    seed: Annotated[int, typer.Option(help="Seed for pruning fine-tune and calibration sampling.")] = _DEFAULTS.seed,
    quiet: Quiet = False,
) -> None:
    """Export MODEL to each format x quantization, optionally pruned first; check each file's parity.

    Parity is the largest score difference to the Keras model on the same inputs (from --data when given);
    quantized files drift by design, so drift is a warning, with the top-1 agreement next to it.
    """
    require_extra("train", "ondevice-audit export")
    from ondevice_audit.export.variants import export_model
    from ondevice_audit.model.train import load_labelled_features

    formats = _formats(to)
    approaches = tuple(dict.fromkeys(QuantApproach.parse(q) for q in quantize.split(",") if q.strip()))
    if not approaches:
        raise UsageError("--quantize needs at least one of " + ", ".join(a.value for a in QuantApproach))
    if data is None and (prune_sparsity is not None or QuantApproach.INT8 in approaches):
        raise UsageError("--data is needed for --prune (fine-tuning) and int8 (calibration)")
    keras_model, metadata = _load_model(model)
    progress = RichProgress(quiet=quiet)
    labelled = None
    if data is not None:
        if metadata.frontend is None:
            raise UsageError(f"{model}: its metadata has no front-end, so --data cannot be turned into inputs")
        # Labels must match the model's classes only when they are trained on (pruning), not for calibration.
        classes = metadata.labels if prune_sparsity is not None else None
        features, labels, _ = load_labelled_features(data, metadata.frontend, classes, progress)
        labelled = (features.inputs, labels)
        if features.failures:
            progress.note(f"{len(features.failures)} files in {data} could not be read and were left out")
    pruning = None
    if prune_sparsity is not None:
        pruning = PruneOptions(prune_sparsity, prune_schedule, prune_learning_rate, prune_epochs, prune_batch_size)
    options = ExportOptions(tuple(formats), approaches, calibration_samples, seed, pruning)
    source = dataclasses.replace(metadata, extra={**metadata.extra, "source_model": model.name})
    outcome = export_model(keras_model, source, out, options, labelled, stem=model.stem, progress=progress)
    summary = {"source_model": str(model), **outcome.extra, "exports": [r.to_dict() for r in outcome.results]}
    (out / "export_summary.json").write_text(json.dumps(summary, indent=2, default=str))
    if not quiet:
        _print(stdout(), outcome.results, outcome.extra.get("achieved_sparsity"), out)
    for result in outcome.results:
        for warning in result.warnings:
            stderr.print(f"[yellow]{result.path.name}: {warning}[/yellow]", highlight=False)


def _print(console: Console, results: list[ExportResult], sparsity: float | None, out: Path) -> None:
    table = Table(
        Column("file", overflow="fold"),
        "format",
        "quantization",
        "size",
        "sparsity",
        "parity (max |Δ|)",
        "top-1 agree",
        "seconds",
        title=f"Exported to {out}",
    )
    for r in results:
        table.add_row(
            r.path.name,
            r.format,
            r.quantization,
            f"{r.size_bytes / 1024:.1f} KiB",
            "-" if sparsity is None else f"{sparsity:.1%}",
            f"{r.parity:.2e}" + ("" if r.parity_ok else " ⚠"),
            f"{r.top1_agreement:.0%}",
            f"{r.seconds:.1f}",
        )
    console.print(table)
