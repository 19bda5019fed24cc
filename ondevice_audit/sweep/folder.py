"""The layout of a sweep folder, known here and nowhere else.

```
runs/NAME/
  sweep.json          what was asked (matrix, settings, cells), and whether it is running or finished
  results.csv         one row per cell (and results.parquet with pyarrow)
  summary.json/.md    the analysis; metric_vs_rb.png its plot
  cells/<id>/         report.json, predictions.csv and the model file of a finished cell, or error.txt
```

Nothing in it is needed to resume (that reads the cache); everything in it is what ``gate``, ``report``,
``compare`` and ``demo`` read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ondevice_audit.errors import UsageError

__all__ = ["NOT_A_SWEEP", "CellFolder", "SweepFolder"]

NOT_A_SWEEP = "{path} is not a finished sweep folder (no {name}): pass a report.json or a sweep folder runs/NAME"
BAD_STATE = "{path}: not a sweep state file ({error})"


@dataclass(frozen=True)
class CellFolder:
    path: Path

    report = property(lambda self: self.path / "report.json")
    predictions = property(lambda self: self.path / "predictions.csv")
    error = property(lambda self: self.path / "error.txt")

    def model(self, name: str) -> Path:
        return self.path / name


@dataclass(frozen=True)
class SweepFolder:
    path: Path

    state = property(lambda self: self.path / "sweep.json")
    results = property(lambda self: self.path / "results.csv")
    parquet = property(lambda self: self.path / "results.parquet")
    summary_json = property(lambda self: self.path / "summary.json")
    summary_md = property(lambda self: self.path / "summary.md")
    plot = property(lambda self: self.path / "metric_vs_rb.png")

    def cell(self, cell_id: str) -> CellFolder:
        return CellFolder(self.path / "cells" / cell_id)

    def is_sweep(self) -> bool:
        return self.state.is_file()

    def require(self, *files: Path) -> None:
        """A ``UsageError`` naming the first of ``files`` (default: the state file) that is missing."""
        for file in files or (self.state,):
            if not file.is_file():
                raise UsageError(NOT_A_SWEEP.format(path=self.path, name=file.name))

    def read_state(self) -> dict[str, Any]:
        self.require()
        try:
            state = json.loads(self.state.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise UsageError(BAD_STATE.format(path=self.state, error=exc)) from None
        if not isinstance(state, dict):
            raise UsageError(BAD_STATE.format(path=self.state, error="not a JSON object"))
        return state

    def cell_ids(self) -> list[str]:
        """The cells in sweep order; a ``UsageError`` for a state file whose ids are not plain folder names."""
        try:
            cells = [str(cell["id"]) for cell in self.read_state()["cells"]]
        except (KeyError, TypeError) as exc:
            raise UsageError(BAD_STATE.format(path=self.state, error=exc)) from None
        odd = next((cell for cell in cells if cell in ("", ".", "..") or Path(cell).name != cell), None)
        if odd is not None:
            raise UsageError(BAD_STATE.format(path=self.state, error=f"cell id {odd!r} is not a folder name"))
        return cells
