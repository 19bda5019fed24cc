"""``prune``: a base model pruned and fine-tuned, once per (base, pruning setting); skipped at sparsity 0.

The same ``optimize.prune`` that ``ondevice-audit export --prune`` runs. The entry holds ``model.keras`` and
``prune.json``: the sparsity the weights actually have (tfmot leaves depthwise kernels dense), the schedule
used, the fine-tune curves and, as ``facts``, what the exported file's metadata will say of its pruning.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from ondevice_audit.sweep.stages.base import StageSettings, TaskContext, feature_arrays, write_json
from ondevice_audit.sweep.stages.train import (
    TRAINING_DISTRIBUTIONS,
    MitigationSettings,
    labels_of,
    load_model,
    mitigation_kwargs,
)

__all__ = ["PruneSettings"]


@dataclass(frozen=True)
class PruneSettings(StageSettings):
    stage = "prune"
    distributions = (*TRAINING_DISTRIBUTIONS, "tensorflow-model-optimization")
    uses_tensorflow = True

    features: str
    model: str
    """The ``train`` entry of the base model."""
    final_sparsity: float
    schedule: str
    learning_rate: float
    epochs: int
    batch_size: int
    seed: int
    mitigation: MitigationSettings | None = None

    def run(self, task: TaskContext, entry: Path) -> None:
        from ondevice_audit.optimize.prune import prune

        arrays = feature_arrays(task.cache, self.features)
        mitigation = mitigation_kwargs(task, arrays, self.mitigation)
        # Only reweight-heldout reads the validation split; the others leave it out.
        heldout = mitigation["mitigation"] == "reweight-heldout"
        result = prune(
            load_model(task, "train", self.model),
            arrays["train_x"],
            labels_of(task, "train", arrays["train_rows"]),
            final_sparsity=self.final_sparsity,
            schedule=self.schedule,  # type: ignore[arg-type]  # checked by the matrix: one of SCHEDULES
            learning_rate=self.learning_rate,
            epochs=self.epochs,
            batch_size=self.batch_size,
            seed=self.seed,
            validation=(arrays["val_x"], labels_of(task, "val", arrays["val_rows"])) if heldout else None,
            **mitigation,
        )
        result.model.save(str(entry / "model.keras"))
        summary = {f.name: getattr(result, f.name) for f in dataclasses.fields(result) if f.name != "model"}
        summary["unprunable"] = [dataclasses.asdict(layer) for layer in result.unprunable]
        summary["mitigation"] = dataclasses.asdict(self.mitigation) if self.mitigation else {"name": "none"}
        summary["facts"] = result.facts()
        write_json(entry / "prune.json", summary)
