"""Keras models (``.keras``, ``.h5``, SavedModel) on TensorFlow. The only runtime that imports TF."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ondevice_audit import _tensorflow
from ondevice_audit.errors import UsageError
from ondevice_audit.runtimes.interface import ModelLoadError, Runtime, select_output

if TYPE_CHECKING:
    from ondevice_audit.runtimes import RuntimeOptions

__all__ = ["KerasRuntime"]


def _h5_has_lambda(path: Path) -> bool:
    """HDF5 models store Lambda layers as Python bytecode, which loading would execute."""
    import h5py

    with h5py.File(path, "r") as archive:
        config = archive.attrs.get("model_config")
    if config is None:
        return False
    return '"class_name": "Lambda"' in (config.decode() if isinstance(config, bytes) else str(config))


def _set_threads(threads: int | None) -> None:
    """TensorFlow's intra-op threads for the whole process: settable only before TensorFlow first runs an op, so
    a process that already ran one with another count is refused rather than reported with a number it did not
    use."""
    if threads is None:
        return
    config = _tensorflow.tensorflow().config.threading
    if config.get_intra_op_parallelism_threads() == threads:
        return
    try:
        config.set_intra_op_parallelism_threads(threads)
    except RuntimeError:
        current = config.get_intra_op_parallelism_threads() or "TensorFlow's default"
        raise UsageError(f"--threads {threads}: TensorFlow already runs in this process with {current} threads, and "
                         "its thread count cannot change once it has started") from None  # fmt: skip


class KerasRuntime(Runtime):
    name = "tensorflow"
    model_format = "keras"

    @classmethod
    def open(cls, model_path: Path, options: RuntimeOptions) -> KerasRuntime:
        return cls(model_path, trust_model=options.trust_model, output=options.output, threads=options.threads)

    def __init__(
        self, model_path: Path, trust_model: bool = False, output: str | None = None, threads: int | None = None
    ):
        super().__init__(model_path)
        keras = _tensorflow.keras()
        _set_threads(threads)
        try:
            if model_path.suffix.lower() in (".h5", ".hdf5") and not trust_model and _h5_has_lambda(model_path):
                raise ModelLoadError(
                    f"{model_path}: contains a Lambda layer (arbitrary code); pass --trust-model to load it"
                )
            kwargs = {"safe_mode": not trust_model} if model_path.suffix.lower() == ".keras" else {}
            self._model = keras.models.load_model(str(model_path), compile=False, **kwargs)
        except ModelLoadError:
            raise
        except Exception as exc:  # Keras raises ValueError, OSError, TypeError... for a bad file
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ModelLoadError(f"{model_path}: not a Keras model TensorFlow can load ({message})") from None
        self._tf = _tensorflow.tensorflow()
        self._output_names = [str(name) for name in self._model.output_names]
        self._output_index = select_output(self._output_names, output, model_path)

    @property
    def input_shape(self) -> tuple[int | None, ...]:
        return tuple(self._model.input_shape[1:])

    @property
    def max_batch(self) -> int | None:
        return None

    def run_batch(self, inputs: np.ndarray) -> np.ndarray:
        outputs = self._model(self._tf.constant(inputs), training=False)
        chosen = outputs[self._output_index] if isinstance(outputs, list | tuple) else outputs
        return np.asarray(chosen, dtype=np.float32)

    def _facts(self) -> dict[str, object]:
        return {
            "kernels": "TensorFlow",
            "threads": self._tf.config.threading.get_intra_op_parallelism_threads() or None,
            "runtime_version": f"tensorflow {self._tf.__version__}",
            "input_shape": list(self._model.input_shape),
            "input_dtype": str(self._model.input.dtype.name),
            "output_shape": list(self._output_shape()),
            "output_dtype": str(self._model.outputs[self._output_index].dtype.name),
            "outputs": self._output_names,
            "output": self._output_names[self._output_index] if len(self._output_names) > 1 else None,
        }

    def _output_shape(self) -> tuple[int | None, ...]:
        shape = self._model.output_shape
        return tuple(shape[self._output_index] if isinstance(shape, list) else shape)
