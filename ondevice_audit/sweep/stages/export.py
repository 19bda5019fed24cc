"""``export``: a trained (pruned) model to one file per (format, quantisation), checked for parity.

The same exporters ``ondevice-audit export`` uses (``export/``), calibrating int8 on the training split. The
file's metadata says what was trained on what and how it was pruned, as ``train`` and ``export`` write it. A
user's TFLite or ONNX file (and the ``baseline`` cell) is exported as given, or quantised by ONNX Runtime. The
entry holds the file and ``export.json`` (parity, size, sparsity read back from the file, the metadata).
"""

from __future__ import annotations

import dataclasses
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ondevice_audit.sweep.stages.base import StageSettings, TaskContext, feature_arrays, read_json, write_json
from ondevice_audit.sweep.stages.train import TRAINING_DISTRIBUTIONS, load_model

__all__ = ["ExportSettings", "UserExportSettings"]

_CONVERTERS = ("tf2onnx", "onnx", "ai-edge-litert", "onnxruntime")
"""The converters, and the runtimes every file's parity is checked on."""


@dataclass(frozen=True)
class ExportSettings(StageSettings):
    stage = "export"
    distributions = (*TRAINING_DISTRIBUTIONS, *_CONVERTERS)
    uses_tensorflow = True

    features: str
    base: str
    """The ``train`` entry (what was trained on what, for the metadata)."""
    model: str
    """The entry of the model to convert: ``base`` or its ``prune`` entry."""
    model_stage: str
    format: str
    quantization: str
    calibration_samples: int
    seed: int

    def toolchain(self) -> dict[str, str]:
        """How Keras models are converted, too: a file converted another way has other bytes."""
        from ondevice_audit.export.tflite import CONVERSION

        extra = {"tflite-conversion": CONVERSION} if self.format == "tflite" else {}
        return {**super().toolchain(), **extra}

    def run(self, task: TaskContext, entry: Path) -> None:
        from ondevice_audit.export import get_exporter
        from ondevice_audit.export.interface import ExportSpec
        from ondevice_audit.export.metadata import ModelMetadata
        from ondevice_audit.frontend import spec_from_dict
        from ondevice_audit.optimize.quantize import QuantApproach, QuantizationConfig
        from ondevice_audit.sweep.weights import measure_sparsity

        approach = QuantApproach(self.quantization)
        spec = ExportSpec(self.format, QuantizationConfig(approach, self.calibration_samples, self.seed))
        exporter = get_exporter(self.format)
        inputs = feature_arrays(task.cache, self.features)["train_x"]
        exporter.check(spec, inputs)  # an unsupported combination fails before TensorFlow is loaded
        facts = self._facts(task)
        frontend = read_json(task.entry("features", self.features) / "features.json")["frontend"]
        embedded = None if frontend.get("kind") == "plugin" else spec_from_dict(frontend)  # a plug-in is not embeddable
        metadata = ModelMetadata(labels=list(task.sweep.classes), frontend=embedded, extra=facts)
        path = self._path(entry, approach)
        if self.format == "onnx":
            import tf2onnx.convert  # all of tf2onnx: one of its modules takes a name from the counter on import
            import tf2onnx.utils

            # tf2onnx numbers the nodes it creates from a process-wide counter; reset it, so the file's bytes
            # (and size) do not depend on how many models this process converted before.
            tf2onnx.utils.INTERNAL_NAME = 1
        result = self._export(task, load_model(task, self.model_stage, self.model), spec, path, metadata)
        write_json(
            entry / "export.json",
            {
                **{k: v for k, v in result.to_dict().items() if k != "path"},
                "file": path.name,
                "sparsity": dataclasses.asdict(measure_sparsity(path)),
                "metadata": facts,
                "frontend_description": frontend_description(frontend),
            },
        )

    def _path(self, entry: Path, approach: Any) -> Path:
        from ondevice_audit.export.variants import variant_path

        return variant_path(entry, "model", self.format, approach)

    def _export(self, task: TaskContext, keras_model: Any, spec: Any, path: Path, metadata: Any) -> Any:
        """The exporter's conversion and parity check (``keep_float.py`` replaces it, adding to ``metadata.extra``)."""
        from ondevice_audit.export import get_exporter

        inputs = feature_arrays(task.cache, self.features)["train_x"]
        return get_exporter(self.format).export(keras_model, spec, path, metadata, inputs)

    def _facts(self, task: TaskContext) -> dict[str, Any]:
        """The metadata embedded in the file: what was trained on what, and how it was pruned."""
        trained = read_json(task.entry("train", self.base) / "train.json")
        frontend = read_json(task.entry("features", self.features) / "features.json")["frontend"]
        facts: dict[str, Any] = {
            "recipe": trained["settings"]["architecture"],
            "adjustments": trained["history"]["adjustments"],
            "features": frontend["kind"],
            "training": trained["settings"],
            "requested_sparsity": 0.0,
            "achieved_sparsity": 0.0,
            "data_sha256": task.sweep.data_hash,
        }
        data = task.sweep.matrix.data
        if data.task == "detect":  # the train key holds the phrase (the model's one output name)
            facts.update(task="detect", positive_label=data.positive_label)
        if self.model_stage == "prune":
            facts.update(read_json(task.entry("prune", self.model) / "prune.json")["facts"])
        return facts


@dataclass(frozen=True)
class UserExportSettings(StageSettings):
    """The user's file as given (the baseline, or a TFLite/ONNX model on another runtime), or ONNX Runtime's
    quantisation of an ONNX file, calibrated on the training split through the model's front-end."""

    stage = "export"
    distributions = ("onnx", "onnxruntime")

    features: str
    user_model: dict[str, Any]
    format: str
    quantization: str
    calibration_samples: int | None = None
    """Only when the file is quantised here."""
    output: str | None = None
    """The output the quantised file's scores are checked on (``--output``), when it is quantised here and has
    several."""
    keyed_when_set = ("output",)

    def run(self, task: TaskContext, entry: Path) -> None:
        from ondevice_audit.sweep.user_model import as_given_sparsity

        user = task.sweep.matrix.model
        assert user is not None
        frontend = read_json(task.entry("features", self.features) / "features.json")["frontend"]
        result: dict[str, Any] = {"format": user.format, "quantization": self.quantization, "warnings": [],
                                  "parity": None, "top1_agreement": None, "parity_ok": None}  # fmt: skip
        if self.quantization == user.quantization:
            path = entry / user.name
            shutil.copyfile(user.path, path)
        else:
            path, quantized = self._quantize(task, entry)
            result.update(quantized)
        sparsity = as_given_sparsity(path, user)
        facts = {
            "recipe": f"user:{user.name}",
            "user_model": self.user_model,
            "adjustments": [],
            "features": frontend["kind"],
            "requested_sparsity": 0.0,
            "achieved_sparsity": sparsity["prunable"],
            "data_sha256": task.sweep.data_hash,
        }
        write_json(
            entry / "export.json",
            {
                **result,
                "size_bytes": path.stat().st_size,
                "file": path.name,
                "sparsity": sparsity,
                "metadata": facts,
                "frontend_description": frontend_description(frontend),
            },
        )

    def _quantize(self, task: TaskContext, entry: Path) -> tuple[Path, dict[str, Any]]:
        from ondevice_audit.optimize.onnx_quantize import quantize_onnx
        from ondevice_audit.optimize.quantize import QuantApproach, QuantizationConfig

        user = task.sweep.matrix.model
        assert user is not None and self.calibration_samples is not None
        approach = QuantApproach(self.quantization)
        config = QuantizationConfig(approach, self.calibration_samples)
        path = entry / f"{user.path.stem}_{approach.value}.onnx"
        calibration = config.calibration_set(feature_arrays(task.cache, self.features)["train_x"])
        quantized = quantize_onnx(user.path, path, approach, calibration, self.output)
        return path, {"parity": quantized.parity, "top1_agreement": quantized.top1_agreement,
                      "parity_ok": quantized.parity_ok, "seconds": quantized.seconds}  # fmt: skip


def frontend_description(settings: dict[str, Any]) -> str:
    from ondevice_audit.sweep.user_model import build_sweep_frontend

    return build_sweep_frontend(settings).description
