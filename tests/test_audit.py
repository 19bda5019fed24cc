"""`audit` end to end on a real tiny model in Keras, TFLite and ONNX, and every bad input it must refuse."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from ondevice_audit.audit import ScoreOptions, audit_model
from ondevice_audit.cli import app
from ondevice_audit.report.document import validate

OPTIONS = ScoreOptions(groups=("gender",), metric="accuracy", min_group_size=5, bootstrap=200, permutations=200)
runner = CliRunner()


@pytest.fixture(scope="module")
def reports(tiny_models, tone_dataset):
    return {fmt: audit_model(path, tone_dataset, OPTIONS) for fmt, path in tiny_models.items()}


def test_keras_tflite_and_onnx_give_the_same_numbers(reports):
    keras = reports["keras"]
    unchanged = {"clips": 216, "cut": 0, "longest_seconds": None, "padded": 0, "shortest_seconds": None,
                 "resampled_from": {}, "mixed_from": {}}  # fmt: skip
    assert keras["samples"] == {"total": 216, "scored": 216, "failed": 0, "failures": [], "inputs": unchanged}
    for fmt in ("tflite", "onnx"):
        other = reports[fmt]
        assert other["overall"]["metrics"] == pytest.approx(keras["overall"]["metrics"], abs=1e-3)
        for mine, theirs in zip(other["attributes"][0]["groups"], keras["attributes"][0]["groups"], strict=True):
            assert mine["metrics"] == pytest.approx(theirs["metrics"], abs=1e-3)
        assert other["attributes"][0]["rb"]["value"] == pytest.approx(keras["attributes"][0]["rb"]["value"], abs=1e-3)


def test_model_facts_are_reported(reports, tiny_models):
    for fmt, report in reports.items():
        validate(report)
        model = report["model"]
        assert model["format"] == fmt
        assert model["labels"] == ["_unknown_", "no", "yes"]
        assert model["input_shape"][1:] == [24, 10, 1]
        assert model["seconds_per_sample"] > 0
        assert model["size_bytes"] == tiny_models[fmt].stat().st_size
        assert model["runtime"] == {"keras": "tensorflow", "tflite": "litert", "onnx": "onnxruntime"}[fmt]
        assert "mfcc @ 16000 Hz" in model["frontend"]


def test_the_noisier_group_is_named_worst_off(reports):
    attribute = reports["tflite"]["attributes"][0]
    female, male = attribute["groups"]
    assert female["metrics"]["accuracy"] < male["metrics"]["accuracy"]
    assert attribute["worst_group"] == "female"
    assert female["n_speakers"] == male["n_speakers"] == 12


def test_audit_is_deterministic(tiny_models, tone_dataset, reports):
    again = audit_model(tiny_models["onnx"], tone_dataset, OPTIONS)
    for key in ("overall", "attributes", "samples"):
        assert again[key] == reports["onnx"][key]


@pytest.fixture
def dataset_copy(tone_dataset, tmp_path) -> Path:
    shutil.copytree(tone_dataset.parent, tmp_path / "data")
    return tmp_path / "data" / "manifest.csv"


def test_bad_files_are_counted_listed_and_fail_only_with_strict(tiny_models, dataset_copy):
    root = dataset_copy.parent
    frame = pd.read_csv(dataset_copy)
    (root / frame.loc[0, "path"]).write_bytes(b"not audio at all")
    (root / frame.loc[1, "path"]).unlink()
    (root / frame.loc[2, "path"]).write_bytes(b"")
    args = ["audit", str(tiny_models["tflite"]), "--data", str(dataset_copy), "-g", "gender", "--bootstrap", "0",
            "--permutations", "0", "--min-group-size", "5", "-f", "json"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["samples"]["failed"] == 3 and report["samples"]["scored"] == 213
    reasons = {f["path"]: f["reason"] for f in report["samples"]["failures"]}
    assert reasons[frame.loc[1, "path"]] == "file not found"
    assert reasons[frame.loc[2, "path"]].startswith("unreadable audio") or reasons[frame.loc[2, "path"]] == "empty audio"
    assert reasons[frame.loc[0, "path"]].startswith("unreadable audio")
    strict = runner.invoke(app, [*args, "--strict"])
    assert strict.exit_code == 1
    assert "failed samples with --strict" in strict.stderr


def _audit(model, manifest, *extra):
    return runner.invoke(app, ["audit", str(model), "--data", str(manifest), "-g", "gender", "--bootstrap", "0",
                               "--permutations", "0", *extra])  # fmt: skip


def _one_line_error(result, text):
    assert result.exit_code == 2, result.output
    assert text in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) <= 3


def test_missing_manifest_column(tiny_models, dataset_copy):
    pd.read_csv(dataset_copy).drop(columns="label").to_csv(dataset_copy, index=False)
    _one_line_error(_audit(tiny_models["tflite"], dataset_copy), "missing column(s) label")


def test_unknown_group(tiny_models, dataset_copy):
    result = runner.invoke(app, ["audit", str(tiny_models["tflite"]), "--data", str(dataset_copy), "-g", "age"])
    _one_line_error(result, "unknown --group age; choose from the group columns: gender, accent")


@pytest.mark.parametrize("suffix", [".tflite", ".onnx", ".keras"])
def test_random_bytes_are_not_a_model(dataset_copy, tmp_path, suffix):
    fake = tmp_path / f"fake{suffix}"
    fake.write_bytes(bytes(range(256)) * 8)
    result = _audit(fake, dataset_copy)
    assert result.exit_code == 2 and "not a" in result.stderr and "Traceback" not in result.stderr


def test_front_end_shape_mismatch(tiny_models, dataset_copy):
    result = _audit(tiny_models["onnx"], dataset_copy, "--features", "logmel", "--n-mels", "20")
    _one_line_error(result, "the front-end makes inputs of shape [49, 20, 1] but the model takes [24, 10, 1]")


def test_labels_the_model_does_not_know(tiny_models, dataset_copy):
    frame = pd.read_csv(dataset_copy)
    frame.loc[[0, 1], "label"] = ["maybe", "later"]
    frame.to_csv(dataset_copy, index=False)
    _one_line_error(_audit(tiny_models["tflite"], dataset_copy), "labels in the data that the model does not know: later, maybe")


def test_path_escaping_the_manifest_folder(tiny_models, dataset_copy):
    frame = pd.read_csv(dataset_copy)
    frame.loc[3, "path"] = "../../etc/passwd"
    frame.to_csv(dataset_copy, index=False)
    _one_line_error(_audit(tiny_models["tflite"], dataset_copy), "line 5: path '../../etc/passwd' escapes the manifest folder")


def test_empty_dataset(tiny_models, dataset_copy):
    dataset_copy.write_text("path,label,gender,speaker\n")
    _one_line_error(_audit(tiny_models["tflite"], dataset_copy), "the table has a header but no rows")


def test_model_without_metadata_needs_flags(tiny_models, dataset_copy, tmp_path):
    import onnx

    bare = onnx.load(str(tiny_models["onnx"]))
    del bare.metadata_props[:]
    path = tmp_path / "bare.onnx"
    onnx.save(bare, str(path))
    _one_line_error(_audit(path, dataset_copy), "the model carries no label names")
    labels = tmp_path / "labels.txt"
    labels.write_text("_unknown_\nno\nyes\n")
    _one_line_error(_audit(path, dataset_copy, "--labels", str(labels)), "the model carries no front-end settings")
    result = _audit(path, dataset_copy, "--labels", str(labels), "--features", "mfcc", "--clip-seconds", "0.5",
                    "--n-mels", "20", "--min-group-size", "5", "-f", "json")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["overall"]["n"] == 216


def test_plugin_front_end(tiny_models, dataset_copy, tmp_path, monkeypatch):
    """A user's own callable: here it reproduces the MFCCs, so results equal the metadata front-end's."""
    (tmp_path / "my_features.py").write_text(
        "from ondevice_audit.frontend import AudioFrontendSpec, build_frontend\n"
        "_FE = build_frontend(AudioFrontendSpec(kind='mfcc', clip_seconds=0.5, n_mels=20, n_mfcc=10))\n"
        "def features(path):\n"
        "    return _FE.load_one(path)[..., 0]\n"  # drop the channel axis: the tool must fit it back
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with_plugin = _audit(tiny_models["tflite"], dataset_copy, "--frontend", "my_features:features", "-f", "json",
                         "--min-group-size", "5")  # fmt: skip
    plain = _audit(tiny_models["tflite"], dataset_copy, "-f", "json", "--min-group-size", "5")
    assert with_plugin.exit_code == 0, with_plugin.output
    assert json.loads(with_plugin.stdout)["overall"]["metrics"] == pytest.approx(json.loads(plain.stdout)["overall"]["metrics"])
    bad = _audit(tiny_models["tflite"], dataset_copy, "--frontend", "no_such_module:f")
    _one_line_error(bad, "--frontend no_such_module:f: loading no_such_module failed: ModuleNotFoundError: No module "
                         "named 'no_such_module'; name it by its file (path/to/file.py:callable)")


def test_split_file_selects_the_held_out_rows(tiny_models, dataset_copy, tmp_path):
    frame = pd.read_csv(dataset_copy)
    split = tmp_path / "split.csv"
    frame.assign(split=np.where(frame["speaker"].isin(["s1", "s2", "s3"]), "test", "train"))[["path", "split"]].to_csv(
        split, index=False
    )
    result = _audit(tiny_models["tflite"], dataset_copy, "--split-file", str(split), "-f", "json", "--min-group-size", "5")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["overall"]["n"] == 27 and report["overall"]["n_speakers"] == 3
    assert report["settings"]["split"] == "test"
    _one_line_error(_audit(tiny_models["tflite"], dataset_copy, "--split-file", str(split), "--split", "dev"),
                    "no rows in split 'dev' (splits: test, train)")  # fmt: skip


def test_tflm_with_board_budget_and_stratified_subsample(tiny_models, dataset_copy):
    result = _audit(tiny_models["tflite"], dataset_copy, "--runtime", "tflm", "--board", "nano33ble",
                    "--max-samples-per-group", "10", "--min-group-size", "5", "-f", "json")  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["overall"]["n"] == 20 and [g["n"] for g in report["attributes"][0]["groups"]] == [10, 10]
    mcu = report["model"]["mcu"]
    assert mcu["ok"] and 0 < mcu["arena_bytes"] < mcu["ram_limit_bytes"] == int(256 * 1024 * 0.75)
    assert report["model"]["runtime"] == "tflm"
    assert any("stratified subsample" in w for w in report["warnings"])
    tight = _audit(tiny_models["tflite"], dataset_copy, "--runtime", "tflm", "--mcu-ram", "1KiB", "-f", "json",
                   "--max-samples-per-group", "5", "--min-group-size", "5")  # fmt: skip
    assert any("does not fit the MCU budget" in w for w in json.loads(tight.stdout)["warnings"])


def test_nan_model_output_is_a_counted_failure(dataset_copy, tmp_path, monkeypatch):
    """A model whose output is NaN for some inputs (sqrt of a negative): those clips fail, the rest are scored."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Sqrt", ["input"], ["scores"])],
        "sqrt",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["n", 3])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["n", 3])],
    )
    model = tmp_path / "sqrt.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), str(model))
    (tmp_path / "signs.py").write_text(
        "import numpy as np\n"
        "def features(path):\n"
        "    # speaker s0's clips map to negative inputs, so the model answers NaN for them\n"
        "    return np.array([-1.0, -1.0, -1.0]) if path.name.startswith('s0_') else np.array([0.1, 0.2, 0.9])\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    labels = tmp_path / "labels.txt"
    labels.write_text("_unknown_\nno\nyes\n")
    result = _audit(model, dataset_copy, "--frontend", "signs:features", "--labels", str(labels), "-f", "json",
                    "--min-group-size", "5")  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["samples"]["failed"] == 9 and report["samples"]["scored"] == 207
    assert {f["reason"] for f in report["samples"]["failures"]} == {"model output is NaN or infinite"}
    assert _audit(model, dataset_copy, "--frontend", "signs:features", "--labels", str(labels), "--strict").exit_code == 1
