"""``--label-map``: a model's classes counted as the data's labels, one to one or several onto one.

The tiny tone model's classes are ``_unknown_``, ``no``, ``yes``. Renamed in a labels file (``unknown``,
``nope``, ``yes``) and mapped back, the audit must equal the audit of the model's own names; with every ``no``
clip relabelled ``_unknown_`` and the model's ``no`` mapped onto it, the per-group accuracies must equal a count
made here from the interpreter's own outputs.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from ondevice_audit.audit import ModelOptions, ScoreOptions, audit_model
from ondevice_audit.cli import app
from ondevice_audit.data import read_manifest
from ondevice_audit.errors import UsageError
from ondevice_audit.frontend import build_frontend
from ondevice_audit.label_map import LabelMap
from ondevice_audit.report import ReportFormatChoice
from ondevice_audit.report.document import validate

from .conftest import LABELS, SPEC

OPTIONS = ScoreOptions(groups=("gender",), metric="accuracy", min_group_size=5, bootstrap=0, permutations=0)
runner = CliRunner()


@pytest.fixture(scope="module")
def renamed(tmp_path_factory) -> Path:
    """The model's classes as a third party might name them."""
    path = tmp_path_factory.mktemp("labels") / "labels.txt"
    path.write_text("unknown\nnope\nyes\n")
    return path


@pytest.fixture(scope="module")
def no_as_unknown(tone_dataset: Path) -> Path:
    """The tone clips with every ``no`` labelled ``_unknown_`` (a new manifest beside the original)."""
    frame = pd.read_csv(tone_dataset)
    frame["label"] = frame["label"].replace({"no": "_unknown_"})
    path = tone_dataset.with_name("manifest-no-as-unknown.csv")
    frame.to_csv(path, index=False)
    return path


def test_renamed_classes_mapped_back_audit_as_the_model_names(tiny_models, tone_dataset, renamed, tmp_path):
    own = audit_model(tiny_models["tflite"], tone_dataset, OPTIONS)
    inline = LabelMap.parse("unknown=_unknown_,nope=no")
    mapped = audit_model(tiny_models["tflite"], tone_dataset, OPTIONS, ModelOptions(labels_file=renamed,
                                                                                    label_map=inline))  # fmt: skip
    validate(mapped)
    assert mapped["overall"] == own["overall"] and mapped["attributes"] == own["attributes"]
    assert mapped["settings"]["label_map"] == {"unknown": "_unknown_", "nope": "no"}
    assert own["settings"]["label_map"] is None
    assert mapped["model"]["labels"] == ["unknown", "nope", "yes"]
    table = tmp_path / "map.csv"
    table.write_text("model_class,data_label\nunknown,_unknown_\nnope,no\n")
    from_file = audit_model(tiny_models["tflite"], tone_dataset, OPTIONS,
                            ModelOptions(labels_file=renamed, label_map=LabelMap.parse(str(table))))  # fmt: skip
    assert from_file["attributes"] == own["attributes"] and from_file["settings"]["label_map"] == inline.as_dict()


def test_several_classes_onto_one_label_match_a_count_of_the_interpreter_outputs(tiny_models, no_as_unknown):
    from ai_edge_litert.interpreter import Interpreter

    report = audit_model(tiny_models["tflite"], no_as_unknown, OPTIONS,
                         ModelOptions(label_map=LabelMap.parse("no=_unknown_")))  # fmt: skip
    frame = read_manifest(no_as_unknown).frame
    inputs = build_frontend(SPEC).transform([Path(p) for p in frame["file"]]).inputs
    interpreter = Interpreter(model_path=str(tiny_models["tflite"]))
    interpreter.resize_tensor_input(0, list(inputs.shape))
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], inputs)
    interpreter.invoke()
    scores = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    predicted = np.array([{"no": "_unknown_"}.get(name, name) for name in np.asarray(LABELS)[scores.argmax(1)]])
    correct = pd.Series(predicted == frame["label"].to_numpy())
    expected = correct.groupby(frame["gender"].to_numpy()).mean()
    got = {group["name"]: group["metrics"]["accuracy"] for group in report["attributes"][0]["groups"]}
    assert got == pytest.approx(expected.to_dict(), abs=1e-12)
    assert report["overall"]["metrics"]["accuracy"] == pytest.approx(correct.mean(), abs=1e-12)
    assert report["warnings"] == []


def _audit(model, manifest, *extra):
    return runner.invoke(app, ["audit", str(model), "--data", str(manifest), "-g", "gender", "--bootstrap", "0",
                               "--permutations", "0", "--min-group-size", "5", *extra])  # fmt: skip


def _one_line_error(result, text):
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stderr.strip() == f"error: {text}"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("nope=no", "--label-map names 'nope', not a class of the model; its classes: _unknown_, no, yes"),
        ("yes=no", "labels in the data that no model class maps to: yes (--label-map leads to _unknown_, no)"),
        ("no=a,no=b", "--label-map maps the model class 'no' twice ('a' and 'b'); name each class once"),
        ("no=_unknown_,yes", "--label-map: 'yes' is not MODEL=DATA (a model class, '=', a data label)"),
        ("no=", "--label-map: 'no=' is not MODEL=DATA (a model class, '=', a data label)"),
        ("=no", "--label-map: '=no' is not MODEL=DATA (a model class, '=', a data label)"),
        ("no=a=b", "--label-map: 'no=a=b' is not MODEL=DATA (a model class, '=', a data label)"),
        ("no-such-file.csv", "--label-map 'no-such-file.csv': neither MODEL=DATA pairs nor a file"),
    ],
)
def test_bad_maps_are_refused_in_one_line(tiny_models, tone_dataset, value, message):
    _one_line_error(_audit(tiny_models["tflite"], tone_dataset, "--label-map", value), message)


def test_bad_map_files_are_refused_in_one_line(tiny_models, tone_dataset, tmp_path):
    headless = tmp_path / "headless.csv"
    headless.write_text("no,_unknown_\n")
    _one_line_error(_audit(tiny_models["tflite"], tone_dataset, "--label-map", str(headless)),
                    f"--label-map {headless}: the first row must be the header model_class,data_label")  # fmt: skip
    short = tmp_path / "short.csv"
    short.write_text("model_class,data_label\nno,_unknown_\nyes\n")
    _one_line_error(_audit(tiny_models["tflite"], tone_dataset, "--label-map", str(short)),
                    f"--label-map {short}, row 3: expected a model class and a data label, got ['yes']")  # fmt: skip


def test_a_label_the_map_leads_to_that_the_data_lacks_is_a_warning_in_every_format(tiny_models, no_as_unknown):
    result = _audit(tiny_models["tflite"], no_as_unknown, "--label-map", "no=never", "-f", "json")
    report = json.loads(result.stdout)
    assert report["warnings"] == ["--label-map maps classes onto 'never', not a label in the data: clips predicted "
                                  "as it count as wrong"]  # fmt: skip
    for choice in ReportFormatChoice:
        assert "not a label in the data" in " ".join(choice.to_format().format(report).split())


def test_a_label_map_is_for_classifiers(tiny_models, tone_dataset):
    from ondevice_audit.model_io import DetectorOptions

    options = ModelOptions(task="detect", detector=DetectorOptions(positive_label="yes"),
                           label_map=LabelMap.parse("no=_unknown_"))  # fmt: skip
    with pytest.raises(UsageError, match="--label-map maps a classifier's classes"):
        audit_model(tiny_models["tflite"], tone_dataset, OPTIONS, options)


def test_training_targets_need_one_class_per_label():
    assert LabelMap.parse("nope=no").targets(("_unknown_", "nope", "yes")) == {
        "_unknown_": "_unknown_", "no": "nope", "yes": "yes"}  # fmt: skip
    with pytest.raises(UsageError, match="maps _unknown_, no onto '_unknown_': its clips have no single class"):
        LabelMap.parse("no=_unknown_").targets(("_unknown_", "no", "yes"))
