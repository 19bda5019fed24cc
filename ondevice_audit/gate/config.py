"""Gate settings: ``[tool.ondevice-audit.gate]`` in pyproject.toml, a ``--config`` file, and flags.

Like ruff, the settings file is the nearest ``pyproject.toml`` above the current directory that has the
section, so ``ondevice-audit gate`` in any sub-folder of a project uses the project's limits; ``--config``
replaces that search. A flag replaces the file's value for its key (``--max-rb`` replaces the whole
``max_rb`` setting), so a CI job can tighten one limit without copying the others.

Keys (also the top level of a ``--config`` file without a ``[tool]`` table)::

    max_rb = 0.3                          # or a table: {gender = 0.2, accent = 0.4}
    max_group_gap = 0.1
    min_metric = 0.5                      # overall; or {overall = 0.5, group = 0.4}
    baseline = "runs/main/report.json"    # relative to the file's folder
    max_rb_increase = 0.05
    max_metric_drop = 0.02
    use_ci_bound = "auto"                 # true, false or "auto"
    require_mcu_fit = true                # the report's MCU budget (audit --board) must fit
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Literal

from ondevice_audit.gate.interface import GateConfigError, Rule, RuleKind

__all__ = [
    "KEYS",
    "GateSettings",
    "find_pyproject",
    "load_settings",
    "parse_max_rb",
    "parse_table",
    "read_config_file",
]

KEYS = (
    "max_rb",
    "max_group_gap",
    "min_metric",
    "baseline",
    "max_rb_increase",
    "max_metric_drop",
    "use_ci_bound",
    "require_mcu_fit",
)
_MIN_METRIC_KEYS = ("overall", "group")
SECTION = "[tool.ondevice-audit.gate]"

UNKNOWN_KEYS = "{source}: unknown gate setting(s) {keys}; known: {known}"
BAD_NUMBER = "{source}: {key} must be a number, got {value!r}"
BAD_TABLE = "{source}: {key} must be a number or a table, got {value!r}"
BAD_BASELINE = "{source}: baseline must be a path string, got {value!r}"
BAD_CI_BOUND = '{source}: use_ci_bound must be true, false or "auto", got {value!r}'
BAD_BOOL = "{source}: {key} must be true or false, got {value!r}"
BAD_TOML = "{path}: not valid TOML ({error})"
UNREADABLE = "{path}: cannot read ({error})"
CONFIG_NOT_FOUND = "gate config not found: {path}"
NO_GATE_TABLE = "{path} has a [tool] table but no " + SECTION + " table"
BAD_MAX_RB_FLAG = "--max-rb takes X or ATTRIBUTE=X with X a number, got {value!r}"
NO_RULES = (
    "no gate rules: give --max-rb, --max-group-gap, --min-metric, --min-group-metric, --max-rb-increase, "
    "--max-metric-drop or --require-mcu-fit, or set them under " + SECTION + " in pyproject.toml"
)

CiBound = bool | Literal["auto"]


@dataclass(frozen=True)
class GateSettings:
    """Every setting, None where not given (so flags can be laid over a file)."""

    max_rb: Mapping[str | None, float] | None = None
    """Limit per attribute name; the None key is the limit for every other attribute."""
    max_group_gap: float | None = None
    min_metric: float | None = None
    min_group_metric: float | None = None
    max_rb_increase: float | None = None
    max_metric_drop: float | None = None
    baseline: Path | None = None
    use_ci_bound: CiBound | None = None
    require_mcu_fit: bool | None = None

    def overridden_by(self, other: GateSettings) -> GateSettings:
        return replace(
            self, **{f.name: getattr(other, f.name) for f in fields(other) if getattr(other, f.name) is not None}
        )

    def rules(self) -> tuple[Rule, ...]:
        """The rules these settings ask for; a ``GateConfigError`` when there are none."""
        ci = None if self.use_ci_bound in (None, "auto") else bool(self.use_ci_bound)
        rules = [Rule(RuleKind.MAX_RB, attribute, limit, ci) for attribute, limit in (self.max_rb or {}).items()]
        for kind, limit in (
            (RuleKind.MAX_GROUP_GAP, self.max_group_gap),
            (RuleKind.MIN_METRIC, self.min_metric),
            (RuleKind.MIN_GROUP_METRIC, self.min_group_metric),
            (RuleKind.MAX_RB_INCREASE, self.max_rb_increase),
            (RuleKind.MAX_METRIC_DROP, self.max_metric_drop),
        ):
            if limit is not None:
                rules.append(Rule(kind, None, limit, ci))
        if self.require_mcu_fit:
            rules.append(Rule(RuleKind.REQUIRE_MCU_FIT, None, 1.0))
        if not rules:
            raise GateConfigError(NO_RULES)
        return tuple(rules)


def load_settings(
    config: Path | None = None, flags: GateSettings | None = None, start: Path | None = None
) -> GateSettings:
    """The file's settings (``config``, else the nearest pyproject.toml from ``start``) overridden by flags."""
    if config is not None:
        settings = read_config_file(config)
    else:
        found = find_pyproject(start or Path.cwd())
        settings = GateSettings() if found is None else _from_pyproject(found)
    return settings if flags is None else settings.overridden_by(flags)


def find_pyproject(start: Path) -> Path | None:
    """The nearest pyproject.toml at or above ``start`` with a gate section; files without one are skipped."""
    start = start.resolve()
    for folder in (start, *start.parents):
        candidate = folder / "pyproject.toml"
        if candidate.is_file() and _gate_table(_read_toml(candidate)) is not None:
            return candidate
    return None


def read_config_file(path: Path) -> GateSettings:
    """A ``--config`` file: the gate section of a pyproject-style file, or the keys at its top level."""
    if not path.is_file():
        raise GateConfigError(CONFIG_NOT_FOUND.format(path=path))
    data = _read_toml(path)
    if "tool" not in data:
        return parse_table(data, str(path), path.parent)
    table = _gate_table(data)
    if table is None:
        raise GateConfigError(NO_GATE_TABLE.format(path=path))
    return parse_table(table, f"{path} {SECTION}", path.parent)


def parse_table(table: Mapping[str, Any], source: str, base: Path) -> GateSettings:
    """Settings from one TOML table; ``source`` names it in errors, ``base`` anchors a relative baseline."""
    _reject_unknown(table, KEYS, source)
    min_metric, min_group_metric = None, None
    if "min_metric" in table:
        value = table["min_metric"]
        if isinstance(value, Mapping):
            _reject_unknown(value, _MIN_METRIC_KEYS, f"{source} min_metric")
            min_metric = _optional_number(value, "overall", source)
            min_group_metric = _optional_number(value, "group", source)
        else:
            min_metric = _number(value, "min_metric", source)
    return GateSettings(
        max_rb=_max_rb(table["max_rb"], source) if "max_rb" in table else None,
        max_group_gap=_optional_number(table, "max_group_gap", source),
        min_metric=min_metric,
        min_group_metric=min_group_metric,
        max_rb_increase=_optional_number(table, "max_rb_increase", source),
        max_metric_drop=_optional_number(table, "max_metric_drop", source),
        baseline=_baseline(table["baseline"], source, base) if "baseline" in table else None,
        use_ci_bound=_ci_bound(table["use_ci_bound"], source) if "use_ci_bound" in table else None,
        require_mcu_fit=_bool(table["require_mcu_fit"], "require_mcu_fit", source)
        if "require_mcu_fit" in table
        else None,
    )


def parse_max_rb(values: Sequence[str]) -> dict[str | None, float]:
    """``--max-rb`` flags: ``X`` for every attribute, ``ATTRIBUTE=X`` for one (the last ``=`` splits)."""
    limits: dict[str | None, float] = {}
    for text in values:
        attribute, separator, number = text.rpartition("=")
        try:
            limit = float(number)
        except ValueError:
            raise GateConfigError(BAD_MAX_RB_FLAG.format(value=text)) from None
        if not math.isfinite(limit) or (separator and not attribute):
            raise GateConfigError(BAD_MAX_RB_FLAG.format(value=text))
        limits[attribute or None] = limit
    return limits


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise GateConfigError(BAD_TOML.format(path=path, error=exc)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise GateConfigError(UNREADABLE.format(path=path, error=exc)) from None


def _gate_table(data: Mapping[str, Any]) -> Mapping[str, Any] | None:
    table: Any = data
    for key in ("tool", "ondevice-audit", "gate"):
        table = table.get(key) if isinstance(table, Mapping) else None
    return table if isinstance(table, Mapping) else None


def _from_pyproject(path: Path) -> GateSettings:
    table = _gate_table(_read_toml(path))
    assert table is not None
    return parse_table(table, f"{path} {SECTION}", path.parent)


def _reject_unknown(table: Mapping[str, Any], known: Sequence[str], source: str) -> None:
    unknown = sorted(set(table) - set(known))
    if unknown:
        raise GateConfigError(UNKNOWN_KEYS.format(source=source, keys=", ".join(unknown), known=", ".join(known)))


def _number(value: Any, key: str, source: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise GateConfigError(BAD_NUMBER.format(source=source, key=key, value=value))
    return float(value)


def _optional_number(table: Mapping[str, Any], key: str, source: str) -> float | None:
    return _number(table[key], key, source) if key in table else None


def _max_rb(value: Any, source: str) -> dict[str | None, float]:
    if isinstance(value, Mapping):
        return {str(attribute): _number(limit, f"max_rb.{attribute}", source) for attribute, limit in value.items()}
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise GateConfigError(BAD_TABLE.format(source=source, key="max_rb", value=value))
    return {None: _number(value, "max_rb", source)}


def _baseline(value: Any, source: str, base: Path) -> Path:
    if not isinstance(value, str) or not value:
        raise GateConfigError(BAD_BASELINE.format(source=source, value=value))
    return base / value


def _ci_bound(value: Any, source: str) -> CiBound:
    if isinstance(value, bool) or value == "auto":
        return value
    raise GateConfigError(BAD_CI_BOUND.format(source=source, value=value))


def _bool(value: Any, key: str, source: str) -> bool:
    if not isinstance(value, bool):
        raise GateConfigError(BAD_BOOL.format(source=source, key=key, value=value))
    return value
