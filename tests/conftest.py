"""Shared fixtures: a small real audio dataset on disk and a tiny real KWS model in all three formats.

The model is trained for a few epochs on MFCCs of generated tones (one frequency per label, the 'female'
speakers noisier), so per-group accuracies differ, and exported with TensorFlow's own converters. Building it
takes ~15 s once per test session.

Core tests: a test is marked ``core`` (``pytest -m core``) when it runs on the core install alone, i.e. it is
not slow, its module is not in ``NEEDS_EXTRAS`` and it uses none of ``EXTRA_FIXTURES``. In a core-only
environment a test module whose import needs an extra is skipped rather than reported as a collection error.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from ondevice_audit._extras import EXTRAS
from ondevice_audit.frontend import AudioFrontendSpec

NEEDS_EXTRAS = {
    "cli/test_quiet_libraries.py",
    "cli/test_train_export.py",
    "data/test_synth_shapes.py",
    "export/test_exporters.py",
    "model/test_mitigation.py",
    "model/test_recipes.py",
    "model/test_split.py",
    "optimize/test_onnx_quantize.py",
    "optimize/test_prune.py",
    "report/test_every_section.py",
    "runtimes/test_tflm.py",
    "sweep/test_mcu_sweep.py",
    "sweep/test_mitigation_sweep.py",
    "sweep/test_ray_executor.py",
    "sweep/test_sweep.py",
    "sweep/test_user_model.py",
    "sweep/test_vision_sweep.py",
    "targets/test_comparison.py",
    "targets/test_device_runner.py",
    "targets/test_mcu.py",
    "targets/test_ssh.py",
    "targets/test_ssh_sweep.py",
    "targets/test_streaming_targets.py",
    "targets/test_targets_cli.py",
    "test_audit.py",
    "test_bundled_model.py",
    "test_metadata.py",
}
"""Test modules (relative to tests/) that train, export, sweep or need TFLM, Ray or Kokoro throughout."""
EXTRA_FIXTURES = {"tiny_models", "models", "kws"}
"""Fixtures that build models with TensorFlow."""
_EXTRA_MODULES = {module for _, modules in EXTRAS.values() for module in modules} | {
    "librosa"
}  # librosa: a dev reference
_TESTS = Path(__file__).parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        module = item.path.relative_to(_TESTS).as_posix() if item.path.is_relative_to(_TESTS) else ""
        fixtures = set(getattr(item, "fixturenames", ()))
        if module not in NEEDS_EXTRAS and not fixtures & EXTRA_FIXTURES and not item.get_closest_marker("slow"):
            item.add_marker(pytest.mark.core)


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector):
    """A test module that cannot be imported for want of an extra's module is skipped, with the reason."""
    report = yield
    if report.failed and isinstance(collector, pytest.Module):
        missing = re.search(r"No module named '([\w.]+)'", str(report.longrepr))
        if missing and missing.group(1).split(".")[0] in _EXTRA_MODULES:
            report.outcome = "skipped"
            report.longrepr = (str(collector.path), 0, f"Skipped: needs {missing.group(1)} (an extra)")
    return report


LABELS = ["_unknown_", "no", "yes"]
SPEC = AudioFrontendSpec(kind="mfcc", sample_rate=16000, clip_seconds=0.5, n_mels=20, n_mfcc=10)
_TONES = {"yes": 500.0, "no": 580.0, "_unknown_": 660.0}


def write_tone_dataset(root: Path, n_speakers: int = 24, clips_per_label: int = 3, seed: int = 0) -> Path:
    """Manifest + WAV files: label = tone frequency; female speakers get more noise (lower accuracy)."""
    rng = np.random.default_rng(seed)
    rows = []
    t = np.arange(int(SPEC.sample_rate * SPEC.clip_seconds)) / SPEC.sample_rate
    for s in range(n_speakers):
        gender = "female" if s % 2 == 0 else "male"
        accent = ["us", "gb", "sc"][s % 3]
        noise = 3.0 if gender == "female" else 0.8
        shift = rng.normal(0, 12)
        for label in LABELS:
            for c in range(clips_per_label):
                wave = 0.3 * np.sin(2 * np.pi * (_TONES[label] + shift) * t) + noise * 0.3 * rng.standard_normal(len(t))
                relative = f"clips/{label}/s{s}_{c}.wav"
                (root / relative).parent.mkdir(parents=True, exist_ok=True)
                sf.write(root / relative, wave.astype(np.float32), SPEC.sample_rate)
                rows.append({"path": relative, "label": label, "gender": gender, "accent": accent, "speaker": f"s{s}"})
    manifest = root / "manifest.csv"
    pd.DataFrame(rows).to_csv(manifest, index=False)
    return manifest


@pytest.fixture(scope="session")
def tone_dataset(tmp_path_factory) -> Path:
    return write_tone_dataset(tmp_path_factory.mktemp("tones"))


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory, tone_dataset) -> dict[str, Path]:
    """{'keras': .keras, 'tflite': .tflite, 'onnx': .onnx} of one trained tiny model, metadata embedded."""
    from ondevice_audit import _tensorflow
    from ondevice_audit.data import read_manifest
    from ondevice_audit.export.metadata import ModelMetadata, write_metadata
    from ondevice_audit.frontend import build_frontend

    tf = _tensorflow.tensorflow()
    keras = _tensorflow.keras()
    import tf2onnx

    out = tmp_path_factory.mktemp("tiny_models")
    data = read_manifest(tone_dataset).frame
    batch = build_frontend(SPEC).transform([Path(p) for p in data["file"]])
    y = np.searchsorted(LABELS, data["label"].to_numpy())
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.layers.Input(SPEC.input_shape),
            keras.layers.BatchNormalization(),
            keras.layers.Conv2D(8, (3, 3), activation="relu"),
            keras.layers.Flatten(),
            keras.layers.Dense(len(LABELS), activation="softmax"),
        ]
    )
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    # train on 6 speakers only, so the audit sees unseen speakers and the noisier group does worse
    seen = data["speaker"].isin([f"s{i}" for i in range(6)]).to_numpy()
    model.fit(batch.inputs[seen], y[seen], epochs=15, batch_size=32, verbose=0)
    paths = {"keras": out / "tiny.keras", "tflite": out / "tiny.tflite", "onnx": out / "tiny.onnx"}
    model.save(paths["keras"])
    paths["tflite"].write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    signature = (tf.TensorSpec((None, *SPEC.input_shape), tf.float32, name="input"),)
    tf2onnx.convert.from_keras(model, input_signature=signature, opset=17, output_path=str(paths["onnx"]))
    for path in paths.values():
        write_metadata(path, ModelMetadata(labels=LABELS, frontend=SPEC, extra={"recipe": "test-tiny"}))
    return paths


@pytest.fixture(scope="session")
def micro_data(tmp_path_factory) -> Path:
    """Twelve speakers saying 'yes' (a rising tone) or other words (noise), 16 kHz, one second."""
    root = tmp_path_factory.mktemp("micro")
    rng = np.random.default_rng(3)
    t = np.arange(16000) / 16000
    rows = []
    for s in range(12):
        for c in range(6):
            label = "yes" if c < 2 else ("no" if c < 4 else "other")
            wave = 0.3 * np.sin(2 * np.pi * (300 + 200 * t + 40 * s) * t) if label == "yes" else 0.2 * rng.standard_normal(16000)
            path = f"clips/s{s}_{c}.wav"
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            sf.write(root / path, wave.astype(np.float32), 16000, subtype="PCM_16")
            rows.append({"path": path, "label": label, "gender": "f" if s % 2 else "m", "speaker": f"s{s}"})
    pd.DataFrame(rows).to_csv(root / "manifest.csv", index=False)
    return root / "manifest.csv"
