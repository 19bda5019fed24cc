"""``explain`` on models built to be sensitive (or not) to int8 for one group; numbers checked against the
interpreters' own intermediate tensors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from ondevice_audit.cli import app
from ondevice_audit.explain.document import SCHEMA_VERSION, schema, validate
from ondevice_audit.explain.render import ExplainFormat, render
from ondevice_audit.scoring import ScoreOptions

OPTIONS = ScoreOptions(groups=("gender",), bootstrap=500, permutations=0, min_group_size=30)
runner = CliRunner()


@pytest.fixture(scope="module")
def sensitive(sensitive_case: Any, explain: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return explain(sensitive_case, tmp_path_factory.mktemp("explain-out"), OPTIONS, 5)


def _layer(document: dict[str, Any], name: str) -> dict[str, Any]:
    return next(layer for layer in document["layers"] if layer["name"] == name)


def _groups(layer: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {group["name"]: group for group in layer["groups"]}


def test_the_sensitive_layer_is_ranked_first_and_keeping_it_in_float_fixes_rb(sensitive: dict[str, Any]) -> None:
    variant = next(run for run in sensitive["runs"] if run["role"] == "variant")
    assert sensitive["worse_off_group"] == "female"
    assert variant["within_base_interval"] is False and variant["rb_difference_ci"][0] > 0
    assert variant["groups"]["female"] < 0.6 < variant["groups"]["male"]
    ranked = sorted((layer for layer in sensitive["layers"] if layer["rank"]), key=lambda layer: layer["rank"])
    assert ranked[0]["name"] == "mix" and ranked[0]["gap_ci"][0] > 10
    first = next(run for run in sensitive["runs"] if run["role"] == "candidate")
    assert first["undone"] == ["mix"] and first["within_base_interval"] is True
    low, high = sensitive["base_rb"]["ci"]
    assert first["rb"] <= high
    recommendation = sensitive["recommendation"]
    assert recommendation["undone"] == ["mix"] and recommendation["file"] == first["path"]
    assert recommendation["size_delta_bytes"] == first["size_bytes"] - variant["size_bytes"] > 0
    assert recommendation["latency_ms"] > 0
    assert "mix kept in float" in sensitive["findings"]["fix"]


def test_the_recommended_file_keeps_mix_in_float_and_carries_metadata(sensitive: dict[str, Any]) -> None:
    from ai_edge_litert.interpreter import Interpreter

    from ondevice_audit.export.metadata import read_metadata

    path = Path(sensitive["recommendation"]["file"])
    metadata = read_metadata(path)
    assert metadata is not None and metadata.labels == ["c0", "c1", "c2", "c3"]
    assert metadata.extra["kept_in_float"] == ["mix"] and metadata.extra["quantization"] == "int8"
    interpreter = Interpreter(model_path=str(path))
    types = {detail["name"]: detail["dtype"] for detail in interpreter.get_tensor_details()}
    assert types["model/mix/MatMul;model/mix_relu6/Relu6"] == np.float32
    assert interpreter.get_input_details()[0]["dtype"] == np.int8  # int8 I/O, as the variant


def _preserved(path: Path, inputs: np.ndarray, names: list[str]) -> dict[str, np.ndarray]:
    """Each named tensor of ``path`` dequantized, for every input, from LiteRT with every tensor kept."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path), experimental_preserve_all_tensors=True)
    interpreter.allocate_tensors()
    source = interpreter.get_input_details()[0]
    details = {d["name"]: d for d in interpreter.get_tensor_details()}
    scale, zero = source["quantization"]
    kept: dict[str, list[np.ndarray]] = {name: [] for name in names}
    for row in inputs:
        interpreter.set_tensor(source["index"], np.clip(np.round(row[None] / scale + zero), -128, 127).astype(np.int8))
        interpreter.invoke()
        for name in names:
            step, point = details[name]["quantization"]
            kept[name].append((interpreter.get_tensor(details[name]["index"]).astype(np.float64) - point) * step)
    return {name: np.concatenate(values) for name, values in kept.items()}


@pytest.mark.filterwarnings("ignore:Warning. Enabling .experimental_preserve_all_tensors")
def test_layer_errors_match_the_interpreters_intermediate_tensors(
    sensitive: dict[str, Any], sensitive_case: Any
) -> None:
    """The debugger's per-group numbers, recomputed from the shipped int8 file's tensors and the Keras layers:
    each op's float twin reads what the int8 model fed the op (the raw input for the first)."""
    from ondevice_audit import _tensorflow

    keras = _tensorflow.keras()
    base = keras.models.load_model(str(sensitive_case.base), compile=False)
    mix_name, hidden_name = "model/mix/MatMul;model/mix_relu6/Relu6", "model/hidden/MatMul;model/hidden/Relu"
    tensors = _preserved(sensitive_case.variant, sensitive_case.inputs, [mix_name, hidden_name])
    mix_float = np.asarray(keras.Model(base.inputs, base.get_layer("mix_relu6").output)(sensitive_case.inputs))
    hidden_float = np.asarray(base.get_layer("hidden")(tensors[mix_name].astype(np.float32)))
    female = (sensitive_case.frame["gender"] == "female").to_numpy()
    for name, quantized, reference in (("mix", tensors[mix_name], mix_float), ("hidden", tensors[hidden_name],
                                                                                hidden_float)):  # fmt: skip
        layer = _layer(sensitive, name)
        squared = np.mean((quantized - reference) ** 2, axis=1)
        power = np.mean(np.asarray(reference, np.float64) ** 2, axis=1)
        for group, rows in (("female", female), ("male", ~female)):
            reported = _groups(layer)[group]
            assert reported["rmse_per_scale"] == pytest.approx(np.sqrt(squared[rows].mean()) / layer["scale"], rel=1e-4)
            assert reported["snr_db"] == pytest.approx(
                10 * np.log10(power[rows].mean() / squared[rows].mean()), abs=1e-3
            )
        gap = -_groups(layer)["female"]["snr_db"] + _groups(layer)["male"]["snr_db"]
        assert layer["gap_db"] == pytest.approx(gap, abs=1e-6)


def test_a_harmless_quantization_is_said_to_change_nothing(harmless_case: Any, explain: Any, tmp_path: Path) -> None:
    document = explain(harmless_case, tmp_path / "out", OPTIONS)
    assert "does not measurably change RB" in document["findings"]["variant"]
    assert all(layer["rank"] is None for layer in document["layers"])
    assert "No layer is ranked" in document["findings"]["layers"]
    assert document["recommendation"] is None and document["findings"]["fix"] == "None needed."
    assert [run["role"] for run in document["runs"]] == ["base", "variant", "rebuilt"]


def test_the_schema_holds_the_document_to_its_shape(sensitive: dict[str, Any]) -> None:
    """The schema is a valid 2020-12 schema, names this version, and refuses what a reader could misread."""
    import copy

    import jsonschema

    assert sensitive["schema_version"] == SCHEMA_VERSION and sensitive["detection"] is None
    assert sensitive["findings"]["operating_point"] is None and sensitive["settings"]["task"] == "classify"
    assert schema()["properties"]["schema_version"]["pattern"] == "^explain-1\\.[0-9]+$"
    for change in (
        lambda d: d.update(schema_version="1.2"),  # an audit report's version
        lambda d: d["runs"][0].pop("threshold"),
        lambda d: d["runs"][-1].pop("undone"),  # a candidate without its layers
        lambda d: d.update(detection={"positive_label": "yes"}),  # a classifier's document with a detector's section
        lambda d: d["layers"][0].update(rank=0),
        lambda d: d.update(extra=1),
    ):
        broken = copy.deepcopy(sensitive)
        change(broken)
        with pytest.raises(jsonschema.ValidationError):
            validate(broken)


def test_formats_render_the_same_document(sensitive: dict[str, Any]) -> None:
    page = render(sensitive, ExplainFormat.html)
    assert page.startswith("<!DOCTYPE html>") and '<img alt="SNR of each layer' in page and "mix kept in float" in page
    markdown = render(sensitive, ExplainFormat.markdown)
    assert "| 1 | mix | FC | " in markdown and "fix 1: mix kept in float" in markdown
    table = render(sensitive, ExplainFormat.table)
    assert "mix kept in float" in table and "SNR dB per group" in table
    assert json.loads(render(sensitive, ExplainFormat.json)) == json.loads(json.dumps(sensitive))


def test_cli_writes_candidates_and_the_json_next_to_them(sensitive_case: Any, tmp_path: Path) -> None:
    out = tmp_path / "fix"
    result = runner.invoke(app, [
        "explain", str(sensitive_case.variant), "--base", str(sensitive_case.base), "--data",
        str(sensitive_case.manifest), "-g", "gender", "--bootstrap", "200", "--permutations", "0", "--top-layers",
        "1", "--latency-samples", "2", "--out", str(out), "--format", "markdown", "--output", str(tmp_path / "x.md"),
    ])  # fmt: skip
    assert result.exit_code == 0, result.stderr
    document = json.loads((out / "explain.json").read_text())
    validate(document)
    assert [run["role"] for run in document["runs"]][-1] == "candidate"
    assert (out / "quantization-fix-1.tflite").is_file() and (out / "int8-rebuilt.tflite").is_file()
    assert "mix kept in float" in (tmp_path / "x.md").read_text()


def _pruned(case: Any, folder: Path) -> Path:
    """The base with the smallest half of ``mix``'s kernel set to zero, as magnitude pruning leaves it: exactly
    the female weights, which are 300 times smaller than the male ones."""
    from ondevice_audit import _tensorflow
    from ondevice_audit.export.metadata import read_metadata
    from ondevice_audit.export.variants import save_keras

    model = _tensorflow.keras().models.load_model(str(case.base), compile=False)
    kernel, bias = model.get_layer("mix").get_weights()
    kernel[np.abs(kernel) < np.median(np.abs(kernel))] = 0
    model.get_layer("mix").set_weights([kernel, bias])
    path = folder / "model-p50.keras"
    save_keras(model, path, read_metadata(case.base))
    return path


def test_pruning_is_explained_by_sparsity_and_fixed_by_restoring_the_layer(
    sensitive_case: Any, explain: Any, tmp_path: Path
) -> None:
    variant = _pruned(sensitive_case, tmp_path)
    document = explain(sensitive_case, tmp_path / "out", OPTIONS, 2, variant)
    assert document["kind"] == "pruning" and document["worse_off_group"] == "female"
    mix = _layer(document, "mix")
    assert mix["rank"] == 1 and mix["sparsity"] == 0.5 and mix["base_sparsity"] == 0.0
    assert [layer["name"] for layer in document["layers"]] == ["mix"]  # the only layer sparser than the base's
    assert _groups(mix)["female"]["snr_db"] == pytest.approx(0.0, abs=1e-6)  # all of its signal removed
    assert _groups(mix)["male"]["snr_db"] > 40
    assert document["recommendation"]["undone"] == ["mix"]
    assert document["recommendation"]["file"].endswith("pruning-fix-1.keras")
    fixed = next(run for run in document["runs"] if run["role"] == "candidate")
    base = document["runs"][0]
    assert fixed["groups"] == base["groups"] and fixed["rb_difference"] == pytest.approx(0.0, abs=1e-12)


def test_bad_input_is_one_line_and_exit_2(sensitive_case: Any, explain_fails: Any, tmp_path: Path) -> None:
    from ondevice_audit.explain.quantization import float_flatbuffer
    from ondevice_audit.export.metadata import ModelMetadata, read_metadata, write_metadata

    case, models, _fails = sensitive_case, tmp_path / "models", explain_fails
    models.mkdir()
    common = ["--data", str(case.manifest), "-g", "gender", "--out", str(tmp_path / "out")]
    variant, base = str(case.variant), str(case.base)
    assert "variant not found" in _fails(str(tmp_path / "nope.tflite"), "--base", base, *common)
    assert "same file" in _fails(variant, "--base", variant, *common)
    int8_base = models / "int8.tflite"
    int8_base.write_bytes(case.variant.read_bytes())
    assert "the base must be a float32 model; this one is int8" in _fails(variant, "--base", str(int8_base), *common)
    float_variant = models / "f32.tflite"
    float_variant.write_bytes(float_flatbuffer(case.base))
    metadata = read_metadata(case.base)
    assert metadata is not None
    write_metadata(float_variant, metadata)
    assert "explain takes a full-integer (int8) .tflite variant" in _fails(str(float_variant), "--base", base, *common)
    dense = models / "same.keras"
    dense.write_bytes(case.base.read_bytes())
    assert "is not sparser than the base in any layer" in _fails(str(dense), "--base", base, *common)
    relabelled = models / "other.keras"
    relabelled.write_bytes(case.base.read_bytes())
    write_metadata(relabelled, ModelMetadata(["a", "b", "c", "d"], metadata.frontend))
    assert "the base's labels (a, b, c, d) differ" in _fails(variant, "--base", str(relabelled), *common)
    assert "--bootstrap 100 or more" in _fails(variant, "--base", base, *common, "--bootstrap", "0")
    holds = ["--data", str(case.manifest), "-g", "gender", "--out", str(case.variant.parent)]
    assert "holds an input" in _fails(variant, "--base", base, *holds)
    assert "not a finished sweep cell folder (no report.json)" in _fails(str(tmp_path), "--base", base, *common)
    assert "nope" in _fails(variant, "--base", base, "--data", str(case.manifest), "-g", "nope", "--out", str(tmp_path / "o"))
    assert not (tmp_path / "out").exists() and not (tmp_path / "o").exists(), "a refused explain writes nothing"


def test_the_command_prints_no_library_lines(sensitive_case: Any, tmp_path: Path) -> None:
    """The converter's "fully_quantize" and XNNPACK's "INFO:" lines (C++, on fd 2) stay off a real process's
    output: every stderr line is the tool's own progress."""
    import os
    import subprocess
    import sys

    env = {key: value for key, value in os.environ.items() if not key.startswith(("TF_CPP", "ONDEVICE_AUDIT"))}
    command = [sys.executable, "-m", "ondevice_audit", "explain", str(sensitive_case.variant), "--base",
               str(sensitive_case.base), "--data", str(sensitive_case.manifest), "-g", "gender", "--out",
               str(tmp_path / "fix"), "--latency-samples", "2"]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, env={**env, "COLUMNS": "1000"}, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    own = ("✓ ", "Candidates and explain.json in ")
    assert [line for line in done.stderr.splitlines() if not line.startswith(own)] == []


def test_int8_is_rebuilt_on_the_rows_export_calibrated_on(sensitive_case: Any, tmp_path: Path) -> None:
    """An int8 file exported with ``--split-file`` (its training split) is rebuilt by explain from the same rows:
    the calibration names the split, draws from exactly its rows, and the rebuilt model matches the file."""
    import pandas as pd

    frame = pd.read_csv(sensitive_case.manifest)
    speakers = sorted(frame["speaker"].unique())
    split = tmp_path / "split.csv"
    frame[["path", "label", "speaker"]].assign(split=frame["speaker"].isin(speakers[::2]).map({True: "train",
                                               False: "test"})).to_csv(split, index=False)  # fmt: skip
    common = ["--data", str(sensitive_case.manifest), "--split-file", str(split)]
    exported = CliRunner().invoke(app, ["export", str(sensitive_case.base), "--to", "tflite", "--quantize", "int8",
                                        *common, "--out", str(tmp_path / "export")])  # fmt: skip
    assert exported.exit_code == 0, exported.output
    result = CliRunner().invoke(app, ["explain", str(tmp_path / "export" / "model-int8.tflite"), "--base",
                                      str(sensitive_case.base), *common, "-g", "gender", "--out", str(tmp_path / "fix"),
                                      "--latency-samples", "2"])  # fmt: skip
    assert result.exit_code == 0, result.output
    document = json.loads((tmp_path / "fix" / "explain.json").read_text())
    calibration = document["settings"]["calibration"]
    train_rows = int(frame["speaker"].isin(speakers[::2]).sum())
    assert (calibration["split_file"], calibration["split"], calibration["rows"]) == (str(split), "train", train_rows)
    assert not [w for w in document["warnings"] if "rebuilt" in w]
    runs = {run["role"]: run for run in document["runs"]}
    assert runs["rebuilt"]["groups"] == runs["variant"]["groups"]
