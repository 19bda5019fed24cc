"""A matrix writer shared by the sweep tests: the tone dataset, small front-end, a few epochs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

MatrixWriter = Callable[..., Path]


@pytest.fixture(scope="session")
def write_matrix() -> MatrixWriter:
    def write(folder: Path, manifest: Path, factors: str, **training: object) -> Path:
        """``factors`` is TOML for the top level (and a ``[pruning]`` table, last); data and training follow."""
        settings = {"epochs": 2, "batch_size": 32, "learning_rate": 0.003, "pruning_epochs": 2,
                    "calibration_samples": 50, "latency_samples": 5, **training}  # fmt: skip
        text = (
            "n_mels = 20\nn_mfcc = 10\n"
            + factors
            + f'\n[data]\nmanifest = "{manifest}"\ngroups = ["gender", "accent"]\nmetric = "accuracy"\n'
            + "split = [0.5, 0.17, 0.33]\nmin_group_size = 5\nbootstrap = 200\npermutations = 200\nclip_seconds = 0.5\n"
            + "[training]\n"
            + "".join(f"{key} = {value}\n" for key, value in settings.items())
        )
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "matrix.toml"
        path.write_text(text)
        return path

    return write
