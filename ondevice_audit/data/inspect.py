"""``datasets inspect``: what a manifest holds per group, and what will bite an audit before it runs.

Per group value: clips, speakers, total duration, label distribution and sample-rate mix (image sizes for
images). Durations, rates and sizes come from file headers (``soundfile.info``, ``PIL.Image.open``), which
read a few bytes per file and decode nothing, so a large corpus is inspected in seconds. Warnings name the
problems that make an audit misleading: groups smaller than ``--min-group-size`` (left out of RB), speakers
in more than one split (a test split that shares speakers with training measures memorisation), labels a
group has no clips of (its per-label metrics are undefined), and every bad row or file of the manifest
(read leniently, as ``datasets import manifest`` reads it).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import soundfile as sf
from PIL import Image, UnidentifiedImageError

from ondevice_audit.data.corpora.files import IMAGE_SUFFIXES
from ondevice_audit.data.corpora.interface import RESERVED_COLUMNS, UNREADABLE_FILE, Problem
from ondevice_audit.data.corpora.manifest import ManifestAdapter
from ondevice_audit.data.interface import check_group_columns
from ondevice_audit.errors import UsageError
from ondevice_audit.metrics import defaults
from ondevice_audit.metrics._groups import MIN_SPEAKERS
from ondevice_audit.metrics.frame import MISSING_GROUP
from ondevice_audit.progress import NullProgress, Progress

__all__ = ["AUTO_GROUP_MAX_VALUES", "NO_SPEAKER_COLUMN", "inspect_manifest"]

NO_SPEAKER_COLUMN = (
    "no speaker column: an audit will resample clips instead of speakers, which treats clips of one speaker as "
    "independent, so its intervals are too narrow and p-values too small; add a speaker column (a session or "
    "recording id will do)"
)
AUTO_GROUP_MAX_VALUES = 50
"""Without ``-g``, columns with at most this many distinct values are inspected as groups."""
_LISTED_PROBLEMS = 1000
_EXAMPLES = 5


def inspect_manifest(
    manifest: Path,
    groups: Sequence[str] = (),
    *,
    min_group_size: int = defaults.MIN_GROUP_SIZE,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """A JSON-ready description of ``manifest`` per group value, with problems and warnings."""
    if min_group_size < 0:
        raise UsageError(f"--min-group-size must be 0 or more, got {min_group_size}")
    progress = progress or NullProgress()
    result = ManifestAdapter().read(manifest, progress=progress)
    problems = list(result.problems)
    frame = result.frame
    if groups:
        check_group_columns(frame, list(groups), manifest, set(RESERVED_COLUMNS))
        chosen = list(groups)
        how = f"{', '.join(chosen)}, as given with -g"
    else:
        chosen = [c for c in result.groups if not c.endswith("_raw") and frame[c].nunique() <= AUTO_GROUP_MAX_VALUES]
        how = (
            f"{', '.join(chosen) or 'none'}: every column with at most {AUTO_GROUP_MAX_VALUES} distinct values "
            "(choose with -g)"
        )

    headers = _probe(result.root, frame["path"], problems, progress)
    readable = headers["ok"].to_numpy()
    frame, headers = frame[readable].reset_index(drop=True), headers[readable].reset_index(drop=True)
    has_speaker = "speaker" in frame.columns
    labels = sorted(frame["label"].unique())
    summary = {
        "source": str(manifest),
        "modality": result.modality,
        "min_group_size": min_group_size,
        "groups_chosen": how,
        **_stats(frame, headers, has_speaker),
        "splits": _splits(frame, has_speaker),
        "speakers_in_several_splits": _crossing(frame) if has_speaker else [],
        "attributes": [],
    }
    warnings: list[str] = [] if has_speaker else [NO_SPEAKER_COLUMN]
    for column in chosen:
        attribute, notes = _attribute(column, frame, headers, labels, min_group_size)
        summary["attributes"].append(attribute)
        warnings += notes

    crossing = summary["speakers_in_several_splits"]
    if crossing:
        warnings.append(
            f"{len(crossing)} speaker(s) are in more than one split (e.g. {_listed(crossing)}): a test split "
            f"sharing speakers with training measures memorisation, not reliability"
        )
    if len(summary["sample_rates"]) > 1:
        warnings.append(
            f"sample rates differ ({_mix(summary['sample_rates'])}): clips are resampled to the "
            f"front-end's rate, so groups recorded at other rates may differ for that reason alone"
        )
    counts = pd.Series([p.kind for p in problems], dtype=str).value_counts()
    if len(problems):
        warnings.append(
            f"{len(problems)} problem(s) in the manifest or its files: "
            + ", ".join(f"{n} {kind}" for kind, n in counts.items())
        )
    summary["problems"] = {
        "total": len(problems),
        "by_kind": {str(k): int(n) for k, n in counts.items()},
        "listed": [p.to_dict() for p in problems[:_LISTED_PROBLEMS]],
    }
    summary["warnings"] = warnings
    return summary


def _attribute(
    column: str, frame: pd.DataFrame, headers: pd.DataFrame, labels: list[str], min_group_size: int
) -> tuple[dict[str, Any], list[str]]:
    """One group column's values with their stats, and what about them would mislead an audit."""
    has_speaker = "speaker" in frame.columns
    values = frame[column].astype(str).replace("", MISSING_GROUP)
    rows, warnings = [], []
    for value in sorted(values.unique()):
        mask = (values == value).to_numpy()
        stats = _stats(frame[mask], headers[mask], has_speaker)
        missing = [label for label in labels if label not in stats["labels"]]
        rows.append({"value": value, **stats, "missing_labels": missing})
        if stats["clips"] < min_group_size:
            warnings.append(
                f"{column}={value}: {stats['clips']} clip(s), below --min-group-size {min_group_size} "
                f"(shown in reports but left out of RB)"
            )
        if has_speaker and stats["speakers"] < MIN_SPEAKERS:
            warnings.append(
                f"{column}={value}: {stats['speakers']} speaker (audits leave it out of RB: its interval would "
                "resample one voice)"
            )
        if missing:
            warnings.append(f"{column}={value} has no clips of label(s) {_listed(missing)}")
    return {"column": column, "groups": rows}, warnings


def _probe(root: Path, paths: pd.Series, problems: list[Problem], progress: Progress) -> pd.DataFrame:
    """Per file: ok, duration (s, audio), sample rate (audio), size ``WxH`` (images), from headers only."""
    n = len(paths)
    ok = np.ones(n, dtype=bool)
    duration = np.full(n, np.nan)
    rate = np.full(n, "", dtype=object)
    size = np.full(n, "", dtype=object)
    with progress.task("Reading file headers", total=n) as advance:
        for i, relative in enumerate(paths):
            path = root / relative
            try:
                if path.suffix.lower() in IMAGE_SUFFIXES:
                    with Image.open(path) as image:
                        size[i] = f"{image.width}x{image.height}"
                else:
                    info = sf.info(str(path))
                    duration[i] = info.frames / info.samplerate
                    rate[i] = str(info.samplerate)
            except (sf.LibsndfileError, RuntimeError, UnidentifiedImageError, OSError, ValueError) as exc:
                ok[i] = False
                # libsndfile says "Error opening '<full path>': <why>"; the path is already in the problem
                reason = (str(exc).splitlines() or [type(exc).__name__])[0].split("': ", 1)[-1]
                problems.append(Problem(UNREADABLE_FILE, f"header cannot be read ({reason}); left out", file=relative))
            advance(1)
    return pd.DataFrame({"ok": ok, "duration": duration, "rate": rate, "size": size})


def _stats(frame: pd.DataFrame, headers: pd.DataFrame, has_speaker: bool) -> dict[str, Any]:
    audio = headers["rate"] != ""
    return {
        "clips": len(frame),
        "speakers": int(frame["speaker"].nunique()) if has_speaker else None,
        "duration_seconds": round(float(headers.loc[audio, "duration"].sum()), 3) if audio.any() else None,
        "labels": _counts(frame["label"]),
        "sample_rates": _counts(headers.loc[audio, "rate"], numeric=True),
        "image_sizes": _counts(headers.loc[headers["size"] != "", "size"]),
    }


def _splits(frame: pd.DataFrame, has_speaker: bool) -> dict[str, dict[str, int | None]]:
    if "split" not in frame.columns:
        return {}
    return {
        str(split): {"clips": len(rows), "speakers": int(rows["speaker"].nunique()) if has_speaker else None}
        for split, rows in frame.groupby("split", sort=True)
    }


def _crossing(frame: pd.DataFrame) -> list[str]:
    """Speakers with clips in more than one split."""
    if "split" not in frame.columns:
        return []
    per_speaker = frame.groupby("speaker")["split"].nunique()
    return sorted(str(s) for s in per_speaker.index[per_speaker > 1])


def _counts(values: pd.Series, numeric: bool = False) -> dict[str, int]:
    counts = values.astype(str).value_counts()
    order = sorted(counts.index, key=lambda v: (int(v), v) if numeric else (0, v))
    return {str(v): int(counts[v]) for v in order}


def _mix(counts: dict[str, int]) -> str:
    return ", ".join(f"{value} Hz ×{n}" for value, n in counts.items())


def _listed(values: Sequence[str]) -> str:
    shown = ", ".join(values[:_EXAMPLES])
    return shown + (f" and {len(values) - _EXAMPLES} more" if len(values) > _EXAMPLES else "")
