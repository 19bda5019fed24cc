"""A toy model with one layer built to be quantization-sensitive for one group's inputs, its int8 export, its data:
the worked example of ``ondevice-audit explain`` in the README, and what its tests are checked on.

    python examples/explain_toy.py runs/toy            # manifest, clips, model.keras, model-int8.tflite

Inputs are 16-sample raw waveforms (``raw`` front-end at 1 kHz). Group ``female`` carries its class in samples
0-7, group ``male`` in samples 8-15, over the same dynamic range. The first layer, ``mix`` (Dense + ReLU6),
reads the male samples through weights about 300 times larger than the female ones. int8 quantizes a Dense
kernel per output channel, one step per channel set by its largest weight, so the female weights round to 0 or
to one step: int8 loses the female clips' class evidence in ``mix``, while the male clips (whose units saturate
at 6) keep theirs. ``hidden`` and ``head`` are plain layers. Labels are the float model's own predictions with
5 % flipped at random, so the base is good but not perfect for both groups. The int8 file is exported as
``ondevice-audit export --data`` would: calibrated on 200 of the clips.

With ``sensitive=False`` both groups' weights are alike: int8 then changes almost nothing. With ``detector=True``
(``--detector``) the head is one sigmoid, the probability of class c0's pattern against the others: a ``yes``
detector whose clips are labelled ``yes`` where the float model accepts them (5 % flipped) and ``no`` elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

from ondevice_audit.frontend import AudioFrontendSpec

SPEC = AudioFrontendSpec(kind="raw", sample_rate=1000, clip_seconds=0.016)
LABELS = ["c0", "c1", "c2", "c3"]
POSITIVE = "yes"
"""The detector's phrase (``detector=True``): clips the float detector accepts; every other clip is ``no``."""
DETECTOR_GAIN = 20.0
DETECTOR_BIAS = -6.0
_HADAMARD = np.array(
    [
        [1, 1, 1, 1, 1, 1, 1, 1],
        [1, -1, 1, -1, 1, -1, 1, -1],
        [1, 1, -1, -1, 1, 1, -1, -1],
        [1, -1, -1, 1, 1, -1, -1, 1],
    ],
    dtype=np.float32,
)


@dataclass(frozen=True)
class Case:
    manifest: Path
    base: Path
    """The float Keras model."""
    variant: Path
    """Its int8 export (``export_model``, calibrated on every clip, as ``export --data`` does)."""
    inputs: np.ndarray
    """Every clip's input, in manifest order."""
    frame: pd.DataFrame


def _model(rng: np.random.Generator, small: float, big: float, detector: bool = False):
    from ondevice_audit import _tensorflow

    keras = _tensorflow.keras()
    inputs = keras.Input((16,), name="samples")
    x = keras.layers.Dense(4, name="mix")(inputs)
    x = keras.layers.ReLU(max_value=6.0, name="mix_relu6")(x)
    x = keras.layers.Dense(4, activation="relu", name="hidden")(x)
    if detector:
        x = keras.layers.Dense(1, name="head")(x)
        model = keras.Model(inputs, keras.layers.Activation("sigmoid", name="probability")(x))
    else:
        x = keras.layers.Dense(4, name="head")(x)
        model = keras.Model(inputs, keras.layers.Softmax(name="probs")(x))
    weights = np.zeros((16, 4), np.float32)
    weights[:8] = _HADAMARD.T * small * rng.uniform(0.5, 1.5, (8, 4))
    weights[8:] = _HADAMARD.T * big
    model.get_layer("mix").set_weights([weights, np.zeros(4, np.float32)])
    hidden = np.eye(4) * 2 + rng.normal(0, 0.05, (4, 4))
    model.get_layer("hidden").set_weights([hidden.astype(np.float32), np.zeros(4, np.float32)])
    if detector:  # class c0's unit against the mean of the others: the phrase is class 0's pattern
        head = np.array([[1.0], [-1 / 3], [-1 / 3], [-1 / 3]], np.float32) * DETECTOR_GAIN
        model.get_layer("head").set_weights([head, np.array([DETECTOR_BIAS], np.float32)])
    else:
        model.get_layer("head").set_weights([np.eye(4, dtype=np.float32) * 3, np.zeros(4, np.float32)])
    return model


def _clips(rng: np.random.Generator, speakers: int, clips: int) -> tuple[np.ndarray, pd.DataFrame]:
    rows, inputs = [], []
    for s in range(speakers):
        gender = "female" if s % 2 == 0 else "male"
        for c in range(clips):
            label = int(rng.integers(0, 4))
            wave = np.zeros(16, np.float32)
            if gender == "female":
                wave[:8] = _HADAMARD[label] * rng.uniform(0.2, 1.0, 8) + rng.normal(0, 0.6, 8)
            else:
                wave[8:] = _HADAMARD[label] * rng.uniform(0.5, 1.0) + rng.normal(0, 0.05, 8)
            inputs.append(wave)
            rows.append({"path": f"clips/s{s:02d}_{c}.wav", "gender": gender, "speaker": f"s{s:02d}"})
    return np.stack(inputs).astype(np.float32), pd.DataFrame(rows)


def _labels(outputs: np.ndarray, rng: np.random.Generator) -> list[str]:
    """The float model's own decisions with 5 % of them flipped: a class (flipped to another), or a detector's
    accept (``yes``, flipped to ``no`` and back)."""
    flipped = rng.random(len(outputs)) < 0.05
    if outputs.shape[1] == 1:
        accepted = (outputs[:, 0] >= 0.5) ^ flipped
        return [POSITIVE if yes else "no" for yes in accepted]
    predicted = outputs.argmax(axis=1)
    predicted[flipped] = (predicted[flipped] + rng.integers(1, 4, int(flipped.sum()))) % 4
    return [LABELS[i] for i in predicted]


def build_case(
    root: Path, sensitive: bool = True, speakers: int = 60, clips: int = 10, seed: int = 0, detector: bool = False
) -> Case:
    from ondevice_audit.export.metadata import ModelMetadata
    from ondevice_audit.export.variants import ExportOptions, export_model, save_keras
    from ondevice_audit.optimize.quantize import QuantApproach

    rng = np.random.default_rng(seed)
    model = _model(rng, small=0.03 if sensitive else 10.0, big=10.0, detector=detector)
    inputs, frame = _clips(rng, speakers, clips)
    frame["label"] = _labels(np.asarray(model(inputs)), rng)
    for relative, wave in zip(frame["path"], inputs, strict=True):
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        sf.write(root / relative, wave, SPEC.sample_rate, subtype="FLOAT")
    manifest = root / "manifest.csv"
    frame[["path", "label", "gender", "speaker"]].to_csv(manifest, index=False)
    task = {"task": "detect", "positive_label": POSITIVE} if detector else {}
    metadata = ModelMetadata(labels=[POSITIVE] if detector else LABELS, frontend=SPEC,
                             extra={"recipe": "explain-test", **task})  # fmt: skip
    base = root / "models" / "model.keras"
    save_keras(model, base, metadata)
    options = ExportOptions(formats=("tflite",), approaches=(QuantApproach.INT8,), calibration_samples=200, seed=0)
    outcome = export_model(model, metadata, root / "models", options, (inputs, None))
    return Case(manifest, base, outcome.results[0].path, inputs, frame)


def main() -> None:
    """``python examples/explain_toy.py OUT [--harmless] [--detector]``: write the toy's manifest, clips, model and
    int8 export."""
    import sys

    flags = {"--harmless", "--detector"}
    args = [a for a in sys.argv[1:] if a not in flags]
    if len(args) != 1:
        raise SystemExit("usage: python examples/explain_toy.py OUT [--harmless] [--detector]")
    case = build_case(Path(args[0]), sensitive="--harmless" not in sys.argv[1:], detector="--detector" in sys.argv[1:])
    print(f"manifest {case.manifest}\nbase     {case.base}\nvariant  {case.variant}")


if __name__ == "__main__":
    main()
