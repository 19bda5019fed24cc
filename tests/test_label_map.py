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


NOT_A_PAIR = "; for names with '=' or ',' give a CSV file with the header model_class,data_label"


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
        ("no=_unknown_,yes", "--label-map: 'yes' is not MODEL=DATA (a model class, '=', a data label)" + NOT_A_PAIR),
        ("no=", "--label-map: 'no=' is not MODEL=DATA (a model class, '=', a data label)" + NOT_A_PAIR),
        ("=no", "--label-map: '=no' is not MODEL=DATA (a model class, '=', a data label)" + NOT_A_PAIR),
        ("no=a=b", "--label-map: 'no=a=b' is not MODEL=DATA (a model class, '=', a data label)" + NOT_A_PAIR),
        ("no-such-file.csv", "--label-map 'no-such-file.csv': neither MODEL=DATA pairs nor a file; give MODEL=DATA[,...] "
                            "or the path of a CSV file with the header model_class,data_label"),
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


MODEL_CLASSES = ["_background_noise_", "left", "no", "unknown", "yes"]
SCORE_MAP = "unknown=_unknown_,left=_unknown_,_background_noise_=_silence_"
BY_HAND = {"unknown": "_unknown_", "left": "_unknown_", "_background_noise_": "_silence_"}


@pytest.fixture(scope="module")
def model_named(tmp_path_factory) -> dict[str, Path]:
    """Predictions made elsewhere in the model's class names (and as class scores), labels in the data's."""
    rng = np.random.default_rng(3)
    n = 400
    speaker = rng.integers(0, 20, n)
    truth = np.array(["_unknown_", "_silence_", "yes", "no"])[rng.integers(0, 4, n)]
    right = {"_unknown_": ["unknown", "left"], "_silence_": ["_background_noise_"], "yes": ["yes"], "no": ["no"]}
    predicted = [rng.choice(right[t]) if rng.random() < 0.7 else rng.choice(MODEL_CLASSES) for t in truth]
    base = pd.DataFrame({"label": truth, "gender": np.where(speaker % 2, "female", "male"), "speaker": speaker})
    root = tmp_path_factory.mktemp("model-named")
    base.assign(prediction=predicted).to_csv(root / "p.csv", index=False)
    scores = rng.random((n, len(MODEL_CLASSES)))
    scores[np.arange(n), [MODEL_CLASSES.index(p) for p in predicted]] += 1  # the same argmax
    base.assign(**{f"score_{c}": scores[:, i] for i, c in enumerate(MODEL_CLASSES)}).to_csv(root / "s.csv",
                                                                                             index=False)  # fmt: skip
    (root / "map.csv").write_text("model_class,data_label\n" + "".join(f"{m},{d}\n" for m, d in BY_HAND.items()))
    return {"prediction": root / "p.csv", "scores": root / "s.csv", "file": root / "map.csv"}


def _score(path, *extra):
    return runner.invoke(app, ["score", str(path), "-g", "gender", "--bootstrap", "0", "--permutations", "0",
                               "--min-group-size", "1", "-f", "json", *extra])  # fmt: skip


@pytest.mark.parametrize(("layout", "given"), [("prediction", SCORE_MAP), ("scores", SCORE_MAP), ("prediction", "file")])
def test_score_counts_the_predicted_classes_as_the_data_labels(model_named, layout, given):
    from sklearn.metrics import accuracy_score, matthews_corrcoef

    result = _score(model_named[layout], "--label-map", str(model_named["file"]) if given == "file" else given)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    validate(report)
    frame = pd.read_csv(model_named["prediction"], dtype=str)
    frame["prediction"] = frame["prediction"].replace(BY_HAND)  # the map applied by hand
    assert report["settings"]["label_map"] == BY_HAND
    assert report["overall"]["metrics"]["mcc"] == pytest.approx(matthews_corrcoef(frame["label"], frame["prediction"]))
    (gender,) = report["attributes"]
    for group in gender["groups"]:
        rows = frame[frame["gender"] == group["name"]]
        assert group["metrics"]["accuracy"] == pytest.approx(accuracy_score(rows["label"], rows["prediction"]))
        assert group["metrics"]["mcc"] == pytest.approx(matthews_corrcoef(rows["label"], rows["prediction"]))
        keywords = rows[rows["label"].isin(["yes", "no"])]  # FRR: keyword clips predicted as a negative label
        rejected = keywords["prediction"].isin(["_unknown_", "_silence_"]).mean()
        assert group["metrics"]["frr"] == pytest.approx(rejected)


def test_score_without_a_map_records_none(model_named):
    report = json.loads(_score(model_named["prediction"]).stdout)
    assert report["settings"]["label_map"] is None and report["settings"]["task"] == "classify"


@pytest.mark.parametrize(
    ("value", "extra", "message"),
    [
        ("unknown=_unknown_", (), "labels in the data that no model class maps to: _silence_ (--label-map leads to "
                                  "_background_noise_, _unknown_, left, no, yes)"),
        ("no=_unknown_,yes", (), "--label-map: 'yes' is not MODEL=DATA (a model class, '=', a data label)" + NOT_A_PAIR),
        (SCORE_MAP, ("--task", "detect", "--positive-label", "yes"), "--label-map maps a classifier's classes onto "
                                                                      "data labels; --task detect scores one "
                                                                      "probability per clip: leave one of them out"),
    ],
)  # fmt: skip
def test_score_refuses_bad_maps_in_one_line(model_named, value, extra, message):
    _one_line_error(_score(model_named["prediction"], "--label-map", value, *extra), message)


def test_score_columns_are_the_whole_class_set_a_map_may_name(model_named):
    _one_line_error(_score(model_named["scores"], "--label-map", "nope=no"),
                    "--label-map names 'nope', not a class of the predictions in s.csv; its classes: "
                    "_background_noise_, left, no, unknown, yes")  # fmt: skip


def test_a_class_never_predicted_can_be_mapped_and_is_said(tmp_path):
    """A prediction column shows only the classes chosen on these clips: the model's ``silence`` was never
    predicted, yet the data's ``_silence_`` needs a class leading to it. The map may name it (else the label would
    be unreachable and the map refused); that no clip was predicted as it is a warning (it may be a typo)."""
    from sklearn.metrics import accuracy_score

    rows = [("yes", "YES", "f"), ("yes", "NO", "m"), ("no", "NO", "f"), ("no", "NO", "m"), ("_silence_", "NO", "f"),
            ("_silence_", "YES", "m")] * 3  # fmt: skip
    frame = pd.DataFrame(rows, columns=["label", "prediction", "gender"])
    frame.to_csv(tmp_path / "p.csv", index=False)
    result = _score(tmp_path / "p.csv", "--label-map", "YES=yes,NO=no,silence=_silence_")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    validate(report)
    assert any("names 'silence', which no clip of p.csv was predicted as" in w for w in report["warnings"])
    mapped = frame["prediction"].map({"YES": "yes", "NO": "no"})
    assert report["overall"]["metrics"]["accuracy"] == pytest.approx(accuracy_score(frame["label"], mapped))
    unmapped = _score(tmp_path / "p.csv", "--label-map", "YES=yes,NO=no")
    assert unmapped.exit_code == 2 and "labels in the data that no model class maps to: _silence_" in unmapped.output
