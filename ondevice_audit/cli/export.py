"""``ondevice-audit export``: a trained Keras model to TFLite/ONNX variants (pruned, quantised)."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Column, Table

from ondevice_audit import _tensorflow
from ondevice_audit._extras import require_extra
from ondevice_audit._files import model_format
from ondevice_audit.cli._app import app
from ondevice_audit.cli._params import MAX_SEED, OptionGroup, OptionSpec, options_from
from ondevice_audit.cli._progress import Quiet, RichProgress, stderr, stdout
from ondevice_audit.errors import UsageError
from ondevice_audit.export import EXPORT_FORMATS
from ondevice_audit.export.interface import ExportResult
from ondevice_audit.export.metadata import ModelMetadata, read_metadata
from ondevice_audit.export.variants import ExportOptions, PruneOptions, variant_path
from ondevice_audit.optimize.prune import SCHEDULES
from ondevice_audit.optimize.quantize import QuantApproach
from ondevice_audit.outputs import check_output_folder, write_text

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
        raise UsageError(f"model not found: {path}; check the path")
    if model_format(path) != "keras":
        raise UsageError(
            f"{path}: export starts from a Keras model (.keras, .h5 or SavedModel); pass the model.keras train wrote"
        )
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


@dataclass(frozen=True)
class Tuning:
    """Which clips fine-tune the pruned model and calibrate int8: ``--data``, narrowed to a split."""

    data: Path | None
    split_file: Path | None
    split: str


NO_TUNING = Tuning(None, None, "train")
_TUNING_OPTIONS = OptionGroup(
    "tuning",
    [
        OptionSpec("data", Annotated[Path | None, typer.Option(
            "--data", "-d", help="Manifest of training speakers: int8 calibration, pruning fine-tune and parity "
            "inputs.")], None),
        OptionSpec("split_file", Annotated[Path | None, typer.Option(
            help="Use only the --data rows this file assigns to --split [default: split.csv beside MODEL, as train "
            "writes it, when there is one].")], None),
        OptionSpec("split", Annotated[str, typer.Option(help="Which split of --split-file tunes and calibrates.")],
                   "train"),
    ],
    Tuning,
)  # fmt: skip


@app.command()
@options_from(_TUNING_OPTIONS)
def export(
    model: Annotated[Path, typer.Argument(help="Keras model written by `ondevice-audit train` (with metadata).")],
    out: Annotated[Path, typer.Option("--out", help="Folder for the exported files and export_summary.json.")],
    to: Annotated[str, typer.Option("--to", help=f"Formats, comma-separated: {', '.join(EXPORT_FORMATS)}.")] = ",".join(
        _DEFAULTS.formats
    ),
    quantize: Annotated[
        str, typer.Option(help=f"Quantizations, comma-separated: {', '.join(a.value for a in QuantApproach)}.")
    ] = "f32",
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
    seed: Annotated[
        int, typer.Option(min=0, max=MAX_SEED, help="Seed for pruning fine-tune and calibration sampling.")
    ] = _DEFAULTS.seed,
    quiet: Quiet = False,
    tuning: Tuning = NO_TUNING,
) -> None:
    """Export MODEL to each format x quantization, optionally pruned first; check each file's parity.

    Parity is the largest score difference to the Keras model on the same inputs (from --data when given);
    quantized files drift by design, so drift is a warning, with the top-1 agreement next to it.
    """
    require_extra("train", "ondevice-audit export")
    from ondevice_audit.export.variants import export_model

    data, split_file = tuning.data, tuning.split_file
    formats = _formats(to)
    approaches = tuple(dict.fromkeys(QuantApproach.parse(q) for q in quantize.split(",") if q.strip()))
    variants = [variant_path(Path(), model.stem, f, a).name for f in formats for a in approaches]
    writes = ["export_summary.json", *variants]
    check_output_folder(out, "--out", {"model": model, "manifest": data, "split file": split_file}, writes)
    if not approaches:
        raise UsageError("--quantize needs at least one of " + ", ".join(a.value for a in QuantApproach))
    if data is None and (prune_sparsity is not None or QuantApproach.INT8 in approaches):
        raise UsageError("--data is needed for --prune (fine-tuning) and int8 (calibration)")
    for role, path in (("manifest", data), ("split file", split_file)):  # before TensorFlow loads the model
        if path is not None and not path.is_file():
            raise UsageError(f"{role} not found: {path}; check the path")
    keras_model, metadata = _load_model(model)
    progress = RichProgress(quiet=quiet)
    labelled, used = None, None
    if data is not None:
        labelled, used = _tuning_data(model, metadata, data, (split_file, tuning.split), prune_sparsity is not None,
                                      progress)  # fmt: skip
    pruning = None
    if prune_sparsity is not None:
        pruning = PruneOptions(prune_sparsity, prune_schedule, prune_learning_rate, prune_epochs, prune_batch_size)
    options = ExportOptions(tuple(formats), approaches, calibration_samples, seed, pruning)
    source = dataclasses.replace(metadata, extra={**metadata.extra, "source_model": model.name})
    outcome = export_model(keras_model, source, out, options, labelled, stem=model.stem, progress=progress)
    summary = {"source_model": str(model), "tuning_data": used, **outcome.extra,
               "exports": [r.to_dict() for r in outcome.results]}  # fmt: skip
    write_text(out / "export_summary.json", json.dumps(summary, indent=2, default=str))
    if not quiet:
        _print(stdout(), outcome.results, outcome.extra.get("achieved_sparsity"), out)
    for result in outcome.results:
        for warning in result.warnings:
            stderr.print(f"[yellow]{result.path.name}: {warning}[/yellow]", highlight=False)


def _tuning_data(
    model: Path,
    metadata: ModelMetadata,
    data: Path,
    split: tuple[Path | None, str],
    pruned: bool,
    progress: RichProgress,
) -> tuple[tuple[Any, Any], dict[str, Any]]:
    """The inputs and labels that fine-tune and calibrate the export, and what they are, for the summary."""
    from ondevice_audit.model.train import load_labelled_features

    if metadata.frontend is None:
        raise UsageError(f"{model}: its metadata has no front-end, so --data cannot be turned into inputs")
    chosen = _tuning_split(model, data, *split, progress)
    # Labels must match the model's classes only when they are trained on (pruning), not for calibration.
    classes = metadata.labels if pruned else None
    features, labels, _ = load_labelled_features(data, metadata.frontend, classes, progress, chosen)
    if features.failures:
        progress.note(f"{len(features.failures)} files in {data} could not be read and were left out")
    tuning = {"manifest": str(data), "split_file": chosen and str(chosen[0]), "split": chosen and chosen[1]}
    return (features.inputs, labels), tuning


def _tuning_split(
    model: Path, data: Path, split_file: Path | None, split: str, progress: RichProgress
) -> tuple[Path, str] | None:
    """Which rows of ``data`` fine-tune and calibrate: ``split`` of ``split_file``, by default the training split
    of the ``split.csv`` train wrote beside the model, so the speakers it is audited on stay unseen. Says when
    every row is used, and when the rows chosen share speakers with the test split."""
    from ondevice_audit.data.manifest import split_file_beside

    found = split_file_beside(model)
    if split_file is None and found is not None:
        split_file = found
        progress.note(f"tuning and calibrating on split {split!r} of {found} (--split-file/--split to choose)")
    if split_file is None:
        progress.note(
            f"every clip of {data} fine-tunes and calibrates the export: audit it on other speakers, or pass "
            "--split-file (train writes split.csv) to keep the test speakers out"
        )
        return None
    from ondevice_audit.data.manifest import read_manifest, select_split
    from ondevice_audit.data.tables import read_table

    chosen = select_split(read_manifest(data), split_file, split).frame
    assignments = read_table(split_file)
    test = assignments[assignments["split"] == "test"]
    key = "speaker" if "speaker" in chosen.columns and "speaker" in test.columns else "path"
    shared = sorted(set(chosen[key]) & set(test[key]))
    if shared and split != "test":
        stderr.print(
            f"[yellow]warning: {len(shared)} {key}(s) of split {split!r} are also in the test split of {split_file}: "
            "an audit on the test split would measure them on data the export was fitted to[/yellow]",
            highlight=False,
        )
    elif split == "test":
        stderr.print(
            f"[yellow]warning: split 'test' of {split_file} tunes and calibrates the export: an audit on those "
            "speakers would measure them on data the export was fitted to[/yellow]",
            highlight=False,
        )
    return split_file, split


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
