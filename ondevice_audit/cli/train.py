"""``ondevice-audit train``: train a recipe on a manifest, split by speaker, and export it with metadata."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Column, Table

import ondevice_audit.cli._options as opt
from ondevice_audit._extras import require_extra
from ondevice_audit.cli._app import app
from ondevice_audit.cli._params import MAX_SEED, options_from
from ondevice_audit.cli._progress import Quiet, RichProgress, stderr, stdout
from ondevice_audit.errors import UsageError
from ondevice_audit.frontend import AudioFrontendSpec, MicroFrontendSpec
from ondevice_audit.model.recipes import RECIPES
from ondevice_audit.outputs import check_output_folder
from ondevice_audit.train import TrainOptions

_TRAINING = "Training"
_DEFAULTS = TrainOptions()


_TRAINABLE = ("mfcc", "logmel", "micro")


def _fractions(text: str) -> tuple[float, float, float]:
    try:
        values = tuple(float(x) for x in text.split(","))
    except ValueError:
        raise UsageError(f"--split {text!r} must be three numbers such as 0.8,0.1,0.1") from None
    if len(values) != 3:
        raise UsageError(f"--split {text!r} must be three numbers such as 0.8,0.1,0.1")
    return values


def _training(help: str | None = None, *flags: str, **extra: Any) -> Any:
    return typer.Option(*flags, help=help, rich_help_panel=_TRAINING, **extra)


def _detector(help: str) -> Any:
    return typer.Option(help=help, rich_help_panel=opt.DETECTOR_PANEL)


@app.command()
@options_from(opt.AUDIO_FRONTEND_OPTIONS)
def train(
    data: Annotated[Path, typer.Option("--data", "-d", help="Manifest CSV: path, label, group columns, speaker.")],
    recipe: Annotated[str, typer.Option(help=f"Architecture: {', '.join(RECIPES)}.")],
    out: Annotated[Path, typer.Option("--out", help="Folder for model.keras/.tflite/.onnx and the summary.")],
    epochs: Annotated[int, _training(min=1)] = _DEFAULTS.epochs,
    batch_size: Annotated[int, _training(min=1)] = _DEFAULTS.batch_size,
    learning_rate: Annotated[float, _training(min=0.0)] = _DEFAULTS.learning_rate,
    seed: Annotated[int, _training("Seed for the split, initialisation and shuffling.", min=0, max=MAX_SEED)] = (
        _DEFAULTS.seed
    ),
    group: Annotated[str | None, _training("Group column every split should represent in proportion.", "--group",
                                           "-g")] = None,  # fmt: skip
    split: Annotated[str, _training("Train,validation,test fractions of the files; speakers never straddle splits.")] = (
        ",".join(f"{share:g}" for share in _DEFAULTS.split)
    ),
    mitigation: Annotated[
        str, _training("Bias mitigation over the --group attribute: none, balanced, reweight, reweight-heldout.")
    ] = _DEFAULTS.mitigation,
    train_imbalance: Annotated[
        str | None, _training("Thin one group's training speakers, e.g. gender=female:0.2 (seeded).")
    ] = None,
    task: Annotated[str, _detector("classify: a softmax over every label; detect: one sigmoid probability of "
                                   "--positive-label (a wake-word detector).")] = _DEFAULTS.task,  # fmt: skip
    positive_label: Annotated[
        str | None, _detector("detect: the label of the phrase's clips; every other clip is a negative.")
    ] = None,
    feature_memory: Annotated[str, _training("Training features larger than this are written to disk and read a "
                                             "batch at a time (e.g. 512MiB, 8GiB).")] = "4GiB",  # fmt: skip
    quiet: Quiet = False,
    frontend_choice: opt.FrontendChoice = opt.NO_FRONTEND,
) -> None:
    """Train a recipe on a manifest and write model.keras, model.tflite and model.onnx with metadata.

    The manifest is split by speaker (held-out speakers in [bold]split.csv[/bold], split "test"), so the
    model can be audited on people it never heard.
    """
    require_extra("train", "ondevice-audit train")
    from ondevice_audit.targets.mcu import parse_size
    from ondevice_audit.train import WRITES, train_on_manifest

    check_output_folder(out, "--out", {"manifest": data}, WRITES)
    spec = frontend_choice.spec(opt.FrontendKind.mfcc)
    if not isinstance(spec, AudioFrontendSpec | MicroFrontendSpec) or spec.kind not in _TRAINABLE:
        raise UsageError(f"train takes --features {', '.join(_TRAINABLE)}; image models are trained by sweep")
    options = TrainOptions(recipe=recipe, frontend=spec, epochs=epochs, batch_size=batch_size,
                           learning_rate=learning_rate, seed=seed, group=group, split=_fractions(split),
                           mitigation=mitigation, train_imbalance=train_imbalance, task=task,
                           positive_label=positive_label, feature_memory=parse_size(feature_memory))  # fmt: skip
    progress = RichProgress(quiet=quiet)
    outcome = train_on_manifest(data, out, options, progress)
    for note in outcome.notes:
        progress.note(note)
    if not quiet:
        _print(stdout(), outcome.summary, out)
    for result in outcome.exports:
        for warning in result.warnings:
            stderr.print(f"[yellow]{result.path.name}: {warning}[/yellow]", highlight=False)


def _print(console: Console, summary: dict[str, Any], out: Path) -> None:
    final = summary["final"]
    metrics = ", ".join(f"{k} {v:.3f}" for k, v in final.items())
    split = summary["split"]
    console.print(
        f"{summary['recipe']}: {metrics}; speakers train/val/test "
        f"{split['train']['speakers']}/{split['val']['speakers']}/{split['test']['speakers']}"
    )
    agree = "decision agree" if summary.get("task") == "detect" else "top-1 agree"
    columns = (Column("file", overflow="fold"), "size", "parity (max |Δ|)", agree)
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
