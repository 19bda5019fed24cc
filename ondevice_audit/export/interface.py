"""Export settings as data, one exporter per backend.

An ``ExportSpec`` says what to produce (format, quantisation, parity tolerance); an ``Exporter`` knows how
for one backend and declares which approaches it supports. Every export ends with the same two steps: the
metadata goes into the file, and the file is run on its real runtime next to the Keras model. A file whose
input or output shape differs is broken (``ExportError``); numeric drift is expected from quantisation, so
it is reported as a warning with the top-1 agreement, and judged by the caller.
"""

from __future__ import annotations

import dataclasses
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ondevice_audit.errors import PipelineError, UsageError
from ondevice_audit.export.metadata import ModelMetadata, write_metadata
from ondevice_audit.optimize.parity import MIN_TOP1_AGREEMENT, Parity, compare_scores
from ondevice_audit.optimize.quantize import DEFAULT_ATOL, QuantApproach, QuantizationConfig

__all__ = [
    "ExportError",
    "ExportResult",
    "ExportSpec",
    "Exporter",
    "check_parity",
    ]


class ExportError(PipelineError):
    """A converter failed or produced a file that does not behave like the model it came from."""


@dataclass(frozen=True)
class ExportSpec:
    format: str
    """``tflite`` or ``onnx``."""
    quantization: QuantizationConfig = field(default_factory=QuantizationConfig)
    atol: float | None = None
    """Largest |score difference| to Keras that counts as parity; None: the approach's ``DEFAULT_ATOL``."""
    min_top1_agreement: float = MIN_TOP1_AGREEMENT
    """Share of parity inputs whose top-1 class must match Keras."""
    parity_samples: int = 64
    opset: int = 17
    """ONNX opset; ignored by other formats."""

    @property
    def approach(self) -> QuantApproach:
        return self.quantization.approach

    @property
    def tolerance(self) -> float:
        return DEFAULT_ATOL[self.approach] if self.atol is None else self.atol


@dataclass
class ExportResult:
    path: Path
    format: str
    quantization: str
    size_bytes: int
    parity: float
    """Largest |score difference| to the Keras model over the parity batch."""
    top1_agreement: float
    parity_ok: bool
    """Within ``atol`` and at or above ``min_top1_agreement``."""
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0
    """Conversion time, without the parity check."""

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "path": str(self.path)}


def check_parity(keras_model: Any, path: Path, inputs: np.ndarray) -> Parity:
    """Run ``inputs`` through ``path`` on its runtime and through Keras; a shape mismatch is fatal."""
    from ondevice_audit.runtimes import load_runtime

    runtime = load_runtime(path)
    expected_input = tuple(int(d) for d in keras_model.input_shape[1:])
    if tuple(runtime.input_shape) != expected_input:
        raise ExportError(f"{path.name}: input shape {runtime.input_shape} differs from the model's {expected_input}")
    reference = np.asarray(keras_model(inputs, training=False), dtype=np.float32)
    scores = runtime.run_all(inputs).scores
    if scores.shape != reference.shape:
        raise ExportError(
            f"{path.name}: output shape {scores.shape[1:]} differs from the model's {reference.shape[1:]}"
        )
    return compare_scores(reference, scores)


class Exporter(ABC):
    format: ClassVar[str]
    suffix: ClassVar[str]
    support: ClassVar[dict[QuantApproach, str]]
    """Approach -> how this backend implements it; an approach missing here is unsupported."""
    exclusions: ClassVar[dict[QuantApproach, str]] = {}
    """Approach -> why this backend cannot produce it."""

    def unsupported_reason(self, approach: QuantApproach) -> str | None:
        """None when ``approach`` can be exported, else a one-line reason."""
        if approach in self.support:
            return None
        return self.exclusions.get(approach, f"{self.format} export does not implement {approach.value}")

    def check(self, spec: ExportSpec, representative_inputs: np.ndarray | None) -> None:
        """Raise the ``UsageError`` ``export`` would raise, before any conversion work."""
        if spec.format != self.format:
            raise UsageError(f"the {self.format} exporter cannot write {spec.format}")
        reason = self.unsupported_reason(spec.approach)
        if reason:
            raise UsageError(f"{self.format} + {spec.approach.value} is not supported: {reason}")
        if spec.quantization.needs_data and (representative_inputs is None or len(representative_inputs) == 0):
            raise UsageError(f"{spec.approach.value} quantization calibrates on representative inputs; give some data")

    def export(
        self,
        keras_model: Any,
        spec: ExportSpec,
        out_path: Path,
        metadata: ModelMetadata,
        representative_inputs: np.ndarray | None = None,
    ) -> ExportResult:
        """Convert, embed ``metadata`` (plus format and quantisation), and check parity on the runtime."""
        self.check(spec, representative_inputs)
        calibration = spec.quantization.calibration_set(representative_inputs)
        out_path.parent.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        warnings = self._convert(keras_model, spec, out_path, calibration)
        seconds = time.perf_counter() - started
        extra = {**metadata.extra, "format": self.format, "quantization": spec.approach.value}
        write_metadata(out_path, dataclasses.replace(metadata, extra=extra))
        parity = check_parity(keras_model, out_path, self._parity_inputs(keras_model, spec, calibration))
        ok = parity.max_abs_diff <= spec.tolerance and parity.top1_agreement >= spec.min_top1_agreement
        if parity.max_abs_diff > spec.tolerance:
            warnings.append(
                f"scores differ from Keras by up to {parity.max_abs_diff:.3g} (tolerance {spec.tolerance:g})"
            )
        if parity.top1_agreement < spec.min_top1_agreement:
            warnings.append(
                f"top-1 class agrees with Keras on {parity.top1_agreement:.0%} of {parity.samples} inputs "
                f"(expected at least {spec.min_top1_agreement:.0%})"
            )
        return ExportResult(
            path=out_path,
            format=self.format,
            quantization=spec.approach.value,
            size_bytes=out_path.stat().st_size,
            parity=parity.max_abs_diff,
            top1_agreement=parity.top1_agreement,
            parity_ok=ok,
            warnings=warnings,
            seconds=seconds,
        )

    @staticmethod
    def _parity_inputs(keras_model: Any, spec: ExportSpec, calibration: np.ndarray | None) -> np.ndarray:
        """Real inputs when given (quantisation ranges fit them), else seeded standard-normal noise."""
        if calibration is not None and len(calibration):
            return np.asarray(calibration[: spec.parity_samples], dtype=np.float32)
        shape = tuple(int(d) for d in keras_model.input_shape[1:])
        rng = np.random.default_rng(spec.quantization.seed)
        return rng.standard_normal((spec.parity_samples, *shape)).astype(np.float32)

    @abstractmethod
    def _convert(self, keras_model: Any, spec: ExportSpec, out_path: Path, calibration: np.ndarray | None) -> list[str]:
        """Write the model to ``out_path``; return warnings worth showing the user."""
