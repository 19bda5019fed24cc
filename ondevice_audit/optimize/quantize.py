"""Quantisation settings as data: one ``QuantizationConfig`` means the same thing to every exporter.

Each backend (``ondevice_audit.export``) maps an approach onto its own toolchain; the approaches differ in
what is stored and computed in low precision:

- ``f32``: no quantisation, the reference every other file is compared with.
- ``f16``: float16 weights (half the size), float32 inputs and outputs.
- ``dynamic``: int8 weights, activations quantised on the fly at run time; needs no data.
- ``int8``: int8 weights and activations, with activation ranges calibrated on representative inputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from ondevice_audit.errors import UsageError

__all__ = ["DEFAULT_ATOL", "QuantApproach", "QuantizationConfig"]


class QuantApproach(StrEnum):
    F32 = "f32"
    F16 = "f16"
    DYNAMIC = "dynamic"
    INT8 = "int8"

    @classmethod
    def parse(cls, text: str) -> QuantApproach:
        try:
            return cls(text.strip().lower())
        except ValueError:
            raise UsageError(f"unknown quantization {text!r}; choose from {', '.join(a.value for a in cls)}") from None


DEFAULT_ATOL = {
    QuantApproach.F32: 1e-4,
    QuantApproach.F16: 1e-2,
    QuantApproach.DYNAMIC: 5e-2,
    QuantApproach.INT8: 1e-1,
}
"""Largest expected |score difference| to the Keras model. Scores are softmax probabilities in [0, 1]:
f32 differs by float rounding only; an int8 output tensor alone has a step of 1/256, and activation
quantisation compounds it through the layers."""


@dataclass(frozen=True)
class QuantizationConfig:
    approach: QuantApproach = QuantApproach.F32
    calibration_samples: int = 200
    """Representative inputs used to calibrate int8 activation ranges (more = slower, steadier ranges)."""
    seed: int = 0
    """Which representative inputs are drawn when more are available than ``calibration_samples``."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "approach", QuantApproach(self.approach))
        if self.calibration_samples < 1:
            raise UsageError(f"calibration needs at least 1 sample, got {self.calibration_samples}")

    @property
    def needs_data(self) -> bool:
        return self.approach is QuantApproach.INT8

    def calibration_set(self, inputs: np.ndarray | None) -> np.ndarray | None:
        """A seeded, order-preserving subset of at most ``calibration_samples`` rows of ``inputs``."""
        if inputs is None or len(inputs) <= self.calibration_samples:
            return inputs
        rng = np.random.default_rng(self.seed)
        rows = np.sort(rng.choice(len(inputs), size=self.calibration_samples, replace=False))
        return inputs[rows]
