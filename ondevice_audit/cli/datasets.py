"""``ondevice-audit datasets``: generate the datasets the tool can be tried on."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import pandas as pd
import typer
from rich.console import Console
from rich.table import Table

from ondevice_audit.cli import app
from ondevice_audit.cli._progress import RichProgress
from ondevice_audit.data.synth_kws import ACCENTS, KEYWORDS, UNKNOWN_LABEL, generate_synth_kws

datasets = typer.Typer(help="Generate datasets to try the tool on.", no_args_is_help=True)
app.add_typer(datasets, name="datasets")


@datasets.command("synth-kws")
def synth_kws(
    out: Annotated[Path, typer.Option("--out", help="Folder for clips/ and manifest.csv.")],
    seed: Annotated[int, typer.Option(help="Seed for the speakers' speed/pitch and their unknown words.")] = 0,
    prosody_variants: Annotated[
        int, typer.Option(min=1, help="Speakers per voice: distinct speed/pitch settings of each voice.")
    ] = 2,
    unknown_words: Annotated[int, typer.Option(min=0, help="Non-keyword words each speaker says.")] = 2,
    accent: Annotated[
        list[str] | None, typer.Option(help="espeak-ng voice to use as an accent; repeat for several.")
    ] = None,
    workers: Annotated[int | None, typer.Option(min=1, help="espeak-ng processes at once.")] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an existing manifest.csv and clips/.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress or summary.")] = False,
) -> None:
    """Synthesize a keyword-spotting dataset with espeak-ng (synthetic voices, not real speakers)."""
    manifest = generate_synth_kws(
        out,
        seed=seed,
        prosody_variants=prosody_variants,
        unknown_words=unknown_words,
        accents=accent or ACCENTS,
        workers=workers,
        overwrite=overwrite,
        progress=RichProgress(quiet=quiet),
    )
    if not quiet:
        _summary(Console(), manifest, out)


def _summary(console: Console, manifest: pd.DataFrame, out: Path) -> None:
    counts = pd.crosstab(manifest["label"], manifest["gender"]).reindex([*KEYWORDS, UNKNOWN_LABEL], fill_value=0)
    table = Table("label", *counts.columns, title=f"{len(manifest)} clips in {out}")
    for label, row in counts.iterrows():
        table.add_row(str(label), *(str(n) for n in row))
    console.print(table)
    speakers = manifest.groupby("gender")["speaker"].nunique()
    per_gender = ", ".join(f"{n} {gender}" for gender, n in speakers.items())
    console.print(f"speakers: {per_gender}; accents: {manifest['accent'].nunique()}")
