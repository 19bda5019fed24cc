"""``ondevice-audit train``: train a recipe on a manifest, split by speaker, and export it with metadata."""

from __future__ import annotations

import json
import time
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Column, Table

from ondevice_audit._extras import require_extra
from ondevice_audit.cli import _options as opt
from ondevice_audit.cli import app
from ondevice_audit.cli._progress import Quiet, RichProgress, stderr, stdout
from ondevice_audit.errors import UsageError
from ondevice_audit.export.interface import EXPORT_FORMATS, ExportResult, export_variants, save_keras
from ondevice_audit.export.metadata import ModelMetadata
from ondevice_audit.model.recipes import RECIPES, get_recipe
from ondevice_audit.optimize.quantize import QuantApproach

if TYPE_CHECKING:  # training loads pandas: imported when the command runs
    import pandas as pd

    from ondevice_audit.model.train import LabelledSplits

_FRONTEND = "Front-end"
_TRAINING = "Training"


class TrainFeatures(StrEnum):
    mfcc = "mfcc"
    logmel = "logmel"


def _fractions(text: str) -> tuple[float, float, float]:
    try:
        values = tuple(float(x) for x in text.split(","))
    except ValueError:
        raise UsageError(f"--split {text!r} must be three numbers such as 0.8,0.1,0.1") from None
    if len(values) != 3:
        raise UsageError(f"--split {text!r} must be three numbers such as 0.8,0.1,0.1")
    return values  # type: ignore[return-value]


@app.command()
def train(
    data: Annotated[Path, typer.Option("--data", "-d", help="Manifest CSV: path, label, group columns, speaker.")],
    recipe: Annotated[str, typer.Option(help=f"Architecture: {', '.join(RECIPES)}.")],
    out: Annotated[Path, typer.Option("--out", help="Folder for model.keras/.tflite/.onnx and the summary.")],
    features: Annotated[TrainFeatures, typer.Option(rich_help_panel=_FRONTEND)] = TrainFeatures.mfcc,
    sample_rate: opt.SampleRate = 16000,
    clip_seconds: opt.ClipSeconds = 1.0,
    n_mels: opt.NMels = 40,
    n_mfcc: opt.NMfcc = 10,
    frame_length_ms: opt.FrameLengthMs = 40.0,
    frame_step: opt.FrameStep = 0.5,
    window: opt.Window = "hann",
    epochs: Annotated[int, typer.Option(min=1, rich_help_panel=_TRAINING)] = 20,
    batch_size: Annotated[int, typer.Option(min=1, rich_help_panel=_TRAINING)] = 64,
    learning_rate: Annotated[float, typer.Option(min=0.0, rich_help_panel=_TRAINING)] = 1e-3,
    seed: Annotated[
        int, typer.Option(help="Seed for the split, initialisation and shuffling.", rich_help_panel=_TRAINING)
    ] = 0,
    group: Annotated[
        str | None,
        typer.Option(
            "--group", "-g", help="Group column every split should represent in proportion.", rich_help_panel=_TRAINING
        ),
    ] = None,
    split: Annotated[
        str,
        typer.Option(
            help="Train,validation,test fractions of the files; speakers never straddle splits.",
            rich_help_panel=_TRAINING,
        ),
    ] = "0.8,0.1,0.1",
    mitigation: Annotated[
        str,
        typer.Option(
            help="Bias mitigation over the --group attribute: none, balanced, reweight, reweight-heldout.",
            rich_help_panel=_TRAINING,
        ),
    ] = "none",
    train_imbalance: Annotated[
        str | None,
        typer.Option(
            help="Thin one group's training speakers, e.g. gender=female:0.2 (seeded).", rich_help_panel=_TRAINING
        ),
    ] = None,
    quiet: Quiet = False,
) -> None:
    """Train a recipe on a manifest and write model.keras, model.tflite and model.onnx with metadata.

    The manifest is split by speaker (held-out speakers in [bold]split.csv[/bold], split "test"), so the
    model can be audited on people it never heard.
    """
    require_extra("train", "ondevice-audit train")
    from ondevice_audit.model.train import prepare_splits, train_model

    started = time.perf_counter()
    chosen = get_recipe(recipe)
    spec = opt.audio_spec(
        features.value, sample_rate, clip_seconds, n_mels, n_mfcc, frame_length_ms, frame_step, window
    )
    fractions = _fractions(split)
    progress = RichProgress(quiet=quiet)
    if (mitigation != "none" or train_imbalance) and not group:
        raise UsageError("--mitigation and --train-imbalance act on a group column: pass --group")
    splits = prepare_splits(
        data, spec, fractions=fractions, seed=seed, group=group, progress=progress, train_imbalance=train_imbalance
    )
    if splits.failures:
        progress.note(f"{len(splits.failures)} files could not be read and were left out (see train_summary.json)")
    model, history = train_model(
        chosen,
        splits.train.inputs,
        splits.y_train,
        splits.val.inputs if splits.val else None,
        splits.y_val,
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        seed=seed,
        n_classes=len(splits.classes),
        progress=progress,
        mitigation=mitigation,
        train_groups=splits.train.frame[group].to_numpy() if group else None,
        val_groups=splits.val.frame[group].to_numpy() if group and splits.val else None,
    )
    for note in history["adjustments"]:
        progress.note(f"{chosen.name} adjusted to the input: {note}")
    extra = {
        "recipe": chosen.name,
        "adjustments": history["adjustments"],
        "features": spec.kind,
        "requested_sparsity": 0.0,
        "achieved_sparsity": 0.0,
        "training": {"epochs": epochs, "batch_size": batch_size, "learning_rate": learning_rate, "seed": seed},
        "mitigation": history["mitigation"],
        "train_imbalance": train_imbalance,
    }
    metadata = ModelMetadata(labels=splits.classes, frontend=spec, extra={**extra, "quantization": "f32"})
    out.mkdir(parents=True, exist_ok=True)
    save_keras(model, out / "model.keras", metadata)
    results = export_variants(
        model, EXPORT_FORMATS, [QuantApproach.F32], out, metadata, splits.train.inputs, seed=seed, progress=progress
    )
    _write_split(out / "split.csv", splits.frames)
    summary = _summary(splits, history, extra, results, fractions, group, time.perf_counter() - started)
    (out / "train_summary.json").write_text(json.dumps(summary, indent=2, default=str))
    if not quiet:
        _print(stdout(), summary, out)
    for result in results:
        for warning in result.warnings:
            stderr.print(f"[yellow]{result.path.name}: {warning}[/yellow]", highlight=False)


def _write_split(path: Path, frames: dict[str, pd.DataFrame]) -> None:
    """Which split each manifest row went to, keyed by the manifest's own ``path`` column."""
    import pandas as pd

    columns = [c for c in ("path", "label", "speaker") if c in frames["train"].columns]
    rows = [frame[columns].assign(split=name) for name, frame in frames.items()]
    pd.concat(rows).to_csv(path, index=False)


def _summary(
    splits: LabelledSplits,
    history: dict[str, Any],
    extra: dict[str, Any],
    results: list[ExportResult],
    fractions: tuple[float, float, float],
    group: str | None,
    seconds: float,
) -> dict[str, Any]:
    def described(frame: pd.DataFrame) -> dict[str, int]:
        speakers = frame["speaker"].nunique() if "speaker" in frame.columns else len(frame)
        return {"files": len(frame), "speakers": int(speakers)}

    curves = {key: values for key, values in history.items() if key not in ("adjustments", "mitigation", "seconds")}
    return {
        **extra,
        "labels": splits.classes,
        "split": {"fractions": fractions, "group": group, **{k: described(v) for k, v in splits.frames.items()}},
        "final": {key: values[-1] for key, values in curves.items()},
        "history": curves,
        "failed_files": splits.failures,
        "exports": [r.to_dict() for r in results],
        "training_seconds": history["seconds"],
        "seconds": seconds,
    }


def _print(console: Console, summary: dict[str, Any], out: Path) -> None:
    final = summary["final"]
    metrics = ", ".join(f"{k} {v:.3f}" for k, v in final.items())
    split = summary["split"]
    console.print(
        f"{summary['recipe']}: {metrics}; speakers train/val/test "
        f"{split['train']['speakers']}/{split['val']['speakers']}/{split['test']['speakers']}"
    )
    columns = (Column("file", overflow="fold"), "size", "parity (max |Δ|)", "top-1 agree")
    table = Table(*columns, title=f"Written to {out}")
    table.add_row("model.keras", f"{(out / 'model.keras').stat().st_size / 1024:.1f} KiB", "reference", "")
    for export in summary["exports"]:
        table.add_row(
            Path(export["path"]).name,
            f"{export['size_bytes'] / 1024:.1f} KiB",
            f"{export['parity']:.2e}" + ("" if export["parity_ok"] else " ⚠"),
            f"{export['top1_agreement']:.0%}",
        )
    console.print(table)
