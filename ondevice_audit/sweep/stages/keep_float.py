"""``export`` of an ``int8-keepN`` cell: int8 with the N layers that hurt the worse-off group most kept in float.

``[explain] top_layers = N`` in the matrix adds the quantization levels ``int8-keep1`` ... ``int8-keepN`` next
to ``int8`` (``matrix.py``); each such cell's export is this stage: the cell's model (trained, or pruned)
calibrated exactly as its ``int8`` sibling is (same training inputs, samples and seed), the layers chosen on
the validation speakers over ``data.bias_attribute`` (``explain/selective.py``: TF Lite's quantization debugger
per speaker, ranked with the speaker bootstrap), then the usual parity check against the Keras model. The cell
is audited on the test speakers like every other, so the choice and its audit never see the same speakers.
The chosen layers are in the file's metadata (``kept_in_float``) and the cell's report.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ondevice_audit.sweep.matrix import KEEP_FLOAT
from ondevice_audit.sweep.stages.base import TaskContext, feature_arrays
from ondevice_audit.sweep.stages.export import ExportSettings

__all__ = ["KeepFloatSettings"]


@dataclass(frozen=True)
class KeepFloatSettings(ExportSettings):
    """``quantization`` is ``int8`` (how the rest is quantized); ``keep`` layers stay in float."""

    keep: int = 1
    scoring: dict[str, Any] = dataclasses.field(default_factory=dict)
    """``ScoreOptions`` fields the layers are ranked with: the bias attribute, metric, bootstrap, seed..."""

    def _path(self, entry: Path, approach: Any) -> Path:
        return entry / f"model-{KEEP_FLOAT}{self.keep}.tflite"

    def _export(self, task: TaskContext, keras_model: Any, spec: Any, path: Path, metadata: Any) -> Any:
        import time

        from ondevice_audit.explain.selective import keep_worst_layers
        from ondevice_audit.export.interface import ExportResult, check_parity
        from ondevice_audit.export.metadata import write_metadata
        from ondevice_audit.scoring import ScoreOptions

        arrays = feature_arrays(task.cache, self.features)
        split = "val" if len(arrays["val_x"]) else "train"  # without a validation split, the training speakers
        frame = task.sweep.frames[split].loc[arrays[f"{split}_rows"]]
        calibration = spec.quantization.calibration_set(arrays["train_x"])
        options = ScoreOptions(**{**self.scoring, "groups": tuple(self.scoring["groups"]),
                                  "negative_labels": tuple(self.scoring["negative_labels"])})  # fmt: skip
        started = time.perf_counter()
        scoring = task.sweep.matrix.scoring_task(tuple(task.sweep.classes))  # a detector: at the sweep's point
        selection = keep_worst_layers(keras_model, calibration, arrays[f"{split}_x"], frame, scoring, options,
                                      self.keep)  # fmt: skip
        seconds = time.perf_counter() - started
        path.write_bytes(selection.flatbuffer)
        level = f"{KEEP_FLOAT}{self.keep}"
        metadata.extra.update(format="tflite", quantization=level, kept_in_float=selection.kept,
                              explain={**selection.facts, "split": split})  # fmt: skip
        write_metadata(path, metadata)
        parity = check_parity(keras_model, path, calibration[: spec.parity_samples])
        ok = parity.max_abs_diff <= spec.tolerance and parity.top1_agreement >= spec.min_top1_agreement
        warnings = [] if "reason" not in selection.facts else [f"kept in float: {selection.facts['reason']}"]
        if not ok:
            warnings.append(f"scores differ from Keras by up to {parity.max_abs_diff:.3g}; top-1 agrees on "
                            f"{parity.top1_agreement:.0%} of {parity.samples} inputs")  # fmt: skip
        return ExportResult(path, "tflite", level, path.stat().st_size, parity.max_abs_diff,
                            parity.top1_agreement, ok, warnings, seconds)  # fmt: skip
