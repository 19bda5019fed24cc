"""The explain tests' models and data: ``examples/explain_toy.py`` (the README's worked example), built once."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest

_SPEC = importlib.util.spec_from_file_location("explain_toy", Path(__file__).parents[2] / "examples" / "explain_toy.py")
assert _SPEC is not None and _SPEC.loader is not None
toy = importlib.util.module_from_spec(_SPEC)
sys.modules["explain_toy"] = toy  # its dataclass looks its module up there
_SPEC.loader.exec_module(toy)


@pytest.fixture(scope="session")
def sensitive_case(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return toy.build_case(tmp_path_factory.mktemp("explain-sensitive"))


@pytest.fixture(scope="session")
def harmless_case(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return toy.build_case(tmp_path_factory.mktemp("explain-harmless"), sensitive=False, seed=1)


@pytest.fixture(scope="session")
def detector_case(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The toy as a single-sigmoid ``yes`` detector (metadata: task detect), its ``mix`` as sensitive."""
    return toy.build_case(tmp_path_factory.mktemp("explain-detector"), detector=True)


def _explained(case: Any, out: Path, options: Any, latency_samples: int = 3, variant: Path | None = None) -> Any:
    from ondevice_audit.explain.document import validate
    from ondevice_audit.explain.job import ExplainOptions, explain_variant

    document = explain_variant(variant or case.variant, case.base, case.manifest, options,
                               ExplainOptions(out, latency_samples=latency_samples))  # fmt: skip
    validate(document)  # every document explain writes follows its schema
    return document


@pytest.fixture(scope="session")
def explain() -> Any:
    """``explain(case, out, options, latency_samples=3, variant=None)``: the case explained, its document
    validated against the explain schema."""
    return _explained


def _fails(*args: str) -> str:
    from typer.testing import CliRunner

    from ondevice_audit.cli import app

    result = CliRunner().invoke(app, ["explain", *args])
    assert result.exit_code == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and result.stderr.strip().splitlines()[-1] == errors[0]
    return " ".join(result.stderr.split())


@pytest.fixture(scope="session")
def explain_fails() -> Any:
    """``explain_fails(*args)``: ``ondevice-audit explain ARGS`` exits 2 with one error line; that line's text."""
    return _fails
