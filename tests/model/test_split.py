"""Speaker-disjoint, deterministic, group-stratified splits."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ondevice_audit.data.split import split_by_speaker
from ondevice_audit.errors import UsageError


def _manifest(n_speakers: int = 60, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(n_speakers):
        gender = "female" if s % 3 == 0 else "male"  # a minority group, to check it reaches every split
        for c in range(int(rng.integers(2, 9))):
            rows.append({"path": f"s{s}/{c}.wav", "label": "yes", "speaker": f"s{s}", "gender": gender})
    return pd.DataFrame(rows)


def test_no_speaker_is_in_two_splits_and_every_row_is_used() -> None:
    manifest = _manifest()
    train, val, test = split_by_speaker(manifest, (0.8, 0.1, 0.1), seed=3)
    speakers = [set(part["speaker"]) for part in (train, val, test)]
    assert not (speakers[0] & speakers[1] or speakers[0] & speakers[2] or speakers[1] & speakers[2])
    assert sorted(pd.concat([train, val, test]).index) == sorted(manifest.index)
    shares = np.array([len(train), len(val), len(test)]) / len(manifest)
    np.testing.assert_allclose(shares, [0.8, 0.1, 0.1], atol=0.05)


def test_split_is_deterministic_and_depends_on_the_seed() -> None:
    manifest = _manifest()
    first = split_by_speaker(manifest, seed=7, group="gender")
    again = split_by_speaker(manifest.sample(frac=1.0, random_state=0), seed=7, group="gender")
    for a, b in zip(first, again, strict=True):
        assert sorted(a.index) == sorted(b.index)
    other = split_by_speaker(manifest, seed=8, group="gender")
    assert sorted(other[2].index) != sorted(first[2].index)


def test_group_stratification_puts_every_group_in_every_split() -> None:
    manifest = _manifest()
    for part in split_by_speaker(manifest, seed=0, group="gender"):
        assert set(part["gender"]) == {"female", "male"}
    _, _, test = split_by_speaker(manifest, seed=0, group="gender")
    female = manifest["gender"] == "female"
    assert abs(test["gender"].eq("female").sum() / female.sum() - 0.1) < 0.06


def test_without_speakers_each_file_stands_alone_and_bad_fractions_are_refused() -> None:
    manifest = _manifest().drop(columns="speaker")
    train, val, test = split_by_speaker(manifest, (0.5, 0.25, 0.25), seed=0)
    assert (len(train), len(val), len(test)) == (
        len(manifest) // 2,
        len(manifest) // 4,
        len(manifest) - len(manifest) // 2 - len(manifest) // 4,
    )
    with pytest.raises(UsageError, match="summing to 1"):
        split_by_speaker(manifest, (0.8, 0.3, 0.1))
    with pytest.raises(UsageError, match="unknown group column 'accent'"):
        split_by_speaker(manifest, group="accent")
