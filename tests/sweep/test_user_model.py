"""`sweep --model`: a user's own Keras, TFLite or ONNX model as the base of a sweep (~60 s).

The model is built here the way a user would (Conv2D -> Flatten -> Dense, none of our recipes), trained for a
few epochs on a small subset of the bundled synth-kws dataset, and saved with its front-end and labels
embedded; its TFLite and ONNX files come from our exporters.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from ondevice_audit.cli import app
from ondevice_audit.errors import UsageError
from ondevice_audit.frontend import AudioFrontendSpec
from ondevice_audit.report.document import load_report

runner = CliRunner()
SYNTH_KWS = Path(__file__).resolve().parents[2] / "datasets" / "synth-kws"
LABELS = ["_unknown_", "no", "yes"]
SPEC = AudioFrontendSpec(kind="mfcc", sample_rate=16000, clip_seconds=1.0, n_mels=20, n_mfcc=10)
DATA = """
[data]
manifest = "{manifest}"
groups = ["gender"]
metric = "accuracy"
split = [0.5, 0.17, 0.33]
min_group_size = 5
bootstrap = 100
permutations = 100
[training]
epochs = 3
batch_size = 32
learning_rate = 0.003
pruning_epochs = 2
calibration_samples = 40
latency_samples = 3
"""


@pytest.fixture(scope="module")
def subset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """yes/no/_unknown_ of 48 speakers (192 clips), copied in (a manifest's files may not link out of its folder)."""
    root = tmp_path_factory.mktemp("synth-subset")
    manifest = pd.read_csv(SYNTH_KWS / "manifest.csv")
    speakers = sorted(manifest["speaker"].unique())[::2][:48]
    rows = manifest[manifest["speaker"].isin(speakers) & manifest["label"].isin(LABELS)]
    _copy_clips(rows["path"], root)
    rows.to_csv(root / "manifest.csv", index=False)
    return root / "manifest.csv"


def _copy_clips(paths: pd.Series, root: Path) -> None:
    for relative in paths:
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(SYNTH_KWS / relative, root / relative)


@pytest.fixture(scope="module")
def user_models(tmp_path_factory: pytest.TempPathFactory, subset: Path) -> dict[str, Path]:
    """{'keras', 'tflite', 'onnx'}: one user-style model, trained briefly, in the three formats."""
    from ondevice_audit import _tensorflow
    from ondevice_audit.data import read_manifest
    from ondevice_audit.export import get_exporter
    from ondevice_audit.export.interface import ExportSpec
    from ondevice_audit.export.metadata import ModelMetadata, write_metadata
    from ondevice_audit.frontend import build_frontend

    keras = _tensorflow.keras()
    out = tmp_path_factory.mktemp("user-model")
    frame = read_manifest(subset).frame
    x = build_frontend(SPEC).transform([Path(p) for p in frame["file"]]).inputs
    y = np.searchsorted(LABELS, frame["label"].to_numpy())
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.layers.Input(SPEC.input_shape),
            keras.layers.BatchNormalization(),
            keras.layers.Conv2D(16, (3, 3), strides=2, activation="relu", name="conv"),
            keras.layers.DepthwiseConv2D((3, 3), padding="same", activation="relu", name="depthwise"),
            keras.layers.Flatten(),
            keras.layers.Dense(32, activation="relu", name="hidden"),
            keras.layers.Dense(len(LABELS), activation="softmax", name="head"),
        ]
    )
    model.compile(optimizer=keras.optimizers.Adam(0.003), loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=8, batch_size=32, verbose=0)
    metadata = ModelMetadata(labels=LABELS, frontend=SPEC, extra={"note": "a user's model"})
    paths = {"keras": out / "kws_user.keras"}
    model.save(paths["keras"])
    write_metadata(paths["keras"], metadata)
    for fmt in ("tflite", "onnx"):
        paths[fmt] = out / f"kws_user.{fmt}"
        get_exporter(fmt).export(model, ExportSpec(fmt), paths[fmt], metadata, x[:32])
    return paths


def _sweep(root: Path, manifest: Path, factors: str, model: Path, cache: Path, exit_code: int = 0) -> Path:
    """The sweep's folder; ``exit_code`` 3 when cells are meant to fail (the sweep still writes its results)."""
    root.mkdir(parents=True, exist_ok=True)
    matrix = root / "matrix.toml"
    matrix.write_text(factors + DATA.format(manifest=manifest))
    result = runner.invoke(
        app, ["sweep", "-m", str(matrix), "--model", str(model), "--out", str(root / "run"), "--cache", str(cache)]
    )
    assert result.exit_code == exit_code, result.output
    return root / "run"


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("user-sweep-cache")


@pytest.fixture(scope="module")
def keras_sweep(
    tmp_path_factory: pytest.TempPathFactory, subset: Path, user_models: dict[str, Path], cache: Path
) -> Path:
    factors = 'sample_rate = [16000, 8000]\nquantization = ["f32", "int8"]\n[pruning]\nfinal_sparsity = [0, 0.5]\n'
    return _sweep(tmp_path_factory.mktemp("keras-sweep"), subset, factors, user_models["keras"], cache)


def test_keras_model_is_the_base_of_every_optimisation_and_rebuilt_for_other_rates(keras_sweep: Path) -> None:
    results = pd.read_csv(keras_sweep / "results.csv")
    assert list(results["cell"])[0] == "baseline" and len(results) == 9
    assert results["status"].eq("ok").all(), results["error"].tolist()
    base = results.iloc[0]
    assert (base["export"], base["runtime"], base["quantization"], base["architecture"]) == (
        "keras", "tensorflow", "f32", "kws_user.keras")  # fmt: skip
    # The Flatten -> Dense head can take 8 kHz: the MFCC frames are counted in milliseconds, so the input
    # shape (49 x 10) is the same and the rebuilt Dense gets the same fan-in; those cells are retrained.
    report = load_report(keras_sweep / "cells" / results.iloc[5]["cell"] / "report.json")
    assert results.iloc[5]["sample_rate"] == 8000
    assert report["model"]["input_shape"][1:] == [49, 10, 1]
    trained = report["model"]["metadata"]["extra"]["training"]
    assert trained["rebuilt_and_retrained"] is True and trained["epochs"] == 3
    own = load_report(keras_sweep / "cells" / results.iloc[1]["cell"] / "report.json")
    assert own["model"]["metadata"]["extra"]["training"]["rebuilt_and_retrained"] is False
    # The user's weights as they are: the 16 kHz f32 unpruned TFLite agrees with the Keras file on every clip.
    assert results.iloc[1]["flip_rate"] == 0 and results.iloc[1]["metric_delta"] == 0
    # Sparsity is read back from the files; tfmot leaves the depthwise kernel dense, and says so.
    pruned = results[results["pruning.final_sparsity"] == 0.5]
    assert ((pruned["achieved_sparsity"] - 0.5).abs() <= 0.02).all()
    assert (pruned["model_sparsity"] < pruned["achieved_sparsity"]).all()
    assert (results[results["pruning.final_sparsity"] == 0]["achieved_sparsity"] <= 0.02).all()
    listed = "depthwise (DepthwiseConv2D, 160 params)"
    assert pruned["not_pruned"].eq(listed).all() and results.loc[:1, "not_pruned"].isna().all()
    warnings = load_report(keras_sweep / "cells" / pruned.iloc[0]["cell"] / "report.json")["warnings"]
    assert f"not pruned: {listed}" in warnings
    assert (
        f"Not pruned (tfmot cannot prune them; they stay dense): {listed}" in (keras_sweep / "summary.md").read_text()
    )
    assert {"metric_delta", "rb_delta", "flip_rate", "forgotten", "flip_rate.gender=female"} <= set(results.columns)
    assert pd.isna(base["flip_rate"]) and results.iloc[1:]["flip_rate"].notna().all()


def test_flip_rate_and_forgotten_are_those_of_the_predictions(keras_sweep: Path) -> None:
    results = pd.read_csv(keras_sweep / "results.csv").set_index("cell")
    baseline = pd.read_csv(keras_sweep / "cells" / "baseline" / "predictions.csv", dtype=str)
    for cell in results.index[1:]:
        predicted = pd.read_csv(keras_sweep / "cells" / cell / "predictions.csv", dtype=str)
        joined = baseline.merge(predicted[["path", "prediction"]], on="path", suffixes=("_base", ""))
        flips = joined["prediction"] != joined["prediction_base"]
        forgotten = (joined["prediction_base"] == joined["label"]) & (joined["prediction"] != joined["label"])
        row = results.loc[cell]
        assert row["flip_rate"] == pytest.approx(flips.mean()) and row["forgotten"] == forgotten.sum()
        female = joined["gender"] == "female"
        assert row["flip_rate.gender=female"] == pytest.approx(flips[female].mean())
        accuracy = (joined["prediction"] == joined["label"]).mean() - (
            joined["prediction_base"] == joined["label"]
        ).mean()
        assert row["metric_delta"] == pytest.approx(accuracy)
        comparison = load_report(keras_sweep / "cells" / cell / "report.json")["comparison"]
        assert comparison["runs"][0]["label"].startswith("baseline: kws_user.keras")
        assert comparison["overall"]["runs"][1]["flips"] == flips.sum()
        assert comparison["attributes"][0]["rb"][1]["difference"] == pytest.approx(row["rb_delta"], nan_ok=True)
    summary = (keras_sweep / "summary.md").read_text()
    assert "compare each cell with the baseline" in summary


def test_baseline_is_an_audit_of_the_model_as_given(
    keras_sweep: Path, user_models: dict[str, Path], tmp_path: Path
) -> None:
    baseline = load_report(keras_sweep / "cells" / "baseline" / "report.json")
    test_paths = pd.read_csv(keras_sweep / "cells" / "baseline" / "predictions.csv")["path"]
    manifest = pd.read_csv(SYNTH_KWS / "manifest.csv").set_index("path").loc[test_paths].reset_index()
    _copy_clips(manifest["path"], tmp_path)
    manifest.to_csv(tmp_path / "test.csv", index=False)
    out = tmp_path / "audit.json"
    result = runner.invoke(
        app,
        ["audit", str(user_models["keras"]), "--data", str(tmp_path / "test.csv"), "-g", "gender", "--metric",
         "accuracy", "--min-group-size", "5", "--bootstrap", "100", "--permutations", "100", "-f", "json", "-o",
         str(out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    audited = json.loads(out.read_text())
    assert audited["overall"] == baseline["overall"]
    assert audited["attributes"] == baseline["attributes"]
    assert audited["model"]["sha256"] == baseline["model"]["sha256"]


@pytest.fixture(scope="module")
def file_sweeps(
    tmp_path_factory: pytest.TempPathFactory, subset: Path, user_models: dict[str, Path], cache: Path
) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("file-sweeps")
    return {
        "tflite": _sweep(root / "tflite", subset, 'runtime = ["litert", "litert-ref", "tflm"]\n', user_models["tflite"],
                         cache),  # fmt: skip
        "onnx": _sweep(
            root / "onnx", subset, 'quantization = ["f32", "dynamic", "int8"]\n', user_models["onnx"], cache
        ),
    }


def test_tflite_and_onnx_files_sweep_runtimes_and_onnx_quantization(file_sweeps: dict[str, Path]) -> None:
    tflite = pd.read_csv(file_sweeps["tflite"] / "results.csv")
    onnx = pd.read_csv(file_sweeps["onnx"] / "results.csv")
    assert tflite["status"].eq("ok").all() and onnx["status"].eq("ok").all()
    assert list(tflite["runtime"]) == ["litert", "litert", "litert-ref", "tflm"]
    kernels = [load_report(file_sweeps["tflite"] / "cells" / cell / "report.json")["model"] for cell in tflite["cell"]]
    assert [(m["runtime"], m["kernels"], m["threads"]) for m in kernels] == [
        ("litert", "optimized", 1), ("litert", "optimized", 1), ("litert-ref", "reference", 1),
        ("tflm", "TFLM reference", 1)]  # fmt: skip
    assert list(onnx["quantization"]) == ["f32", "f32", "dynamic", "int8"]
    # TFLM and LiteRT run the same file; ONNX Runtime runs the same weights converted: they agree.
    assert tflite["flip_rate"].iloc[1:].eq(0).all()
    litert = pd.read_csv(file_sweeps["tflite"] / "cells" / "baseline" / "predictions.csv")
    ort = pd.read_csv(file_sweeps["onnx"] / "cells" / "baseline" / "predictions.csv")
    assert (litert["prediction"] == ort["prediction"]).mean() >= 0.98
    f32 = onnx.iloc[0]
    for _, quantized in onnx.iloc[2:].iterrows():
        assert quantized["size_bytes"] < f32["size_bytes"]
        assert quantized["flip_rate"] <= 0.1 and quantized["parity_ok"]
        flips = (
            pd.read_csv(file_sweeps["onnx"] / "cells" / quantized["cell"] / "predictions.csv")["prediction"]
            != ort["prediction"]
        )
        assert quantized["flip_rate"] == pytest.approx(flips.mean())
    assert onnx.iloc[1]["flip_rate"] == 0


def test_a_label_map_counts_the_models_own_class_names_as_the_data_labels(
    tmp_path: Path, subset: Path, user_models: dict[str, Path], file_sweeps: dict[str, Path], cache: Path
) -> None:
    labels = tmp_path / "labels.txt"
    labels.write_text("unknown\nnope\nyes\n")  # the classes as a third party might name them
    matrix = tmp_path / "matrix.toml"
    matrix.write_text('runtime = "litert"\n' + DATA.format(manifest=subset))
    command = ["sweep", "-m", str(matrix), "--model", str(user_models["tflite"]), "--labels", str(labels),
               "--cache", str(cache), "--out", str(tmp_path / "run")]  # fmt: skip
    unmapped = runner.invoke(app, command)
    assert unmapped.exit_code == 2 and "labels in the data that the model does not know: _unknown_, no" in unmapped.output
    result = runner.invoke(app, [*command, "--label-map", "unknown=_unknown_,nope=no"])
    assert result.exit_code == 0, result.output
    mapped = pd.read_csv(tmp_path / "run" / "cells" / "baseline" / "predictions.csv")
    own = pd.read_csv(file_sweeps["tflite"] / "cells" / "baseline" / "predictions.csv")
    assert mapped.equals(own)
    report = load_report(tmp_path / "run" / "cells" / "baseline" / "report.json")
    assert report["settings"]["label_map"] == {"unknown": "_unknown_", "nope": "no"}
    assert report["model"]["labels"] == ["unknown", "nope", "yes"]


def test_a_label_shared_by_classes_refuses_the_cells_that_train(tmp_path: Path, subset: Path,
                                                                 user_models: dict[str, Path]) -> None:  # fmt: skip
    from ondevice_audit.label_map import LabelMap
    from ondevice_audit.sweep import load_matrix

    matrix = tmp_path / "matrix.toml"
    matrix.write_text('quantization = ["f32", "int8"]\n[pruning]\nfinal_sparsity = [0, 0.5]\n' + DATA.format(manifest=subset))
    with pytest.raises(UsageError) as error:
        load_matrix(matrix, model=user_models["keras"], label_map=LabelMap.parse("no=_unknown_"))
    assert str(error.value) == (
        f"{matrix}: --label-map maps _unknown_, no onto '_unknown_': its clips have no single class to train or "
        "fine-tune towards; refused: pruning.final_sparsity (they train kws_user.keras)"
    )
    matrix.write_text('quantization = ["f32", "int8"]\n' + DATA.format(manifest=subset))  # no training: allowed
    assert len(load_matrix(matrix, model=user_models["keras"], label_map=LabelMap.parse("no=_unknown_")).cells) == 3


def test_a_model_without_metadata_takes_its_front_end_and_labels_from_flags(
    tmp_path: Path, subset: Path, user_models: dict[str, Path], file_sweeps: dict[str, Path], cache: Path
) -> None:
    import onnx

    proto = onnx.load(user_models["onnx"])
    del proto.metadata_props[:]  # what an ONNX file from elsewhere looks like: no front-end, no label names
    bare = tmp_path / "bare.onnx"
    onnx.save(proto, bare)
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(LABELS) + "\n")
    matrix = tmp_path / "matrix.toml"
    matrix.write_text(DATA.format(manifest=subset))
    command = ["sweep", "-m", str(matrix), "--model", str(bare), "--cache", str(cache), "--out", str(tmp_path / "run")]

    no_labels = runner.invoke(app, command)
    no_frontend = runner.invoke(app, [*command, "--labels", str(labels)])
    flags = ["--features", "mfcc", "--n-mels", str(SPEC.n_mels), "--n-mfcc", str(SPEC.n_mfcc)]
    swept = runner.invoke(app, [*command, "--labels", str(labels), *flags])

    assert no_labels.exit_code == 2 and "no label names: pass --labels FILE" in no_labels.output
    assert no_frontend.exit_code == 2
    assert "bare.onnx carries no front-end settings: pass --features (and its settings)" in no_frontend.output
    assert swept.exit_code == 0, swept.output
    # the same weights and front-end as the file with metadata: the same answer for every clip
    given = pd.read_csv(tmp_path / "run" / "cells" / "baseline" / "predictions.csv")
    embedded = pd.read_csv(file_sweeps["onnx"] / "cells" / "baseline" / "predictions.csv")
    assert len(given) > 50 and given["prediction"].tolist() == embedded["prediction"].tolist()
    report = load_report(tmp_path / "run" / "cells" / "baseline" / "report.json")
    assert report["model"]["labels"] == LABELS
    refused = runner.invoke(app, ["sweep", "-m", str(matrix), "--out", str(tmp_path / "x"), *flags])
    assert refused.exit_code == 2 and "--features describe your own model: give it with --model" in refused.output


def test_factors_a_tflite_file_cannot_take_are_refused_up_front(
    tmp_path: Path, subset: Path, user_models: dict[str, Path]
) -> None:
    matrix = tmp_path / "matrix.toml"
    factors = 'sample_rate = [16000, 8000]\nquantization = ["f32", "int8"]\n[pruning]\nfinal_sparsity = [0, 0.5]\n'
    matrix.write_text(factors + DATA.format(manifest=subset))
    result = runner.invoke(
        app, ["sweep", "-m", str(matrix), "--model", str(user_models["tflite"]), "--out", str(tmp_path / "run")]
    )
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"error: {matrix}: kws_user.tflite is a TFLite file without its Keras source; refused: sample_rate (needs "
        "retraining), pruning.final_sparsity (needs pruning), quantization int8 (the file is f32); a TFLite model "
        "sweeps runtime only"
    ]
    assert not (tmp_path / "run").exists()


def test_an_architecture_that_cannot_take_the_new_shape_says_so_in_one_line() -> None:
    from ondevice_audit import _tensorflow
    from ondevice_audit.sweep.user_model import rebuild_for_input

    keras = _tensorflow.keras()
    model = keras.Sequential(
        [keras.layers.Input((49, 10, 1)), keras.layers.Reshape((490,)), keras.layers.Dense(3, activation="softmax")]
    )
    assert rebuild_for_input(model, (49, 10, 1)).output_shape == (None, 3)
    with pytest.raises(UsageError) as error:
        rebuild_for_input(model, (24, 10, 1))
    message = str(error.value)
    assert message.startswith("the architecture of the model cannot take inputs of shape [24, 10, 1]: ")
    assert "\n" not in message


PLUGIN = """
from ondevice_audit.frontend import AudioFrontendSpec, build_frontend

_FRONTEND = build_frontend(AudioFrontendSpec(kind="mfcc", sample_rate=16000, clip_seconds=1.0, n_mels=20, n_mfcc=10))


def features(path):
    return _FRONTEND.transform([path]).inputs[0][..., 0]  # no channel axis, as users' pipelines often do
"""


def test_a_front_end_plug_in_makes_every_cells_inputs(
    tmp_path: Path,
    subset: Path,
    user_models: dict[str, Path],
    cache: Path,
    file_sweeps: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (tmp_path / "sweep_user_frontend.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))  # spawned workers inherit sys.path
    matrix = tmp_path / "matrix.toml"
    matrix.write_text('quantization = ["f32", "int8"]\n' + DATA.format(manifest=subset))
    command = ["sweep", "-m", str(matrix), "--model", str(user_models["onnx"]), "--frontend",
               "sweep_user_frontend:features", "--cache", str(cache)]  # fmt: skip
    result = runner.invoke(app, [*command, "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    results = pd.read_csv(tmp_path / "run" / "results.csv")
    assert results["status"].eq("ok").all() and "sample_rate" not in results.columns
    report = load_report(tmp_path / "run" / "cells" / "baseline" / "report.json")
    assert report["model"]["frontend"] == "plug-in sweep_user_frontend:features"
    # The plug-in computes the metadata's features (without the channel axis, restored for the model).
    plugged = pd.read_csv(tmp_path / "run" / "cells" / "baseline" / "predictions.csv")
    embedded = pd.read_csv(file_sweeps["onnx"] / "cells" / "baseline" / "predictions.csv")
    assert plugged.equals(embedded)
    matrix.write_text("sample_rate = [16000, 8000]\n" + DATA.format(manifest=subset))
    refused = runner.invoke(app, [*command, "--out", str(tmp_path / "refused")])
    assert refused.exit_code == 2
    assert refused.output.strip() == (
        f"error: {matrix}: kws_user.onnx is an ONNX file without its Keras source; refused: sample_rate (the "
        "front-end is the plug-in sweep_user_frontend:features); an ONNX model sweeps runtime and quantization "
        "(dynamic, int8) only"
    )


def test_a_plug_in_by_file_path_loads_in_the_sweeps_worker_processes(
    tmp_path: Path, subset: Path, user_models: dict[str, Path], cache: Path, file_sweeps: dict[str, Path]
) -> None:
    import hashlib

    plugin = tmp_path / "elsewhere" / "my_frontend.py"  # on no Python path: loaded by its file, in every worker
    plugin.parent.mkdir()
    plugin.write_text("import os\nos.write(2, b'I0000 00:00:1.1   1 port.cc:153] oneDNN custom operations are on.\\n')\n"
                      + PLUGIN)  # fmt: skip
    matrix = tmp_path / "matrix.toml"
    matrix.write_text('quantization = ["f32", "int8"]\n' + DATA.format(manifest=subset))
    fresh = tmp_path / "cache"  # features computed here, by the workers, not taken from the shared cache
    result = runner.invoke(app, ["sweep", "-m", str(matrix), "--model", str(user_models["onnx"]), "--frontend",
                                 f"{plugin}:features", "--jobs", "2", "--cache", str(fresh), "--out",
                                 str(tmp_path / "run")])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert pd.read_csv(tmp_path / "run" / "results.csv")["status"].eq("ok").all()
    plugged = pd.read_csv(tmp_path / "run" / "cells" / "baseline" / "predictions.csv")
    embedded = pd.read_csv(file_sweeps["onnx"] / "cells" / "baseline" / "predictions.csv")
    assert plugged.equals(embedded)
    report = load_report(tmp_path / "run" / "cells" / "baseline" / "report.json")
    assert {"role": "front-end plug-in", "path": str(plugin),
            "sha256": hashlib.sha256(plugin.read_bytes()).hexdigest()} in report["inputs"]  # fmt: skip
    assert "oneDNN" not in result.output


@pytest.mark.slow
def test_a_bigger_sweep_rebuilds_what_it_can_and_says_what_it_cannot(
    tmp_path: Path, subset: Path, user_models: dict[str, Path], cache: Path
) -> None:
    """n_mfcc changes the input shape: the Flatten -> Dense model is rebuilt (the Dense takes the new fan-in),
    a model whose Reshape fixes the size cannot be, and those cells fail in one line while the rest go on."""
    from ondevice_audit import _tensorflow
    from ondevice_audit.export.metadata import ModelMetadata, write_metadata

    keras = _tensorflow.keras()
    keras.utils.set_random_seed(0)
    fixed = keras.Sequential(
        [
            keras.layers.Input(SPEC.input_shape),
            keras.layers.Reshape((49 * 10,)),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dense(len(LABELS), activation="softmax"),
        ]
    )
    fixed.save(tmp_path / "fixed.keras")
    write_metadata(tmp_path / "fixed.keras", ModelMetadata(labels=LABELS, frontend=SPEC))
    factors = 'n_mfcc = [10, 13]\nfeatures = ["mfcc", "logmel"]\nseed = [0, 1]\n[pruning]\nfinal_sparsity = [0, 0.5]\n'
    flatten = pd.read_csv(_sweep(tmp_path / "flatten", subset, factors, user_models["keras"], cache) / "results.csv")
    assert flatten["status"].eq("ok").all(), flatten["error"].tolist()
    run = _sweep(tmp_path / "reshape", subset, factors, tmp_path / "fixed.keras", cache, exit_code=3)
    results = pd.read_csv(run / "results.csv")
    own = (results["features"] == "mfcc") & (results["n_mfcc"] == 10)
    assert results[own]["status"].eq("ok").all()
    failed = results[~own]
    assert failed["status"].eq("failed").all() and len(failed) == 12
    for error in failed["error"]:
        assert error.startswith("train: the architecture of the model cannot take inputs of shape [49, ")
        assert "\n" not in error


def test_target_is_a_factor_and_the_cells_on_it_are_compared_with_the_baseline(
    tmp_path: Path, subset: Path, user_models: dict[str, Path], cache: Path
) -> None:
    run = _sweep(tmp_path, subset, 'target = ["local", "subprocess"]\n', user_models["onnx"], cache)
    results = pd.read_csv(run / "results.csv")
    assert results["status"].eq("ok").all(), results["error"].tolist()
    assert list(results["target"]) == ["local", "local", "subprocess"]
    # The device runner in another Python runs the same file with the same runtime: the same answers.
    assert results["flip_rate"].iloc[1:].eq(0).all() and results["metric_delta"].iloc[1:].eq(0).all()
    report = load_report(run / "cells" / results["cell"].iloc[2] / "report.json")
    assert report["model"]["target"] == "subprocess" and report["model"]["runtime"] == "onnxruntime"
    assert report["comparison"]["runs"][1]["target"] == "subprocess"
    assert report["comparison"]["runs"][1]["label"].endswith("(onnxruntime) on subprocess")


def _with_reversed_output(source: Path, out: Path) -> Path:
    """``source`` with a second output: its class scores in reverse order (class i scored as class 2 - i)."""
    import onnx
    from onnx import TensorProto, helper

    model = onnx.load(source)
    first = model.graph.output[0].name
    model.graph.initializer.append(helper.make_tensor("order", TensorProto.INT64, [3], [2, 1, 0]))
    model.graph.node.append(helper.make_node("Gather", [first, "order"], ["reversed"], axis=1))
    model.graph.output.append(helper.make_tensor_value_info("reversed", TensorProto.FLOAT, [None, 3]))
    onnx.save(model, out)
    return out


def test_output_chooses_which_of_several_outputs_every_cell_scores(
    tmp_path: Path, subset: Path, user_models: dict[str, Path], file_sweeps: dict[str, Path], cache: Path
) -> None:
    model = _with_reversed_output(user_models["onnx"], tmp_path / "two_outputs.onnx")
    matrix = tmp_path / "matrix.toml"
    matrix.write_text('quantization = ["f32", "dynamic"]\n' + DATA.format(manifest=subset))
    command = ["sweep", "-m", str(matrix), "--model", str(model), "--cache", str(cache), "--out", str(tmp_path / "run")]
    unchosen = runner.invoke(app, command)
    assert unchosen.exit_code == 2 and "has 2 outputs" in unchosen.output and "--output NAME|INDEX" in unchosen.output
    assert not (tmp_path / "run").exists(), "refused before any work"
    result = runner.invoke(app, [*command, "--output", "reversed"])
    assert result.exit_code == 0, result.output
    results = pd.read_csv(tmp_path / "run" / "results.csv")
    assert results["status"].eq("ok").all() and list(results["quantization"]) == ["f32", "f32", "dynamic"]
    for cell in results["cell"]:
        assert load_report(tmp_path / "run" / "cells" / cell / "report.json")["model"]["output"] == "reversed"
    single = pd.read_csv(file_sweeps["onnx"] / "cells" / "baseline" / "predictions.csv")
    reversed_ = pd.read_csv(tmp_path / "run" / "cells" / "baseline" / "predictions.csv")
    assert (reversed_["prediction"] == single["prediction"].map(dict(zip(LABELS, LABELS[::-1], strict=True)))).all()


def test_a_keras_model_with_several_outputs_is_refused_in_one_line(tmp_path: Path, subset: Path) -> None:
    from ondevice_audit import _tensorflow
    from ondevice_audit.export.metadata import ModelMetadata, write_metadata

    keras = _tensorflow.keras()
    inputs = keras.layers.Input(SPEC.input_shape)
    flat = keras.layers.Flatten()(inputs)
    heads = [keras.layers.Dense(3, activation="softmax", name=name)(flat) for name in ("words", "speakers")]
    path = tmp_path / "two_heads.keras"
    keras.Model(inputs, heads).save(path)
    write_metadata(path, ModelMetadata(labels=LABELS, frontend=SPEC))
    matrix = tmp_path / "matrix.toml"
    matrix.write_text('quantization = ["f32"]\n' + DATA.format(manifest=subset))
    result = runner.invoke(app, ["sweep", "-m", str(matrix), "--model", str(path), "--output", "words", "--out",
                                 str(tmp_path / "run")])  # fmt: skip
    assert result.exit_code == 2
    assert "two_heads.keras has 2 outputs (words, speakers): a sweep retrains and prunes a Keras model with one" in (
        result.output.replace("\n", " ")
    )
