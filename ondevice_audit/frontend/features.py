"""A manifest's files through a front-end into one array: the features training and the sweep compute."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ondevice_audit.errors import UsageError
from ondevice_audit.frontend import Frontend, FrontendSpec, build_frontend
from ondevice_audit.frontend.interface import InputFacts
from ondevice_audit.progress import NullProgress, Progress

__all__ = ["Features", "compute_features"]

_FEATURE_CHUNK = 256


@dataclass
class Features:
    inputs: np.ndarray
    """Model inputs for the rows that worked."""
    frame: pd.DataFrame
    """The manifest rows that worked, aligned with ``inputs``."""
    failures: dict[str, str] = field(default_factory=dict)
    """File -> why it could not be turned into an input."""
    facts: InputFacts = field(default_factory=InputFacts)
    """Clips the front-end cut, padded, resampled or mixed down to fit."""


def compute_features(
    frame: pd.DataFrame,
    spec: FrontendSpec | Frontend,
    progress: Progress | None = None,
    *,
    path_column: str = "file",
    out: Path | None = None,
) -> Features:
    """Run the front-end (one of ours from its spec, or a built one such as a user's plug-in) over
    ``frame[path_column]`` (absolute paths); failed files are reported, not fatal.

    With ``out`` (an ``.npy`` path) the inputs are written there chunk by chunk and ``Features.inputs`` is that
    file opened as a read-only memory map: features larger than memory are never held whole (``model/train.py``
    then reads them a batch at a time). The values are the same either way."""
    frontend = spec if isinstance(spec, Frontend) else build_frontend(spec)
    paths = [Path(p) for p in frame[path_column]]
    chunks, ok_masks, failures, facts = [], [], {}, InputFacts()
    writer: np.memmap | None = None
    written = 0
    with (progress or NullProgress()).task("Computing features", total=len(paths)) as advance:
        for start in range(0, len(paths), _FEATURE_CHUNK):
            chunk = paths[start : start + _FEATURE_CHUNK]
            batch = frontend.transform(chunk)
            if len(batch.inputs) and out is not None:
                if writer is None:
                    shape = (len(paths), *batch.inputs.shape[1:])
                    writer = np.lib.format.open_memmap(out, mode="w+", dtype=np.float32, shape=shape)
                writer[written : written + len(batch.inputs)] = batch.inputs
                written += len(batch.inputs)
            elif len(batch.inputs):
                chunks.append(batch.inputs)
            ok_masks.append(batch.ok)
            failures.update({str(chunk[i]): reason for i, reason in batch.failures.items()})
            facts.merge(batch.facts)
            advance(len(chunk))
    ok = np.concatenate(ok_masks) if ok_masks else np.zeros(0, dtype=bool)
    if not ok.any():
        raise UsageError(f"no file could be turned into model inputs ({len(failures)} failed)")
    if writer is not None:
        assert out is not None  # the writer is a memory map of out
        writer.flush()
        del writer
        return Features(np.load(out, mmap_mode="r")[:written], frame[ok], failures, facts)
    return Features(np.concatenate(chunks).astype(np.float32, copy=False), frame[ok], failures, facts)
