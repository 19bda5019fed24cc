"""The sweep matrix: a TOML file whose lists are factors; the sweep is their product.

Factors are top-level keys (``sample_rate``, ``features``...) and the keys of ``[pruning]``; a scalar is a
one-level factor, so a matrix names only what it varies. ``[data] modality`` (``audio``, the default, or
``image``) decides which front-end factors exist: audio matrices vary ``sample_rate``, ``features``,
``n_mels``..., image matrices ``image_size`` (the side of a square input, in pixels) and ``color`` (``rgb`` or
``grayscale``); the other modality's factors, or an ``architecture`` recipe of the other modality, are a
``UsageError``. The modality is stated, not inferred from the architecture, so that a mismatch is caught
rather than guessed. ``[data]`` and ``[training]`` hold the settings every cell shares; ``[deployment]`` an
optional microcontroller budget (``board``, ``mcu_ram``, ``mcu_flash``, as the ``--board``/``--mcu-ram``/
``--mcu-flash`` options that override it) the cells are checked against.
A top-level ``model = "PATH"`` (relative to the matrix; ``sweep --model`` overrides it) makes a user's trained
model the base instead of a recipe (``sweep/user_model.py``): the front-end factors then default to the
model's own front-end, ``architecture`` and ``mitigation`` are not factors, a TFLite or ONNX file refuses
every factor that needs retraining or pruning, and a ``baseline`` cell (the model as given) comes first.
``target`` (``local``, ``subprocess``, ``ssh://user@host``; ``sweep --ssh-option`` for the connection) runs a
cell's file there (``targets/``); it is a factor, and a results column, only when the matrix names it.
Everything is checked before any work starts: an unknown key, a bad value or a combination that cannot be
built (``n_mfcc`` above ``n_mels``, a frame longer than the clip) is a ``UsageError`` naming it, rather than a
failure an hour into the sweep.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
import tomllib
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ondevice_audit.errors import UsageError
from ondevice_audit.export import EXPORT_FORMATS
from ondevice_audit.frontend import (
    AUDIO_FACTOR_FIELDS,
    AudioFrontendSpec,
    FrontendSpec,
    ImageFrontendSpec,
    MicroFrontendSpec,
)
from ondevice_audit.label_map import LabelMap
from ondevice_audit.metrics import METRICS, defaults
from ondevice_audit.metrics._groups import GroupLimit
from ondevice_audit.metrics.detection import DETECTION_METRICS
from ondevice_audit.model.mitigation import MITIGATIONS, parse_imbalance
from ondevice_audit.model.recipes import RECIPES
from ondevice_audit.optimize.prune import SCHEDULES
from ondevice_audit.optimize.quantize import QuantApproach
from ondevice_audit.runtimes import DEFAULT_RUNTIME, RUNTIMES, runtime_format
from ondevice_audit.scoring import ScoreOptions
from ondevice_audit.sweep.user_model import BASELINE_CELL, PluginReference, UserModel, load_user_model
from ondevice_audit.targets import TARGET_HELP, is_target
from ondevice_audit.targets.mcu import DeploymentSettings

if typing.TYPE_CHECKING:
    from ondevice_audit.tasks import ClassifierTask, DetectorTask

__all__ = [
    "FACTORS",
    "IMAGE_FACTORS",
    "KEEP_FLOAT",
    "MODALITIES",
    "Cell",
    "DataSettings",
    "DeploymentSettings",
    "ExplainSettings",
    "Factor",
    "Matrix",
    "TrainingSettings",
    "factors_of",
    "kept_layers",
    "load_matrix",
    "parse_matrix",
]

Scalar = int | float | str


@dataclass(frozen=True)
class Factor:
    name: str
    """As written in the matrix (``pruning.`` keys live in ``[pruning]``) and as a column of results.csv."""
    attribute: str
    """The ``Cell`` field holding it."""
    kind: type
    default: Scalar
    rule: str
    """What a valid value is, for the error message."""
    valid: Callable[[Any], bool]


def _positive(value: Any) -> bool:
    return value > 0


def _one_of(choices: Callable[[], tuple[str, ...]]) -> Callable[[Any], bool]:
    return lambda value: value in choices()


MODALITIES = ("audio", "image")


def _recipes(modality: str) -> Callable[[], tuple[str, ...]]:
    return lambda: tuple(name for name, recipe in RECIPES.items() if recipe.modality == modality)


def _architecture(modality: str, default: str) -> Factor:
    return Factor(
        "architecture",
        "architecture",
        str,
        default,
        f"an {modality} recipe: " + ", ".join(_recipes(modality)()),
        _one_of(_recipes(modality)),
    )


_RUNTIME_CHOICES = ("auto", *(name for name in RUNTIMES if runtime_format(name) in EXPORT_FORMATS))
_RUNTIMES_BY_FORMAT = "; ".join(
    f"{', '.join(n for n in _RUNTIME_CHOICES[1:] if runtime_format(n) == fmt)} run {fmt}" for fmt in EXPORT_FORMATS
)
"""``litert, litert-builtin, litert-ref, tflm run tflite; onnxruntime run onnx``: for the error naming an idle runtime."""
_QUANTIZATIONS = tuple(a.value for a in QuantApproach)
KEEP_FLOAT = "int8-keep"
"""``[explain] top_layers = N`` adds the quantization levels ``int8-keep1`` ... ``int8-keepN`` (TFLite only): int8
with the 1..N layers that hurt the worse-off group most kept in float (``sweep/stages/keep_float.py``)."""


def kept_layers(quantization: str) -> int | None:
    """N of an ``int8-keepN`` level; None for any other level."""
    count = quantization[len(KEEP_FLOAT) :]
    return int(count) if quantization.startswith(KEEP_FLOAT) and count.isdigit() else None


@dataclass(frozen=True)
class ExplainSettings:
    """``[explain]``: selective-quantization cells, chosen as ``ondevice-audit explain`` chooses its candidates."""

    top_layers: int = 0


def _spec_factors() -> list[Factor]:
    """The ``AudioFrontendSpec`` fields that declare themselves factors (their metadata), in field order."""
    hints = typing.get_type_hints(AudioFrontendSpec)
    factors = []
    for spec_field in dataclasses.fields(AudioFrontendSpec):
        if "factor" in spec_field.metadata:
            kind = hints[spec_field.name]
            kind = str if typing.get_origin(kind) is typing.Literal else kind
            meta, default = spec_field.metadata, spec_field.default
            assert default is not dataclasses.MISSING  # a factor's field has a default: the level a matrix leaves out
            factors.append(Factor(spec_field.name, spec_field.name, kind, default, meta["factor"], meta["valid"]))
    return factors


_FEATURES = Factor("features", "features", str, AudioFrontendSpec.kind, "mfcc, logmel or micro",
                   _one_of(lambda: ("mfcc", "logmel", "micro")))  # fmt: skip
"""The front-end kind: a factor named ``features``, second after ``sample_rate`` (cell ids depend on the order).
``micro`` (the TFLite Micro front-end) reads the same frame factors: ``frame_length_ms`` is its window,
``frame_length_ms * frame_step`` its step and ``n_mels`` its channels, so a ``features`` factor compares
front-ends over the same frames."""
_AUDIO_FRONTEND: tuple[Factor, ...] = tuple(_spec_factors()[:1] + [_FEATURES] + _spec_factors()[1:])
_IMAGE_FRONTEND: tuple[Factor, ...] = (
    Factor("image_size", "image_size", int, 32, "the side of a square image in pixels, at least 8", lambda v: v >= 8),
    Factor("color", "color", str, "rgb", "rgb or grayscale", _one_of(lambda: ("rgb", "grayscale"))),
)
_SHARED: tuple[Factor, ...] = (
    Factor("mitigation", "mitigation", str, "none", ", ".join(MITIGATIONS), _one_of(lambda: MITIGATIONS)),
    Factor("pruning.final_sparsity", "final_sparsity", float, 0.0, "a sparsity in [0, 1)", lambda v: 0 <= v < 1),
    Factor("pruning.schedule", "schedule", str, "polynomial", " or ".join(SCHEDULES), _one_of(lambda: SCHEDULES)),
    Factor("pruning.learning_rate", "pruning_learning_rate", float, 1e-4, "a positive learning rate", _positive),
    Factor("quantization", "quantization", str, "f32", ", ".join(_QUANTIZATIONS), _one_of(lambda: _QUANTIZATIONS)),
    Factor("export", "export", str, "tflite", " or ".join(EXPORT_FORMATS), _one_of(lambda: EXPORT_FORMATS)),
    Factor("runtime", "runtime", str, "auto", ", ".join(_RUNTIME_CHOICES), _one_of(lambda: _RUNTIME_CHOICES)),
    Factor("seed", "seed", int, 0, "a non-negative integer", lambda v: v >= 0),
)
_TARGET = Factor(
    "target", "target", str, "local", TARGET_HELP, is_target
)
"""A factor only where the matrix names it, so sweeps without it keep their columns and their cells' ids."""
FACTORS: tuple[Factor, ...] = (*_AUDIO_FRONTEND, _architecture("audio", "ds-cnn"), *_SHARED)
"""The factors of an audio matrix (the default modality), in results.csv column order."""
IMAGE_FACTORS: tuple[Factor, ...] = (*_IMAGE_FRONTEND, _architecture("image", "image-cnn"), *_SHARED)
_PLUGIN_FACTORS: tuple[Factor, ...] = (
    Factor("architecture", "architecture", str, "", "the user model's file name", lambda value: False),
    *_SHARED,
)
"""The factors of cells whose front-end is a user's plug-in: no front-end factor (the plug-in fixes it)."""
_BY_MODALITY = {modality: (*factors, _TARGET) for modality, factors in
                (("audio", FACTORS), ("image", IMAGE_FACTORS), ("plugin", _PLUGIN_FACTORS))}  # fmt: skip
_BY_NAME = {factor.name: factor for factor in (*FACTORS, *IMAGE_FACTORS, _TARGET)}
_AUDIO_DEFAULTS = {factor.attribute: factor.default for factor in _AUDIO_FRONTEND}
_IMAGE_DEFAULTS = {factor.attribute: factor.default for factor in _IMAGE_FRONTEND}


def factors_of(modality: str) -> tuple[Factor, ...]:
    """The factors a matrix of ``modality`` can have: its front-end's, then those every modality shares, then
    ``target`` (where the model runs), a factor only when named."""
    return _BY_MODALITY[modality]


@dataclass(frozen=True)
class Cell:
    """One combination of factor levels: one exported model, audited on the test split."""

    index: int
    sample_rate: int
    features: str
    n_mels: int
    n_mfcc: int
    frame_length_ms: float
    frame_step: float
    window: str
    architecture: str
    mitigation: str
    """Applied to base training and to the pruning fine-tune, over ``DataSettings.mitigation_group``."""
    final_sparsity: float
    schedule: str
    pruning_learning_rate: float
    quantization: str
    export: str
    runtime: str
    """Resolved: ``auto`` becomes the export format's own runtime."""
    seed: int
    modality: str = "audio"
    """Which front-end fields mean something: the other modality's hold their defaults and are not factors;
    ``plugin``: none do (a user model's front-end plug-in makes the inputs)."""
    image_size: int = 32
    color: str = "rgb"
    baseline: bool = False
    """The user's model exactly as given (``Matrix.model``): what every other cell is compared with."""
    target: str | None = None
    """Where the cell's model runs (``targets.parse_target``); None: the matrix does not name it (local)."""

    def factors(self) -> dict[str, Scalar]:
        """Factor name -> level, in ``factors_of(modality)`` order (so audio cells keep their ids)."""
        return {
            factor.name: getattr(self, factor.attribute)
            for factor in factors_of(self.modality)
            if getattr(self, factor.attribute) is not None
        }

    @property
    def id(self) -> str:
        """``<index>-<hash of the levels>``: sortable, and stable for the same levels; ``baseline`` for the
        user's model as given."""
        if self.baseline:
            return BASELINE_CELL
        digest = hashlib.sha256(json.dumps(self.factors(), sort_keys=True).encode()).hexdigest()
        return f"{self.index:03d}-{digest[:8]}"

    def frontend(self, clip_seconds: float) -> FrontendSpec:
        """The front-end; ``n_mfcc`` is meaningless for log-mel, so it is left at its default there and
        log-mel cells that differ only in ``n_mfcc`` share features and models. Images are scaled to [0, 1],
        as ``image-cnn`` standardises per channel anyway."""
        if self.modality == "image":
            return ImageFrontendSpec(self.image_size, self.image_size, self.color, "unit")  # type: ignore[arg-type]  # color: a level checked against the spec's choices when the matrix is parsed
        if self.features == "micro":
            return self._micro(clip_seconds)
        levels = {name: getattr(self, name) for name in AUDIO_FACTOR_FIELDS}
        if self.features != "mfcc":
            levels["n_mfcc"] = AudioFrontendSpec.n_mfcc
        return AudioFrontendSpec(kind=self.features, clip_seconds=clip_seconds, **levels)  # type: ignore[arg-type]  # levels checked against the spec's choices when the matrix is parsed

    def _micro(self, clip_seconds: float) -> MicroFrontendSpec:
        """The TFLM front-end over the cell's frames; its bands end where microWakeWord's 7500 Hz of 16 kHz
        audio do (15/16 of the Nyquist frequency), so lower sample rates keep a valid filterbank."""
        nyquist_share = MicroFrontendSpec.upper_band_limit / (MicroFrontendSpec.sample_rate / 2)
        return MicroFrontendSpec(
            sample_rate=self.sample_rate, clip_seconds=clip_seconds, window_ms=self.frame_length_ms,
            step_ms=self.frame_length_ms * self.frame_step, channels=self.n_mels,
            upper_band_limit=min(MicroFrontendSpec.upper_band_limit, nyquist_share * self.sample_rate / 2),
        )  # fmt: skip

    def describe(self) -> str:
        return ", ".join(f"{name}={value}" for name, value in self.factors().items())


@dataclass(frozen=True)
class DataSettings:
    manifest: Path
    """Absolute; written relative to the matrix file."""
    groups: tuple[str, ...]
    metric: str = defaults.METRIC
    split: tuple[float, float, float] = (0.8, 0.1, 0.1)
    """Train, validation, test shares of the files; every speaker is in exactly one split."""
    split_seed: int = 0
    """Fixed across cells, so every cell is audited on the same test speakers."""
    stratify: str | None = None
    """Group column every split represents in proportion; None: no stratification."""
    negative_labels: tuple[str, ...] = defaults.NEGATIVE_LABELS
    min_group_size: int = defaults.MIN_GROUP_SIZE
    bootstrap: int = defaults.BOOTSTRAP
    permutations: int = defaults.PERMUTATIONS
    confidence: float = defaults.CONFIDENCE
    resampling_seed: int = 0
    bias_attribute: str = ""
    """The group column whose RB the analysis ranks cells by (default: the first group)."""
    clip_seconds: float = 1.0
    mitigation_group: str = ""
    """The group column mitigations balance or reweight (default: the first group)."""
    train_imbalance: str = ""
    """``gender=female:0.2``: thin that group's training speakers (seeded by ``split_seed``); "" = off."""
    modality: str = "audio"
    """``audio`` or ``image``: what the manifest's files are, so which front-end factors the matrix has."""
    task: str = "classify"
    """``classify`` (a softmax over every label) or ``detect`` (one sigmoid probability of ``positive_label``)."""
    positive_label: str = ""
    """detect: the label of the phrase's clips; every other clip is a negative."""
    threshold: float | None = None
    at_far: float | None = None
    at_fa_per_hour: float | None = None
    """detect: the one operating point (as ``audit``'s options); none given: threshold 0.5."""
    max_groups: int = defaults.MAX_GROUPS
    """An attribute (a group column, or their intersection) with more groups in the test split is refused before
    any work (as ``--max-groups`` in ``audit``): almost always an id column in ``groups`` by mistake."""

    def score_options(self) -> ScoreOptions:
        return ScoreOptions(
            groups=self.groups,
            metric=self.metric,
            negative_labels=self.negative_labels,
            min_group_size=self.min_group_size,
            bootstrap=self.bootstrap,
            permutations=self.permutations,
            seed=self.resampling_seed,
            confidence=self.confidence,
            max_groups=self.max_groups,
        )

    def group_limit(self, source: Path) -> GroupLimit:
        """``max_groups``, named as the matrix ``source`` sets it in the refusal."""
        return GroupLimit(self.max_groups, "data.max_groups", f"data.groups of {source.name}",
                          f"set data.max_groups = {{n}} in {source.name}")  # fmt: skip

    def outputs(self, labels: tuple[str, ...]) -> tuple[str, ...]:
        """What the model's outputs are named: every label, or a detector's one phrase."""
        return (self.positive_label,) if self.task == "detect" else labels

    def scoring_task(self, outputs: tuple[str, ...], label_map: LabelMap | None = None) -> ClassifierTask | DetectorTask:
        """How a cell's scores are read (``tasks.py``, as ``audit`` reads them)."""
        from ondevice_audit.metrics.detection import OperatingPoint
        from ondevice_audit.tasks import ClassifierTask, DetectorTask

        if self.task != "detect":
            return ClassifierTask(outputs, label_map)
        point = OperatingPoint.of(self.threshold, self.at_far, self.at_fa_per_hour)
        return DetectorTask(self.positive_label, point, clip_seconds=self.clip_seconds)


@dataclass(frozen=True)
class TrainingSettings:
    epochs: int = 10
    batch_size: int = 64
    learning_rate: float = 1e-3
    pruning_epochs: int = 2
    """Fine-tune epochs while pruning (cells with sparsity 0 are not fine-tuned)."""
    calibration_samples: int = 200
    """Training inputs used to calibrate int8 (and to check every export's parity)."""
    latency_samples: int = 50
    """Single-sample inferences timed per cell; the median is reported."""


@dataclass(frozen=True)
class Matrix:
    source: Path
    data: DataSettings
    training: TrainingSettings
    levels: tuple[tuple[str, tuple[Scalar, ...]], ...]
    """Factor name -> its levels as written (``runtime`` may hold ``auto``), in ``FACTORS`` order."""
    cells: tuple[Cell, ...]
    skipped: int = 0
    """Combinations left out because the runtime cannot run the export format."""
    deployment: DeploymentSettings = DeploymentSettings()
    model: UserModel | None = None
    """The user's model every cell starts from; None: the ``architecture`` recipes, trained here."""
    ssh_options: tuple[str, ...] = ()
    """``Key=Value`` OpenSSH options for ``ssh://`` targets: how to connect, not what is swept (not in the
    digest)."""
    explain: ExplainSettings = ExplainSettings()
    max_cells: int | None = None
    """``max_cells = N`` in the matrix: the cells it may have without ``--yes`` (None: ``DEFAULT_MAX_CELLS``);
    a guard against a typo that multiplies the work, not part of what is swept (not in the digest)."""

    def scoring_task(self, classes: tuple[str, ...]) -> ClassifierTask | DetectorTask:
        """How every cell's outputs are read: the data's task, counted in the data's labels through the user
        model's label map."""
        return self.data.scoring_task(classes, None if self.model is None else self.model.label_map)

    def frontend(self, cell: Cell) -> FrontendSpec | PluginReference:
        """A cell's front-end: with a user model, the model's own with the cell's levels put in."""
        if self.model is not None:
            return self.model.frontend_for({name: getattr(cell, name) for name in self.model.own_levels()})
        return cell.frontend(self.data.clip_seconds)

    @property
    def factors(self) -> tuple[Factor, ...]:
        named = dict(self.levels)
        return tuple(factor for factor in factors_of(self.cells[0].modality) if factor.name in named)

    @property
    def varied(self) -> list[str]:
        """Factors with two or more levels."""
        return [name for name, values in self.levels if len(values) >= 2]

    def to_dict(self) -> dict[str, Any]:
        data = {**dataclasses.asdict(self.data), "manifest": str(self.data.manifest)}
        if self.data.modality == "audio":  # as before modalities existed: audio sweeps keep their digest
            del data["modality"]
        if self.data.max_groups == defaults.MAX_GROUPS:  # as before the setting existed, likewise
            del data["max_groups"]
        return {
            "data": data,
            "training": dataclasses.asdict(self.training),
            "factors": {name: list(values) for name, values in self.levels},
            "deployment": dataclasses.asdict(self.deployment),
            **({"model": self.model.described()} if self.model is not None else {}),
            **({"explain": dataclasses.asdict(self.explain)} if self.explain.top_layers else {}),
        }

    def digest(self) -> str:
        """Identifies what the matrix asks for (not how the file is formatted)."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()


def load_matrix(
    path: Path,
    model: Path | None = None,
    labels: Path | None = None,
    trust_model: bool = False,
    frontend_plugin: str | None = None,
    frontend_spec: FrontendSpec | None = None,
    label_map: LabelMap | None = None,
    output: str | None = None,
) -> Matrix:
    """``model`` (``--model``) overrides the matrix's ``model``; ``labels``, ``trust_model``,
    ``frontend_plugin``, ``frontend_spec`` (``--features`` and its settings), ``label_map`` and ``output``
    (``--output``) are as in ``audit``."""
    if not path.is_file():
        raise UsageError(f"matrix not found: {path}; check the path")
    try:
        document = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: not valid TOML ({exc}); fix its syntax") from None
    return parse_matrix(
        document,
        path,
        model=model,
        labels=labels,
        trust_model=trust_model,
        frontend_plugin=frontend_plugin,
        frontend_spec=frontend_spec,
        label_map=label_map,
        output=output,
    )


def parse_matrix(
    document: Mapping[str, Any],
    source: Path,
    *,
    model: Path | None = None,
    labels: Path | None = None,
    trust_model: bool = False,
    frontend_plugin: str | None = None,
    frontend_spec: FrontendSpec | None = None,
    label_map: LabelMap | None = None,
    output: str | None = None,
) -> Matrix:
    """Validate a parsed TOML document; ``source`` names the file in errors and anchors the manifest path
    and the ``model`` path (``model``, given, replaces it)."""
    document = dict(document)
    written_model = document.pop("model", None)
    max_cells = document.pop("max_cells", None)
    if max_cells is not None and (not _check_type(max_cells, int) or max_cells < 1):
        raise UsageError(
            f"{source}: max_cells = {max_cells!r} must be a positive integer (the cells allowed without --yes)"
        )
    if written_model is not None and (not isinstance(written_model, str) or not written_model.strip()):
        raise UsageError(f'{source}: model must be the path of a model file (model = "my_model.keras")')
    if model is None and written_model is not None:
        model = source.parent / written_model.strip()
    if model is None and (labels or frontend_plugin or frontend_spec or label_map or output is not None):
        raise UsageError(
            "--labels, --label-map, --output, --frontend and --features describe your own model: give it with --model "
            '(or model = "PATH" in the matrix); a recipe\'s front-end is set by the matrix\'s factors'
        )
    user = None
    if model is not None:
        user = load_user_model(model, labels, trust_model, frontend_plugin, frontend_spec, label_map, output)
    explain = _explain_settings(document.pop("explain", {}), source)
    pruning, data, training, deployment = _tables(document, source)
    written = {
        **{k: v for k, v in document.items() if k in _BY_NAME},
        **{f"pruning.{k}": v for k, v in pruning.items()},
    }
    settings = _data_settings(data, source)
    if label_map is not None and settings.task == "detect":
        raise UsageError(f"{source}: --label-map maps a classifier's classes onto data labels; data.task is detect")
    modality = settings.modality
    if user is not None:
        settings = _settings_for_model(settings, data, user, source)
        modality = "plugin" if user.plugin else settings.modality
    factors = factors_of(modality) if user is None else _factors_for_model(factors_of(modality), user)
    _check_modality(written, settings.modality, source)
    levels = tuple(
        (factor.name, _levels(factor, written.get(factor.name), source))
        for factor in factors
        if factor.name != "target" or "target" in written
    )
    levels = _with_kept_layers(levels, explain.top_layers, source)
    if user is not None:
        _refuse_for_model(written, dict(levels), user, source)
        _refuse_training_without_targets(dict(levels), user, source)
    cells, skipped = _cells(levels, modality, source, baseline=None if user is None else _baseline(user))
    for cell in cells:
        if user is None:
            _check_frontend(cell, settings.clip_seconds, source)
        elif not user.plugin:
            _check_model_frontend(cell, user, source)
    if "reweight-heldout" in dict(levels)["mitigation"] and settings.split[1] == 0:
        raise UsageError(f"{source}: mitigation reweight-heldout needs a validation share in data.split")
    return Matrix(
        source.absolute(),
        settings,
        _training_settings(training, source),
        levels,
        cells,
        skipped,
        _deployment_settings(deployment, source),
        user,
        explain=explain,
        max_cells=max_cells,
    )


def _explain_settings(table: Any, source: Path) -> ExplainSettings:
    if not isinstance(table, Mapping):
        raise UsageError(f"{source}: explain must be a table ([explain])")
    unknown = [f"explain.{key}" for key in table if key != "top_layers"]
    if unknown:
        raise UsageError(f"{source}: unknown key(s) {', '.join(unknown)}; known keys: explain.top_layers")
    top = _setting(table, "top_layers", int, 0, source, "explain")
    if top < 0:
        raise UsageError(f"{source}: explain.top_layers must be 0 (off) or more, got {top}")
    return ExplainSettings(top)


def _with_kept_layers(
    levels: tuple[tuple[str, tuple[Scalar, ...]], ...], top: int, source: Path
) -> tuple[tuple[str, tuple[Scalar, ...]], ...]:
    """``int8-keep1`` ... ``int8-keepN`` after ``int8`` in the quantization levels, for ``[explain] top_layers``."""
    if not top:
        return levels
    named = dict(levels)
    if "int8" not in named["quantization"] or "tflite" not in named["export"]:
        raise UsageError(f"{source}: explain.top_layers keeps layers of int8 TFLite cells in float: quantization must "
                         "include int8 and export tflite")  # fmt: skip
    added = tuple(f"{KEEP_FLOAT}{n}" for n in range(1, top + 1))
    quantization = named["quantization"]
    at = quantization.index("int8") + 1
    return tuple(
        (name, (*values[:at], *added, *values[at:]) if name == "quantization" else values) for name, values in levels
    )


def _tables(document: Mapping[str, Any], source: Path) -> tuple[Mapping[str, Any], ...]:
    """``[pruning]``, ``[data]``, ``[training]``, ``[deployment]``, after refusing any key no one reads."""
    pruning = document.get("pruning", {})
    data = document.get("data")
    training = document.get("training", {})
    deployment = document.get("deployment", {})
    tables = (("pruning", pruning), ("data", data), ("training", training), ("deployment", deployment))
    for name, table in tables:
        if table is not None and not isinstance(table, Mapping):
            raise UsageError(f"{source}: {name} must be a table ([{name}])")
    unknown = [key for key in document if key not in dict(tables) and key not in _BY_NAME] + [
        f"pruning.{key}" for key in pruning if f"pruning.{key}" not in _BY_NAME
    ]
    unknown += [f"data.{key}" for key in data or {} if key not in _DATA_KEYS]
    unknown += [f"training.{key}" for key in training if key not in _TRAINING_KEYS]
    unknown += [f"deployment.{key}" for key in deployment if key not in _DEPLOYMENT_KEYS]
    if unknown:
        known = ", ".join([*_BY_NAME, *(f"data.{k}" for k in _DATA_KEYS), *(f"training.{k}" for k in _TRAINING_KEYS),
                           *(f"deployment.{k}" for k in _DEPLOYMENT_KEYS)])  # fmt: skip
        raise UsageError(f"{source}: unknown key(s) {', '.join(unknown)}; known keys: {known}")
    if data is None:
        raise UsageError(
            f"{source}: a [data] table with manifest and groups is required; add one (see examples/matrix-small.toml)"
        )
    return pruning, data, training, deployment


_RETRAINING = tuple(factor.name for factor in (*_AUDIO_FRONTEND, *_IMAGE_FRONTEND))


def _settings_for_model(
    settings: DataSettings, table: Mapping[str, Any], user: UserModel, source: Path
) -> DataSettings:
    """The model decides the modality and the clip length: its front-end is what it was trained on (a
    plug-in's inputs are the data's modality)."""
    if isinstance(user.frontend, PluginReference):
        return settings
    modality = "image" if isinstance(user.frontend, ImageFrontendSpec) else "audio"
    if "modality" in table and settings.modality != modality:
        raise UsageError(f'{source}: data.modality is "{settings.modality}" but {user.name} takes {modality} inputs')
    if isinstance(user.frontend, ImageFrontendSpec):
        if user.frontend.height != user.frontend.width:
            raise UsageError(f"{source}: {user.name} takes {user.frontend.height}x{user.frontend.width} images; a "
                             "sweep varies square images only")  # fmt: skip
        return dataclasses.replace(settings, modality=modality)
    clip = user.frontend.clip_seconds
    if "clip_seconds" in table and not math.isclose(settings.clip_seconds, clip):
        raise UsageError(f"{source}: data.clip_seconds = {settings.clip_seconds:g} but {user.name} takes {clip:g} s "
                         "clips; remove data.clip_seconds")  # fmt: skip
    return dataclasses.replace(settings, modality=modality, clip_seconds=clip)


def _factors_for_model(factors: tuple[Factor, ...], user: UserModel) -> tuple[Factor, ...]:
    """The model's own front-end, its file name as the architecture, and (for a file we cannot convert) its
    format and quantization, as the default levels."""
    defaults: dict[str, Any] = {**user.own_levels(), "architecture": user.name}
    if not user.retrainable:
        defaults.update(export=user.format, quantization=user.quantization)
    return tuple(
        dataclasses.replace(factor, default=defaults[factor.attribute]) if factor.attribute in defaults else factor
        for factor in factors
    )


def _refuse_for_model(
    written: Mapping[str, Any], levels: Mapping[str, tuple[Scalar, ...]], user: UserModel, source: Path
) -> None:
    """Every factor the model cannot be swept over, named in one line (in factor order) before any work starts."""
    refused: dict[str, str] = {}
    if "architecture" in written:
        refused["architecture"] = f"architecture (the model {user.name} is the architecture)"
    if "mitigation" in written and levels["mitigation"] != ("none",):
        refused["mitigation"] = "mitigation (it reweights training, and a user model's training is not repeated here)"
    if user.plugin:
        for name in written:
            if name in _RETRAINING:
                refused[name] = f"{name} (the front-end is the plug-in {user.plugin})"
    if not user.retrainable:
        own = user.own_levels()
        for name in written:
            if name in _RETRAINING and not user.plugin and levels[name] != (own[_BY_NAME[name].attribute],):
                refused[name] = f"{name} (needs retraining)"
            if name.startswith("pruning.") and (name != "pruning.final_sparsity" or levels[name] != (0.0,)):
                refused[name] = f"{name} (needs pruning)"
        if len(levels["seed"]) > 1:
            refused["seed"] = "seed (needs retraining)"
        other_formats = [str(v) for v in levels["export"] if v != user.format]
        if other_formats:
            refused["export"] = f"export {', '.join(other_formats)} (needs the Keras model)"
        allowed = {user.quantization} | ({"dynamic", "int8"} if user.format == "onnx" and user.quantization == "f32"
                                         else set())  # fmt: skip
        other_quantizations = [str(v) for v in levels["quantization"] if v not in allowed]
        if other_quantizations:
            refused["quantization"] = f"quantization {', '.join(other_quantizations)} (the file is {user.quantization})"
    if refused:
        kind = {"keras": "a Keras model", "tflite": "a TFLite file without its Keras source",
                "onnx": "an ONNX file without its Keras source"}[user.format]  # fmt: skip
        sweeps = {"keras": "", "tflite": "; a TFLite model sweeps runtime only",
                  "onnx": "; an ONNX model sweeps runtime and quantization (dynamic, int8) only"}[user.format]  # fmt: skip
        named = [refused[name] for name in dict.fromkeys([*_RETRAINING, *levels]) if name in refused]
        raise UsageError(f"{source}: {user.name} is {kind}; refused: {', '.join(named)}{sweeps}")


def _refuse_training_without_targets(levels: Mapping[str, tuple[Scalar, ...]], user: UserModel, source: Path) -> None:
    """A label map that shares a data label between model classes leaves its clips without a class to train
    towards: cells that retrain or fine-tune the model are refused, naming the factors."""
    if user.label_map is None or not user.retrainable:
        return
    own = user.own_levels()
    training = [name for name in _RETRAINING if name in levels and set(levels[name]) != {own[_BY_NAME[name].attribute]}]
    if any(float(sparsity) > 0 for sparsity in levels.get("pruning.final_sparsity", ())):
        training.append("pruning.final_sparsity")
    if not training:
        return
    try:
        user.label_map.targets(user.labels)
    except UsageError as exc:
        raise UsageError(f"{source}: {exc}; refused: {', '.join(training)} (they train {user.name})") from None


def _baseline(user: UserModel) -> dict[str, Any]:
    """The baseline cell's levels: the model's own front-end, as given, on its format's default runtime."""
    return {
        **user.own_levels(),
        "architecture": user.name,
        "mitigation": "none",
        "quantization": user.quantization,
        "export": user.format,
        "runtime": user.runtime,
        "baseline": True,
    }


def _check_model_frontend(cell: Cell, user: UserModel, source: Path) -> None:
    try:
        spec = user.frontend_for({name: getattr(cell, name) for name in user.own_levels()})
    except UsageError as exc:
        raise UsageError(f"{source}: the cell {cell.describe()} cannot be built: {exc}") from None
    window = spec.window_samples if isinstance(spec, MicroFrontendSpec) else getattr(spec, "win_length", 0)
    if isinstance(spec, AudioFrontendSpec | MicroFrontendSpec) and window > spec.n_samples:
        raise UsageError(
            f"{source}: frame_length_ms {cell.frame_length_ms:g} is longer than the {spec.clip_seconds:g} s clip"
        )


_DEPLOYMENT_KEYS = tuple(field.name for field in dataclasses.fields(DeploymentSettings))


def _deployment_settings(table: Mapping[str, Any], source: Path) -> DeploymentSettings:
    values = {key: _setting(table, key, str, None, source, "deployment") for key in _DEPLOYMENT_KEYS}
    settings = DeploymentSettings(**values)
    try:
        settings.budget()
    except UsageError as exc:
        raise UsageError(f"{source}: [deployment]: {exc}") from None
    return settings


def _check_type(value: Any, kind: type) -> bool:
    if isinstance(value, bool):
        return False
    if kind is float:
        return isinstance(value, int | float) and math.isfinite(value)
    return isinstance(value, kind)


def _check_modality(written: Mapping[str, Any], modality: str, source: Path) -> None:
    """The other modality's front-end factors, or its recipes, cannot be built from this data: refuse them."""
    own = {factor.name for factor in factors_of(modality)}
    foreign = [name for name in written if name not in own]
    other = "image" if modality == "audio" else "audio"
    if foreign:
        what = f"is an {other} setting" if len(foreign) == 1 else f"are {other} settings"
        raise UsageError(
            f'{source}: {", ".join(foreign)} {what}, but data.modality is "{modality}"; remove '
            f'{"it" if len(foreign) == 1 else "them"} or set data.modality = "{other}"'
        )
    architectures = written.get("architecture")
    for name in architectures if isinstance(architectures, list) else [architectures]:
        recipe = RECIPES.get(name.strip().lower()) if isinstance(name, str) else None
        if recipe is not None and recipe.modality != modality:
            raise UsageError(
                f"{source}: architecture = {name!r} is not valid; expected an {modality} recipe: "
                f"{', '.join(_recipes(modality)())} ({name} is an {recipe.modality} recipe and data.modality is "
                f'"{modality}")'
            )


def _levels(factor: Factor, raw: Any, source: Path) -> tuple[Scalar, ...]:
    if raw is None:
        return (factor.default,)
    values = raw if isinstance(raw, list) else [raw]
    if not values:
        raise UsageError(f"{source}: {factor.name} is an empty list; give at least one value")
    levels: list[Scalar] = []
    for value in values:
        if isinstance(value, str) and factor.kind is str:
            value = value.strip().lower()
        if not _check_type(value, factor.kind) or not factor.valid(value):
            raise UsageError(f"{source}: {factor.name} = {value!r} is not valid; expected {factor.rule}")
        value = float(value) if factor.kind is float else value
        if value in levels:
            raise UsageError(f"{source}: {factor.name} lists {value!r} twice")
        levels.append(value)
    return tuple(levels)


def _cells(
    levels: tuple[tuple[str, tuple[Scalar, ...]], ...],
    modality: str,
    source: Path,
    baseline: dict[str, Any] | None = None,
) -> tuple[tuple[Cell, ...], int]:
    """The product, with ``auto`` runtimes resolved and runtime/format pairs that cannot run dropped; a
    ``baseline`` cell (its levels given) first."""
    combinations = []
    used_runtimes = set()
    skipped = 0
    other_frontend = {**_AUDIO_DEFAULTS, **_IMAGE_DEFAULTS}  # each modality's own levels replace its part
    for values in itertools.product(*(v for _, v in levels)):
        chosen: dict[str, Any] = {**other_frontend, "modality": modality}
        chosen.update({_BY_NAME[name].attribute: value for (name, _), value in zip(levels, values, strict=True)})
        runtime = chosen["runtime"]
        if kept_layers(str(chosen["quantization"])) is not None and chosen["export"] != "tflite":
            skipped += 1  # int8-keepN keeps layers of a TFLite model in float
            continue
        if runtime == "auto":
            chosen["runtime"] = DEFAULT_RUNTIME[chosen["export"]]
        elif runtime_format(runtime) != chosen["export"]:
            skipped += 1
            continue
        used_runtimes.add(runtime)
        combinations.append(chosen)
    runtimes = dict(levels)["runtime"]
    idle = [r for r in runtimes if r not in used_runtimes]
    if idle:
        raise UsageError(
            f"{source}: runtime {', '.join(map(str, idle))} cannot run any export format in the matrix "
            f"({', '.join(map(str, dict(levels)['export']))}); {_RUNTIMES_BY_FORMAT}"
        )
    if baseline is not None:
        named = dict(levels)
        defaults = {factor.attribute: factor.default for factor in factors_of(modality) if factor.name in named}
        combinations.insert(0, {**defaults, **other_frontend, "modality": modality, **baseline})
    return tuple(Cell(index=i, **chosen) for i, chosen in enumerate(combinations)), skipped


def _check_frontend(cell: Cell, clip_seconds: float, source: Path) -> None:
    try:
        spec = cell.frontend(clip_seconds)
    except UsageError as exc:
        raise UsageError(f"{source}: the cell {cell.describe()} cannot be built: {exc}") from None
    window = spec.window_samples if isinstance(spec, MicroFrontendSpec) else getattr(spec, "win_length", 0)
    if isinstance(spec, AudioFrontendSpec | MicroFrontendSpec) and window > spec.n_samples:
        raise UsageError(
            f"{source}: frame_length_ms {cell.frame_length_ms:g} is longer than the {clip_seconds:g} s clip"
        )


def _setting(table: Mapping[str, Any], key: str, kind: type, default: Any, source: Path, section: str) -> Any:
    value = table.get(key, default)
    if value is default:
        return default
    if not _check_type(value, kind):
        raise UsageError(f"{source}: {section}.{key} = {value!r} must be {_KIND_NAMES[kind]}")
    return float(value) if kind is float else value


_KIND_NAMES = {int: "an integer", float: "a number", str: "a string"}


def _strings(table: Mapping[str, Any], key: str, source: Path) -> tuple[str, ...] | None:
    value = table.get(key)
    if value is None:
        return None
    values = value if isinstance(value, list) else [value]
    if not all(isinstance(v, str) and v.strip() for v in values):
        raise UsageError(f"{source}: data.{key} must be a string or a list of non-empty strings")
    return tuple(v.strip() for v in values)


def _data_settings(table: Mapping[str, Any], source: Path) -> DataSettings:
    manifest = table.get("manifest")
    if not isinstance(manifest, str) or not manifest.strip():
        raise UsageError(f"{source}: data.manifest must name the manifest CSV (relative to the matrix file)")
    groups = _strings(table, "groups", source)
    if not groups:
        raise UsageError(f"{source}: data.groups must name at least one group column")
    if len(set(groups)) != len(groups):
        raise UsageError(f"{source}: data.groups lists a column twice")
    defaults = DataSettings(manifest=Path(), groups=groups)

    def get(key: str, kind: type) -> Any:
        return _setting(table, key, kind, getattr(defaults, key), source, "data")

    task = _task_settings(table, source)
    detector = task.get("task") == "detect"
    metric = get("metric", str).strip().lower() if "metric" in table else ("tpr" if detector else defaults.metric)
    valid_metrics = DETECTION_METRICS if detector else METRICS
    if metric not in valid_metrics:
        raise UsageError(f"{source}: data.metric = {metric!r} is not valid for a {'detector' if detector else 'classifier'}; "
                         f"choose from {', '.join(valid_metrics)}")  # fmt: skip
    split = _split(table.get("split", list(defaults.split)), source)
    stratify = get("stratify", str) if "stratify" in table else groups[0]
    if stratify and stratify not in groups:
        raise UsageError(f'{source}: data.stratify = {stratify!r} must be one of data.groups or "" (none)')
    bias_attribute = get("bias_attribute", str) or groups[0]
    if bias_attribute not in groups:
        raise UsageError(f"{source}: data.bias_attribute = {bias_attribute!r} must be one of data.groups")
    mitigation_group = get("mitigation_group", str) or groups[0]
    if mitigation_group not in groups:
        raise UsageError(f"{source}: data.mitigation_group = {mitigation_group!r} must be one of data.groups")
    modality = get("modality", str).strip().lower()
    if modality not in MODALITIES:
        raise UsageError(f"{source}: data.modality = {modality!r} is not valid; choose from {', '.join(MODALITIES)}")
    if modality == "image" and "clip_seconds" in table:
        raise UsageError(f'{source}: data.clip_seconds is an audio setting, but data.modality is "image"; remove it')
    train_imbalance = get("train_imbalance", str).strip()
    if train_imbalance:
        try:
            column = parse_imbalance(train_imbalance)[0]
        except UsageError as exc:
            raise UsageError(f"{source}: data.train_imbalance: {exc}") from None
        if column not in groups:
            raise UsageError(f"{source}: data.train_imbalance names {column!r}, which is not one of data.groups")
    settings = DataSettings(
        manifest=(source.parent / manifest).absolute(),
        groups=groups,
        metric=metric,
        split=split,
        split_seed=get("split_seed", int),
        stratify=stratify or None,
        negative_labels=_strings(table, "negative_labels", source) or defaults.negative_labels,
        min_group_size=get("min_group_size", int),
        bootstrap=get("bootstrap", int),
        permutations=get("permutations", int),
        confidence=get("confidence", float),
        resampling_seed=get("resampling_seed", int),
        max_groups=get("max_groups", int),
        bias_attribute=bias_attribute,
        clip_seconds=get("clip_seconds", float),
        mitigation_group=mitigation_group,
        train_imbalance=train_imbalance,
        modality=modality,
        **task,
    )
    _check_data_numbers(settings, source)
    return settings


def _task_settings(table: Mapping[str, Any], source: Path) -> dict[str, Any]:
    """``data.task`` and a detector's phrase and operating point, checked as ``audit`` checks its options."""
    from ondevice_audit.metrics.detection import OperatingPoint

    task = table.get("task", "classify")
    if task not in ("classify", "detect"):
        raise UsageError(f'{source}: data.task = {task!r} is not valid; choose "classify" or "detect"')
    positive = table.get("positive_label", "")
    if not isinstance(positive, str):
        raise UsageError(f"{source}: data.positive_label must be a string (the label of the phrase's clips)")
    point = {key: table.get(key) for key in ("threshold", "at_far", "at_fa_per_hour")}
    for key, value in point.items():
        if value is not None and not (_check_type(value, float) and math.isfinite(value)):
            raise UsageError(f"{source}: data.{key} = {value!r} must be a finite number")
    if task == "classify":
        named = [f"data.{key}" for key in ("positive_label", *point) if key in table]
        if named:
            raise UsageError(f'{source}: {", ".join(named)} are for detectors: add data.task = "detect"')
        return {}
    if not positive.strip():
        raise UsageError(f'{source}: data.task = "detect" needs data.positive_label (the label of the phrase\'s clips)')
    given = {key: float(value) for key, value in point.items() if value is not None}
    try:
        if given:
            OperatingPoint(**given)
    except UsageError as exc:
        raise UsageError(f"{source}: data: {exc}") from None
    return {"task": task, "positive_label": positive.strip(), **given}


def _split(split: Any, source: Path) -> tuple[float, float, float]:
    if (
        not isinstance(split, list)
        or len(split) != 3
        or not all(_check_type(v, float) and v >= 0 for v in split)
        or not math.isclose(sum(split), 1.0, abs_tol=1e-6)
    ):
        raise UsageError(f"{source}: data.split must be three non-negative shares summing to 1, e.g. [0.8, 0.1, 0.1]")
    if split[0] == 0 or split[2] == 0:
        raise UsageError(f"{source}: data.split needs a training and a test share above 0 (the audit runs on test)")
    return float(split[0]), float(split[1]), float(split[2])


def _check_data_numbers(settings: DataSettings, source: Path) -> None:
    problems = [
        "data.min_group_size must be 0 or more" if settings.min_group_size < 0 else "",
        "data.bootstrap must be 0 (off) or at least 100"
        if 0 < settings.bootstrap < 100 or settings.bootstrap < 0
        else "",
        "data.permutations must be 0 (off) or at least 100"
        if 0 < settings.permutations < 100 or settings.permutations < 0
        else "",
        "data.confidence must be between 0 and 1" if not 0 < settings.confidence < 1 else "",
        "data.clip_seconds must be positive" if settings.clip_seconds <= 0 else "",
        "data.split_seed must be 0 or more" if settings.split_seed < 0 else "",
        "data.resampling_seed must be 0 or more" if settings.resampling_seed < 0 else "",
        f"data.max_groups must be at least 2, got {settings.max_groups}" if settings.max_groups < 2 else "",
    ]
    problem = next((p for p in problems if p), None)
    if problem:
        raise UsageError(f"{source}: {problem}")


_DATA_KEYS = (
    "manifest",
    "groups",
    "metric",
    "split",
    "split_seed",
    "stratify",
    "negative_labels",
    "min_group_size",
    "bootstrap",
    "permutations",
    "confidence",
    "resampling_seed",
    "max_groups",
    "bias_attribute",
    "clip_seconds",
    "mitigation_group",
    "train_imbalance",
    "modality",
    "task",
    "positive_label",
    "threshold",
    "at_far",
    "at_fa_per_hour",
)
_TRAINING_KEYS = tuple(field.name for field in dataclasses.fields(TrainingSettings))


def _training_settings(table: Mapping[str, Any], source: Path) -> TrainingSettings:
    defaults = TrainingSettings()
    values = {
        field.name: _setting(table, field.name, type(getattr(defaults, field.name)), getattr(defaults, field.name),
                             source, "training")
        for field in dataclasses.fields(TrainingSettings)
    }  # fmt: skip
    bad = [name for name, value in values.items() if not value > 0]
    if bad:
        raise UsageError(f"{source}: training.{bad[0]} must be positive, got {values[bad[0]]}")
    return TrainingSettings(**values)
