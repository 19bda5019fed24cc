"""What every explanation provides: the layers, their per-speaker errors, and a variant with some layers undone.

An ``Explainer`` knows one compression (quantization: ``quantization.py``; pruning: ``pruning.py``). The job
(``job.py``) is the same for both: audit base and variant, find the worse-off group, rank the layers by how much
more their error hurts that group (``ranking.py``), undo the top-ranked layers one, two, three at a time, audit
those candidates on the same clips and recommend the smallest change that brings RB back within the base's
interval.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from ondevice_audit.progress import Progress

__all__ = ["Explainer", "Layer", "LayerErrors"]


@dataclass(frozen=True)
class Layer:
    node: str
    """What the fix names: the op's output tensor (quantization) or the Keras layer (pruning)."""
    op: str
    """The op or Keras layer type."""
    name: str
    """Readable: the Keras layer(s) the op was made of."""
    scale: float | None = None
    """Quantization step of the op's int8 output (quantization only)."""
    sparsity: float | None = None
    """Share of zero weights in the variant's kernel (pruning only)."""
    base_sparsity: float | None = None


@dataclass
class LayerErrors:
    """Per unit of resampling (speaker, or clip without speakers) and per layer, summed over the unit's clips: the
    per-clip mean squared error of the layer's output and the per-clip mean square of the reference output."""

    layers: list[Layer]
    squared_error: np.ndarray
    """``[units, layers]``."""
    power: np.ndarray
    """``[units, layers]``."""


class Explainer(ABC):
    kind: ClassVar[str]
    """``quantization`` or ``pruning``."""
    undo: ClassVar[str]
    """What a candidate does to its layers, for reports: ``kept in float``, ``restored dense``."""

    @abstractmethod
    def reference_runs(self, out: Path) -> list[tuple[str, Path]]:
        """Models audited next to base and variant (label, path): the variant as rebuilt here, so a candidate's
        change is read against the same conversion."""

    @abstractmethod
    def layer_errors(self, inputs: np.ndarray, units: np.ndarray, progress: Progress) -> LayerErrors:
        """Every layer's error against the base on ``inputs`` (row ``i`` belongs to unit ``units[i]``)."""

    @abstractmethod
    def candidate(self, layers: Sequence[Layer], out: Path, stem: str) -> Path:
        """The variant with ``layers`` undone, written into ``out`` (with the variant's metadata)."""

    def facts(self) -> dict[str, object]:
        """What the report records of how the explanation was made (calibration, reproduction...)."""
        return {}
