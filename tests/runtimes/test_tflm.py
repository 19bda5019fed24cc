"""TensorFlow Lite Micro on real int8 exports: the same audit as LiteRT, the arena and ops an MCU sees, refusals.

Two small conv nets (8 and 32 channels) are trained briefly on the tone dataset and exported by the tool's
own exporter as full-integer int8 TFLite; a float GELU model stands in for an op TFLM lacks.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ondevice_audit.audit import ModelOptions, ScoreOptions, audit_model
from ondevice_audit.data import read_manifest
from ondevice_audit.errors import UsageError
from ondevice_audit.export.metadata import ModelMetadata
from ondevice_audit.export.variants import export_variants
from ondevice_audit.frontend import AudioFrontendSpec, build_frontend
from ondevice_audit.optimize.quantize import QuantApproach
from ondevice_audit.report.document import validate
from ondevice_audit.runtimes import DEFAULT_RUNTIME, load_runtime, tflm
from ondevice_audit.runtimes.tflm import TFLM_BUILTIN_OPS, TFLMRuntime, footprint, model_ops

LABELS = ["_unknown_", "no", "yes"]
SPEC = AudioFrontendSpec(kind="mfcc", sample_rate=16000, clip_seconds=0.5, n_mels=20, n_mfcc=10)
OPTIONS = ScoreOptions(
    groups=("gender", "accent"), metric="accuracy", min_group_size=5, bootstrap=100, permutations=100
)
METRIC_TOLERANCE = 0.02
"""Largest per-group accuracy difference accepted between TFLM and LiteRT (measured: identical metrics)."""
MAX_FLIP_RATE = 0.02
"""Largest share of clips whose predicted class may differ between TFLM and LiteRT. Measured: 0 of 216 clips
(8 channels) and 1 of 216 (32 channels); their int8 kernels round differently, so scores differ by one
output step on a few clips and the class flips only where the top two scores are that close."""
WIDTHS = (8, 32)


def _conv_net(keras, width: int):
    """A small DS-CNN-like net: conv, depthwise conv, global average, softmax."""
    return keras.Sequential(
        [
            keras.layers.Input(SPEC.input_shape),
            keras.layers.BatchNormalization(),
            keras.layers.Conv2D(width, (3, 3), activation="relu"),
            keras.layers.DepthwiseConv2D((3, 3), activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(len(LABELS), activation="softmax"),
        ]
    )


@pytest.fixture(scope="session")
def features(tone_dataset: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(inputs, label indices, speaker ids) of every clip."""
    frame = read_manifest(tone_dataset).frame
    inputs = build_frontend(SPEC).transform([Path(p) for p in frame["file"]]).inputs
    return inputs, np.searchsorted(LABELS, frame["label"].to_numpy()), frame["speaker"].to_numpy()


@pytest.fixture(scope="session")
def keras_nets(features) -> dict[int, object]:
    from ondevice_audit import _tensorflow

    keras = _tensorflow.keras()
    inputs, labels, speakers = features
    seen = np.isin(speakers, [f"s{i}" for i in range(6)])  # unseen speakers in the audit, as in tests/conftest
    nets = {}
    for width in WIDTHS:
        keras.utils.set_random_seed(0)
        net = _conv_net(keras, width)
        net.compile(optimizer=keras.optimizers.Adam(0.003), loss="sparse_categorical_crossentropy")
        net.fit(inputs[seen], labels[seen], epochs=15, batch_size=32, verbose=0)
        nets[width] = net
    return nets


@pytest.fixture(scope="session")
def int8_models(keras_nets, features, tmp_path_factory) -> dict[int, Path]:
    out = tmp_path_factory.mktemp("tflm")
    metadata = ModelMetadata(labels=LABELS, frontend=SPEC, extra={"recipe": "test-conv"})
    paths = {}
    for width, net in keras_nets.items():
        (result,) = export_variants(
            net,
            ["tflite"],
            [QuantApproach.INT8],
            out,
            metadata,
            features[0],
            stem=f"conv{width}",
            calibration_samples=64,
        )
        paths[width] = result.path
    return paths


@pytest.fixture(scope="session")
def gelu_model(tmp_path_factory) -> Path:
    """A valid float TFLite file whose GELU op TFLM's resolver does not register (LiteRT runs it)."""
    from ondevice_audit import _tensorflow

    tf, keras = _tensorflow.tensorflow(), _tensorflow.keras()
    net = keras.Sequential([keras.layers.Input((8,)), keras.layers.Dense(4), keras.layers.Activation("gelu")])
    path = tmp_path_factory.mktemp("gelu") / "gelu.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(net).convert())
    return path


@pytest.fixture(scope="module")
def reports(int8_models, tone_dataset) -> dict[str, dict]:
    path = int8_models[WIDTHS[0]]
    with pytest.MonkeyPatch.context() as patch:  # workers from the start: the audit goes through the process pool
        patch.setattr(tflm, "POOL_AFTER_SECONDS", 0.0)
        return {
            name: audit_model(path, tone_dataset, OPTIONS, ModelOptions(runtime=name)) for name in ("tflm", "litert")
        }


def test_audit_on_tflm_matches_litert_per_group(reports) -> None:
    tflm, litert = reports["tflm"], reports["litert"]
    validate(tflm)
    assert tflm["samples"] == litert["samples"]
    assert {k: tflm["samples"][k] for k in ("total", "scored", "failed", "failures")} == {
        "total": 216, "scored": 216, "failed": 0, "failures": []
    }  # fmt: skip
    assert tflm["model"]["runtime"] == "tflm" and tflm["settings"]["runtime"] == "tflm"
    assert tflm["model"]["seconds_per_sample"] > 0
    assert tflm["overall"]["metrics"] == pytest.approx(litert["overall"]["metrics"], abs=METRIC_TOLERANCE)
    for mine, theirs in zip(tflm["attributes"], litert["attributes"], strict=True):
        assert [g["name"] for g in mine["groups"]] == [g["name"] for g in theirs["groups"]]
        for group, other in zip(mine["groups"], theirs["groups"], strict=True):
            assert group["n"] == other["n"]
            assert group["metrics"] == pytest.approx(other["metrics"], abs=METRIC_TOLERANCE)
    # the model is good but not perfect, so the comparison is not trivially between two constant predictors
    assert 0.4 < litert["overall"]["metrics"]["accuracy"] < 1.0  # chance is 1/3


def test_flip_rate_between_tflm_and_litert_is_small(int8_models, features) -> None:
    inputs = features[0]
    for path in int8_models.values():
        tflm = load_runtime(path, "tflm").run_all(inputs).scores
        litert = load_runtime(path, "litert").run_all(inputs).scores
        flip_rate = float((tflm.argmax(axis=1) != litert.argmax(axis=1)).mean())
        assert flip_rate <= MAX_FLIP_RATE, (path.name, flip_rate)
        assert np.abs(tflm - litert).max() <= 2 / 256  # at most two steps of the int8 softmax output


def test_workers_give_the_same_scores_in_input_order(int8_models, features, monkeypatch) -> None:
    inputs = features[0][:150]
    path = int8_models[WIDTHS[0]]
    single = TFLMRuntime(path, workers=1)
    alone = single.run_all(inputs)
    short = TFLMRuntime(path, workers=2)
    assert np.array_equal(short.run_all(inputs).scores, alone.scores)
    assert short._pool is None  # a short job never starts workers

    monkeypatch.setattr(tflm, "POOL_AFTER_SECONDS", 0.0)
    parallel = TFLMRuntime(path, workers=2)
    seen: list[int] = []
    together = parallel.run_all(inputs, batch_size=32, on_batch=seen.append)
    assert parallel._pool is not None
    parallel.close()
    assert np.array_equal(together.scores, alone.scores)
    assert sum(seen) == len(inputs) and len(seen) == 5
    assert together.seconds_per_sample > 0 and alone.seconds_per_sample > 0
    assert single.run_all(inputs[:0]).scores.shape == (0, len(LABELS))
    one_by_one = np.concatenate([single.run_batch(inputs[i : i + 1]) for i in range(3)])
    assert np.array_equal(one_by_one, alone.scores[:3])


def test_runtime_describes_a_batch_of_one_int8_model(int8_models) -> None:
    import tflite_micro

    runtime = load_runtime(int8_models[WIDTHS[0]], "tflm")
    facts = runtime.describe()
    assert runtime.max_batch == 1
    assert runtime.input_shape == SPEC.input_shape
    assert (facts.runtime, facts.runtime_version) == ("tflm", tflite_micro.__version__)
    assert (facts.input_dtype, facts.output_dtype) == ("int8", "int8")
    assert facts.input_shape == [1, *SPEC.input_shape] and facts.output_shape == [1, len(LABELS)]
    assert DEFAULT_RUNTIME["tflite"] == "litert"  # tflm runs only when asked for


def test_arena_is_recorded_and_grows_with_width(int8_models) -> None:
    small, large = (footprint(int8_models[width]) for width in WIDTHS)
    for measured, width in ((small, WIDTHS[0]), (large, WIDTHS[1])):
        assert measured.arena_bytes > 0
        assert measured.arena_bytes == measured.arena_head_bytes + measured.arena_tail_bytes
        assert measured.flash_bytes == int8_models[width].stat().st_size
        assert {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"} <= set(measured.ops) <= TFLM_BUILTIN_OPS
        assert measured.to_dict()["ops"] == list(measured.ops)
    assert large.arena_head_bytes > small.arena_head_bytes  # 4x the channels: larger activations
    assert large.arena_bytes > small.arena_bytes
    assert large.flash_bytes > small.flash_bytes


def test_an_op_tflm_lacks_is_named(gelu_model) -> None:
    assert model_ops(gelu_model) == ["FULLY_CONNECTED", "GELU"]
    assert load_runtime(gelu_model, "litert").run_all(np.ones((2, 8), np.float32)).scores.shape == (2, 4)
    expected = "gelu.tflite: TensorFlow Lite Micro has no kernel for GELU; replace these ops or use another runtime"
    with pytest.raises(UsageError, match=expected):
        load_runtime(gelu_model, "tflm")
    with pytest.raises(UsageError, match="no kernel for GELU"):
        footprint(gelu_model)


def test_a_dynamic_range_model_is_refused_with_tflm_reason(tmp_path) -> None:
    from ondevice_audit import _tensorflow

    tf, keras = _tensorflow.tensorflow(), _tensorflow.keras()
    # the converter leaves weight tensors under 1024 values in float: this Dense has 3840
    net = keras.Sequential([keras.layers.Input(SPEC.input_shape), keras.layers.Flatten(), keras.layers.Dense(16)])
    converter = tf.lite.TFLiteConverter.from_keras_model(net)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    path = tmp_path / "hybrid.tflite"
    path.write_bytes(converter.convert())
    expected = r"cannot run it \(Input type: FLOAT32 with filter type: INT8 not supported; Node FULLY_CONNECTED .*"
    with pytest.raises(UsageError, match=expected + "not f16 or dynamic-range ones"):
        load_runtime(path, "tflm")


def test_a_model_beyond_the_arena_limit_is_refused(int8_models, monkeypatch) -> None:
    monkeypatch.setattr(tflm, "ARENA_LIMIT_BYTES", 2048)
    with pytest.raises(UsageError, match="needs more than 2,048 bytes of TFLM tensor arena, more than any micro"):
        footprint(int8_models[WIDTHS[0]])


def test_allow_list_names_are_tflite_builtin_ops() -> None:
    from ai_edge_litert import schema_py_generated as schema

    assert TFLM_BUILTIN_OPS <= set(vars(schema.BuiltinOperator))


def test_bad_files_and_settings_are_user_errors(int8_models, tmp_path) -> None:
    corrupt = tmp_path / "corrupt.tflite"
    corrupt.write_bytes(b"not a flatbuffer" * 8)
    with pytest.raises(UsageError, match="corrupt.tflite: not a TFLite model TFLM can load"):
        load_runtime(corrupt, "tflm")
    with pytest.raises(UsageError, match="at least 1 worker"):
        TFLMRuntime(int8_models[WIDTHS[0]], workers=0)
    with pytest.raises(UsageError, match="model not found"):
        footprint(tmp_path / "missing.tflite")
