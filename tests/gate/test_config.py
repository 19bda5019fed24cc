"""Gate settings: pyproject discovery, --config files, flags over files, and exact error messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from ondevice_audit.gate import GateConfigError, GateSettings, Rule, RuleKind, load_settings
from ondevice_audit.gate import config as gate_config
from ondevice_audit.gate.config import find_pyproject, parse_max_rb, read_config_file

PYPROJECT = """
[project]
name = "my-kws"

[tool.ondevice-audit.gate]
max_rb = 0.3
min_metric = {overall = 0.5, group = 0.4}
baseline = "runs/main/report.json"
use_ci_bound = false
"""


def test_pyproject_is_found_walking_up_past_one_without_the_section(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "project"
    nested = project / "sub" / "a" / "b"
    nested.mkdir(parents=True)
    (project / "pyproject.toml").write_text(PYPROJECT)
    (project / "sub" / "pyproject.toml").write_text("[tool.ruff]\nline-length = 100\n")
    monkeypatch.chdir(nested)
    assert find_pyproject(Path.cwd()) == project / "pyproject.toml"
    settings = load_settings()
    assert settings == GateSettings(
        max_rb={None: 0.3},
        min_metric=0.5,
        min_group_metric=0.4,
        baseline=project / "runs/main/report.json",
        use_ci_bound=False,
    )
    assert settings.rules() == (
        Rule(RuleKind.MAX_RB, None, 0.3, False),
        Rule(RuleKind.MIN_METRIC, None, 0.5, False),
        Rule(RuleKind.MIN_GROUP_METRIC, None, 0.4, False),
    )


def test_no_pyproject_means_no_file_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert load_settings() == GateSettings()
    with pytest.raises(GateConfigError) as error:
        load_settings().rules()
    assert str(error.value) == gate_config.NO_RULES


def test_config_file_with_keys_at_the_top_level(tmp_path: Path) -> None:
    path = tmp_path / "gate.toml"
    path.write_text('max_rb = {gender = 0.2, "gender × accent" = 0.5}\nmax_group_gap = 0.1\nuse_ci_bound = "auto"\n')
    settings = read_config_file(path)
    assert settings == GateSettings(
        max_rb={"gender": 0.2, "gender × accent": 0.5}, max_group_gap=0.1, use_ci_bound="auto"
    )
    assert settings.rules() == (
        Rule(RuleKind.MAX_RB, "gender", 0.2, None),
        Rule(RuleKind.MAX_RB, "gender × accent", 0.5, None),
        Rule(RuleKind.MAX_GROUP_GAP, None, 0.1, None),
    )


def test_config_file_replaces_pyproject_discovery(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "pyproject.toml").write_text(PYPROJECT)
    other = tmp_path / "ci" / "gate.toml"
    other.parent.mkdir()
    other.write_text('[tool.ondevice-audit.gate]\nmax_metric_drop = 0.02\nbaseline = "base.json"\n')
    monkeypatch.chdir(tmp_path)
    assert load_settings(other) == GateSettings(max_metric_drop=0.02, baseline=tmp_path / "ci" / "base.json")


def test_config_file_with_a_tool_table_but_no_gate_section(tmp_path: Path) -> None:
    path = tmp_path / "pyproject.toml"
    path.write_text("[tool.ruff]\nline-length = 100\n")
    with pytest.raises(GateConfigError) as error:
        read_config_file(path)
    assert str(error.value) == f"{path} has a [tool] table but no [tool.ondevice-audit.gate] table"


def test_flags_replace_the_files_value_per_key(tmp_path: Path) -> None:
    path = tmp_path / "gate.toml"
    path.write_text("max_rb = {gender = 0.2, accent = 0.4}\nmin_metric = 0.5\nuse_ci_bound = true\n")
    settings = load_settings(path, GateSettings(max_rb={None: 0.1}, use_ci_bound=False))
    assert settings == GateSettings(max_rb={None: 0.1}, min_metric=0.5, use_ci_bound=False)


def test_unknown_keys_are_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "pyproject.toml"
    path.write_text("[tool.ondevice-audit.gate]\nmax_rb = 0.3\nmin_mcc = 0.5\nmax_bias = 1\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(GateConfigError) as error:
        load_settings()
    assert str(error.value) == (
        f"{path} [tool.ondevice-audit.gate]: unknown gate setting(s) max_bias, min_mcc; known: max_rb, "
        "max_group_gap, min_metric, baseline, max_rb_increase, max_metric_drop, use_ci_bound, require_mcu_fit"
    )


def test_unknown_keys_in_the_min_metric_table(tmp_path: Path) -> None:
    path = tmp_path / "gate.toml"
    path.write_text("min_metric = {overall = 0.5, worst = 0.3}\n")
    with pytest.raises(GateConfigError) as error:
        read_config_file(path)
    assert str(error.value) == f"{path} min_metric: unknown gate setting(s) worst; known: overall, group"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('max_group_gap = "0.1"', "{path}: max_group_gap must be a number, got '0.1'"),
        ("max_rb = true", "{path}: max_rb must be a number or a table, got True"),
        ('max_rb = {gender = "x"}', "{path}: max_rb.gender must be a number, got 'x'"),
        ('use_ci_bound = "sometimes"', "{path}: use_ci_bound must be true, false or \"auto\", got 'sometimes'"),
        ("baseline = 3", "{path}: baseline must be a path string, got 3"),
    ],
)
def test_bad_values(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "gate.toml"
    path.write_text(line + "\n")
    with pytest.raises(GateConfigError) as error:
        read_config_file(path)
    assert str(error.value) == message.format(path=path)


def test_invalid_toml_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "gate.toml"
    path.write_text("max_rb = \n")
    with pytest.raises(GateConfigError) as error:
        read_config_file(path)
    assert str(error.value).startswith(f"{path}: not valid TOML (")
    with pytest.raises(GateConfigError) as error:
        read_config_file(tmp_path / "missing.toml")
    assert str(error.value) == f"gate config not found: {tmp_path / 'missing.toml'}"


def test_max_rb_flags() -> None:
    assert parse_max_rb(["0.3", "gender=0.2", "a=b=0.1"]) == {None: 0.3, "gender": 0.2, "a=b": 0.1}
    for bad in ("x", "gender=", "=0.3", "nan"):
        with pytest.raises(GateConfigError) as error:
            parse_max_rb([bad])
        assert str(error.value) == f"--max-rb takes X or ATTRIBUTE=X with X a number, got {bad!r}"
