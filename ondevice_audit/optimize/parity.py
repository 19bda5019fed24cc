"""How far a transformed model's scores drift from its source's on the same inputs.

Every conversion and quantisation is checked this way: a Keras model against its TFLite/ONNX export
(``export/interface.py``), an ONNX file against ONNX Runtime's quantisation of it (``onnx_quantize.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["MIN_TOP1_AGREEMENT", "Parity", "compare_scores"]

MIN_TOP1_AGREEMENT = 0.9
"""Default share of parity inputs whose top-1 class must match the source model's."""


@dataclass(frozen=True)
class Parity:
    max_abs_diff: float
    top1_agreement: float
    samples: int


def compare_scores(reference: np.ndarray, scores: np.ndarray) -> Parity:
    """How far ``scores`` are from the source model's ``reference`` scores of the same inputs.

    The agreement is of the top-1 class, or for a detector's single probability of the decision at 0.5
    (argmax over one column would agree always, whatever the export did).
    """
    if reference.shape[-1] == 1:
        agree = (scores[:, 0] >= 0.5) == (reference[:, 0] >= 0.5)
    else:
        agree = scores.argmax(axis=1) == reference.argmax(axis=1)
    return Parity(max_abs_diff=float(np.abs(scores - reference).max()), top1_agreement=float(agree.mean()),
                  samples=len(reference))  # fmt: skip
