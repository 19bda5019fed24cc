"""A groups CSV joined to a corpus' files: keyed by ``file`` (path relative to the corpus folder) or ``speaker``.

Folder corpora know labels and (from file names) speakers but not groups; the user supplies those in a
CSV. Keyed by ``file`` (or ``path``), each file gets its own row, and a ``speaker`` column there sets the
speaker. Keyed by ``speaker``, every clip of a speaker gets the speaker's row. Every other column except
``label`` and ``split`` is a group column. A file or speaker the CSV does not cover keeps its clips with
the groups missing, and is reported; a key listed twice keeps its first row, and is reported.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ondevice_audit.data.corpora.interface import (
    DUPLICATE_PATH,
    MALFORMED_ROW,
    MISSING_FILE,
    NO_GROUPS,
    RESERVED_COLUMNS,
    WHERE,
    Problem,
    safe_path,
)
from ondevice_audit.data.corpora.tables import read_rows
from ondevice_audit.data.interface import DataError

__all__ = ["join_groups"]


def join_groups(
    frame: pd.DataFrame, csv_path: Path, problems: list[Problem], *, speaker_key: bool = True
) -> tuple[pd.DataFrame, list[str]]:
    """``frame`` with the CSV's group columns added, and their names. ``speaker_key`` allows keying by speaker."""
    if not csv_path.is_file():
        raise DataError(f"groups CSV not found: {csv_path}; check the path")
    table = read_rows(csv_path, problems)
    if table is None:
        raise DataError(f"{csv_path}: not a usable groups CSV ({problems[-1].reason})")
    key = next((k for k in ("file", "path") if k in table.columns), None)
    if key is None and speaker_key and "speaker" in table.columns:
        key = "speaker"
    if key is None:
        keys = "file (or path) or speaker" if speaker_key else "file (or path)"
        raise DataError(
            f"{csv_path}: a groups CSV needs a {keys} column; it has {', '.join(c for c in table.columns if c != WHERE)}"
        )
    groups = [c for c in table.columns if c not in (key, "file", "path", WHERE, *RESERVED_COLUMNS)]
    table[key] = table[key].str.strip()
    if key != "speaker":
        normal = table[key].map(lambda text: safe_path(text) or "")
        for origin, text in table.loc[normal.eq(""), [WHERE, key]].itertuples(index=False):
            problems.append(
                Problem(MALFORMED_ROW, f"{key} {text!r} is empty or leaves the corpus folder; skipped", origin)
            )
        table = table.assign(**{key: normal})[normal.ne("")]
    duplicated = table[key].duplicated(keep="first")
    for origin, text in table.loc[duplicated, [WHERE, key]].itertuples(index=False):
        problems.append(Problem(DUPLICATE_PATH, f"{key} {text!r} listed again; the first row is kept", origin))
    table = table[~duplicated].set_index(key)

    name = csv_path.name
    if key == "speaker":
        if "speaker" not in frame.columns:
            raise DataError(f"{csv_path} is keyed by speaker but the files have no speaker ids; set --speaker-pattern")
        covered = frame["speaker"].isin(table.index)
        for speaker, clips in frame.loc[~covered, "speaker"].value_counts(sort=False).items():
            reason = f"speaker {speaker!r} is not in {name}; its {clips} clip(s) are kept with groups missing"
            problems.append(Problem(NO_GROUPS, reason))
        joined = table.reindex(frame["speaker"])
    else:
        covered = frame["path"].isin(table.index)
        for path in frame.loc[~covered, "path"]:
            problems.append(Problem(NO_GROUPS, f"not in {name}; kept with groups missing", file=path))
        for path, origin in table.loc[~table.index.isin(frame["path"]), WHERE].items():
            problems.append(
                Problem(MISSING_FILE, f"listed in {name} but not among the corpus' files; ignored", origin, str(path))
            )
        joined = table.reindex(frame["path"])
        if "speaker" in joined.columns:
            given = pd.Series(joined["speaker"].fillna("").str.strip().to_numpy(), index=frame.index)
            fallback = frame["speaker"] if "speaker" in frame.columns else frame["path"]
            frame = frame.assign(speaker=given.where(given != "", fallback))
    for column in groups:
        frame = frame.assign(**{column: joined[column].fillna("").str.strip().to_numpy()})
    return frame, groups
