"""The one place TensorFlow is imported, lazily.

TensorFlow costs seconds and ~1 GB to import, so ``--help``, scoring and TFLite/ONNX inference never
touch it. tfmot 0.8.1 needs Keras 2, hence ``TF_USE_LEGACY_KERAS=1`` before the first import.
"""

import os
from types import ModuleType


def _quiet_env() -> None:
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def tensorflow() -> ModuleType:
    _quiet_env()
    import tensorflow as tf

    return tf


def keras() -> ModuleType:
    """Keras 2 (tf-keras), the Keras that tensorflow-model-optimization prunes."""
    _quiet_env()
    import tf_keras

    return tf_keras
