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
