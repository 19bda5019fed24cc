"""The one place TensorFlow is imported, lazily.

TensorFlow costs seconds and ~1 GB to import, so ``--help``, scoring and TFLite/ONNX inference never
touch it; it comes with the ``train`` extra. tfmot 0.8 needs Keras 2, hence ``TF_USE_LEGACY_KERAS=1`` before the
first import. The import prints oneDNN/CUDA notices from C++: ``_quiet`` keeps them off the console.
"""

import os
from types import ModuleType

from ondevice_audit._quiet import quiet_environment, quiet_native, quiet_python_loggers


def _import(module: str) -> ModuleType:
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    quiet_environment()
    with quiet_native():
        imported = __import__(module)
    quiet_python_loggers()
    return imported


def tensorflow() -> ModuleType:
    tf = _import("tensorflow")
    return tf


def keras() -> ModuleType:
    """Keras 2 (tf-keras), the Keras that tensorflow-model-optimization prunes."""
    return _import("tf_keras")
