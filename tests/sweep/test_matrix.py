"""The matrix TOML: factors, the product, defaults, and every mistake refused with a line naming it."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from ondevice_audit.errors import UsageError
from ondevice_audit.sweep import FACTORS, load_matrix, parse_matrix

EXAMPLES = Path(__file__).parents[2] / "examples"
SOURCE = Path("/sweeps/matrix.toml")
DATA = '[data]\nmanifest = "data/manifest.csv"\ngroups = ["gender", "accent"]\n'


def parse(text: str):
    return parse_matrix(tomllib.loads(text), SOURCE)


def error(text: str) -> str:
    with pytest.raises(UsageError) as caught:
        parse(text)
    return str(caught.value)


def test_lists_are_factors_and_the_sweep_is_their_product() -> None:
    matrix = parse(
        'sample_rate = [8000, 16000]\nfeatures = ["mfcc", "logmel"]\nquantization = ["f32", "int8"]\n'
        "[pruning]\nfinal_sparsity = [0, 0.5]\n" + DATA
    )
    assert len(matrix.cells) == 16
    assert matrix.varied == ["sample_rate", "features", "pruning.final_sparsity", "quantization"]
    first, last = matrix.cells[0], matrix.cells[-1]
    assert (first.sample_rate, first.features, first.final_sparsity, first.quantization) == (8000, "mfcc", 0.0, "f32")
    assert (last.sample_rate, last.features, last.final_sparsity, last.quantization) == (16000, "logmel", 0.5, "int8")
    assert isinstance(first.final_sparsity, float)
    # Scalars and omitted factors are one-level factors; auto runtimes resolve to the format's own.
    assert {c.architecture for c in matrix.cells} == {"ds-cnn"} and {c.runtime for c in matrix.cells} == {"litert"}
    assert list(first.factors()) == [f.name for f in FACTORS]
    assert len({c.id for c in matrix.cells}) == 16 and first.id.startswith("000-")
    assert matrix.data.manifest == Path("/sweeps/data/manifest.csv")
    assert matrix.data.stratify == "gender" and matrix.data.bias_attribute == "gender"


def test_ids_and_digest_depend_on_what_is_asked_not_on_formatting() -> None:
    a = parse("seed = [0, 1]\n" + DATA)
    b = parse("# a comment\nseed = [ 0,1 ]\n" + DATA)
    assert [c.id for c in a.cells] == [c.id for c in b.cells] and a.digest() == b.digest()
    assert parse("seed = [0, 2]\n" + DATA).digest() != a.digest()


def test_runtime_pairs_only_with_the_format_it_runs() -> None:
    matrix = parse('export = ["tflite", "onnx"]\nruntime = ["litert", "onnxruntime"]\n' + DATA)
    assert [(c.export, c.runtime) for c in matrix.cells] == [("tflite", "litert"), ("onnx", "onnxruntime")]
    kernels = parse('runtime = ["litert", "litert-builtin", "litert-ref", "tflm"]\n' + DATA)
    assert [c.runtime for c in kernels.cells] == ["litert", "litert-builtin", "litert-ref", "tflm"]
    assert matrix.skipped == 2
    assert "runtime onnxruntime cannot run any export format" in error(
        'export = "tflite"\nruntime = "onnxruntime"\n' + DATA
    )
    assert "litert, litert-builtin, litert-ref, tflm run tflite; onnxruntime run onnx" in error(
        'export = "onnx"\nruntime = "litert-ref"\n' + DATA
    )


def test_log_mel_cells_ignore_n_mfcc() -> None:
    matrix = parse('features = ["mfcc", "logmel"]\nn_mfcc = [10, 13]\n' + DATA)
    logmel = [c.frontend(1.0) for c in matrix.cells if c.features == "logmel"]
    assert len(logmel) == 2 and logmel[0] == logmel[1]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('features = "cqt"\n', "features = 'cqt' is not valid; expected mfcc, logmel or micro"),
        ('quantization = ["f32", "int4"]\n', "quantization = 'int4' is not valid"),
        ('architecture = "resnet"\n', "architecture = 'resnet' is not valid; expected an audio recipe"),
        ('architecture = "image-cnn"\n', "architecture = 'image-cnn' is not valid"),
        ("sample_rate = 16000.5\n", "sample_rate = 16000.5 is not valid"),
        ("sample_rate = true\n", "sample_rate = True is not valid"),
        (
            "[pruning]\nfinal_sparsity = 1.0\n",
            "pruning.final_sparsity = 1.0 is not valid; expected a sparsity in [0, 1)",
        ),
        ('[pruning]\nschedule = "cubic"\n', "pruning.schedule = 'cubic' is not valid"),
        ("frame_step = 0\n", "frame_step = 0 is not valid"),
        ("seed = []\n", "seed is an empty list"),
        ("seed = [1, 1]\n", "seed lists 1 twice"),
        ("n_mels = 20\nn_mfcc = 30\n", "n_mfcc (30) must be between 1 and n_mels (20)"),
        ("frame_length_ms = 2000\n", "frame_length_ms 2000 is longer than the 1 s clip"),
    ],
)
def test_invalid_values_name_the_key_and_the_rule(text: str, expected: str) -> None:
    message = error(text + DATA)
    assert expected in message and str(SOURCE) in message


def test_unknown_keys_are_all_named() -> None:
    message = error("sampel_rate = 8000\n[pruning]\nsparsity = 0.5\n[training]\nepoch = 3\n" + DATA + "grups = 1\n")
    for key in ("sampel_rate", "pruning.sparsity", "training.epoch", "data.grups"):
        assert key in message
    assert message.startswith(f"{SOURCE}: unknown key(s)")


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ('groups = ["gender"]\n', "data.manifest must name the manifest CSV"),
        ('manifest = "m.csv"\n', "data.groups must name at least one group column"),
        ('manifest = "m.csv"\ngroups = "gender"\nmetric = "auc"\n', "data.metric = 'auc' is not valid"),
        ('manifest = "m.csv"\ngroups = "gender"\nsplit = [0.5, 0.5]\n', "data.split must be three"),
        ('manifest = "m.csv"\ngroups = "gender"\nsplit = [0.8, 0.2, 0.0]\n', "a training and a test share"),
        ('manifest = "m.csv"\ngroups = "gender"\nbootstrap = 50\n', "data.bootstrap must be 0 (off) or at least 100"),
        ('manifest = "m.csv"\ngroups = "gender"\nstratify = "age"\n', "data.stratify = 'age' must be one of"),
        ('manifest = "m.csv"\ngroups = "gender"\nbias_attribute = "age"\n', "data.bias_attribute = 'age'"),
        (
            'manifest = "m.csv"\ngroups = "gender"\nmin_group_size = "30"\n',
            "data.min_group_size = '30' must be an integer",
        ),
    ],
)
def test_invalid_data_settings(data: str, expected: str) -> None:
    assert expected in error("[data]\n" + data)


def test_max_groups_reaches_scoring_and_only_a_raised_one_changes_the_digest() -> None:
    default, raised = parse(DATA), parse(DATA + "max_groups = 800\n")
    assert default.data.score_options().max_groups == 500 and raised.data.score_options().max_groups == 800
    assert parse(DATA + "max_groups = 500\n").digest() == default.digest()  # sweeps from before keep their folders
    assert raised.digest() != default.digest() and raised.to_dict()["data"]["max_groups"] == 800
    assert "data.max_groups must be at least 2, got 0" in error(DATA + "max_groups = 0\n")
    assert "data.max_groups = 'all' must be an integer" in error(DATA + 'max_groups = "all"\n')


def test_training_settings_and_defaults() -> None:
    matrix = parse(DATA + "[training]\nepochs = 3\nlearning_rate = 1\n")
    assert (matrix.training.epochs, matrix.training.learning_rate, matrix.training.batch_size) == (3, 1.0, 64)
    assert "training.epochs must be positive" in error(DATA + "[training]\nepochs = 0\n")
    assert "training.epochs = [3, 5] must be an integer" in error(DATA + "[training]\nepochs = [3, 5]\n")
    assert "a [data] table with manifest and groups is required" in error("seed = 1\n")


def test_files_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="matrix not found"):
        load_matrix(tmp_path / "missing.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("seed = [0,\n")
    with pytest.raises(UsageError, match="not valid TOML"):
        load_matrix(broken)


def test_examples_parse() -> None:
    demo = load_matrix(EXAMPLES / "matrix-demo.toml")
    assert len(demo.cells) == 32
    assert demo.varied == ["sample_rate", "features", "pruning.final_sparsity", "quantization", "seed"]
    assert demo.data.manifest.is_file() and demo.data.groups == ("gender", "accent")
    assert {(c.export, c.runtime) for c in demo.cells} == {("tflite", "litert")}
    small = load_matrix(EXAMPLES / "matrix-small.toml")
    assert small.data.manifest.is_file() and 2 <= len(small.cells) <= 8
