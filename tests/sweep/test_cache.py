"""The stage cache: keys follow the settings, an entry appears whole or not at all, even under SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ondevice_audit.sweep.cache import Cache, atomic_write_text, copy_file, digest
from ondevice_audit.sweep.stages.prune import PruneSettings
from ondevice_audit.sweep.stages.train import TrainSettings


def _train(**changed: object) -> TrainSettings:
    settings = {"features": "f" * 64, "classes": ("no", "yes"), "architecture": "ds-cnn", "seed": 0, "epochs": 3,
                "batch_size": 64, "learning_rate": 1e-3, **changed}  # fmt: skip
    return TrainSettings(**settings)  # type: ignore[arg-type]


def test_keys_are_canonical_and_follow_every_setting(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    key = cache.key(_train())
    assert key == cache.key(_train(epochs=3, seed=0))
    assert key != cache.key(_train(seed=1))
    assert key != cache.key(_train(learning_rate=1e-4))
    assert key != cache.key(PruneSettings("f" * 64, key, 0.5, "polynomial", 1e-4, 3, 64, 0))
    assert digest({"a": [1, 2]}) != digest({"a": [2, 1]})
    assert cache.entry("train", key) == tmp_path / "train" / key[:2] / key


def test_an_entry_appears_only_when_its_block_finishes(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    with pytest.raises(RuntimeError):
        with cache.writing("train", "ab" * 32) as folder:
            (folder / "model.keras").write_text("half")
            assert not cache.has("train", "ab" * 32)
            raise RuntimeError("training crashed")
    assert not cache.has("train", "ab" * 32)
    assert list((tmp_path / "train" / "ab").iterdir()) == []  # the temporary folder is gone too
    with cache.writing("train", "ab" * 32) as folder:
        (folder / "model.keras").write_text("whole")
    assert (cache.entry("train", "ab" * 32) / "model.keras").read_text() == "whole"


def test_a_concurrent_writer_that_loses_the_race_keeps_the_first_entry(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    key = "cd" * 32
    with cache.writing("export", key) as late:
        (late / "model.tflite").write_text("second")
        with cache.writing("export", key) as early:
            (early / "model.tflite").write_text("first")
    assert (cache.entry("export", key) / "model.tflite").read_text() == "first"
    assert [p.name for p in cache.entry("export", key).parent.iterdir()] == [key]


def test_sigkill_mid_write_leaves_no_entry_and_the_leftover_is_cleaned(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import time
        from pathlib import Path
        from ondevice_audit.sweep.cache import Cache
        with Cache(Path({str(tmp_path)!r})).writing("train", "ef" * 32) as folder:
            (folder / "model.keras").write_text("partial")
            print("writing", flush=True)
            time.sleep(60)
        """
    )
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None and child.stdout.readline().strip() == "writing"
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=30)
    cache = Cache(tmp_path)
    assert not cache.has("train", "ef" * 32)
    leftovers = list((tmp_path / "train" / "ef").iterdir())
    assert len(leftovers) == 1 and leftovers[0].name.startswith(f".tmp-{child.pid}-")
    assert cache.remove_stale() == 1
    assert list((tmp_path / "train" / "ef").iterdir()) == []


def test_a_live_writer_is_not_cleaned(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    with cache.writing("train", "12" * 32):
        assert cache.remove_stale() == 0


def test_atomic_files_replace_whole(tmp_path: Path) -> None:
    target = tmp_path / "out" / "results.csv"
    atomic_write_text(target, "a,b\n1,2\n")
    atomic_write_text(target, "a,b\n3,4\n")
    assert target.read_text() == "a,b\n3,4\n"
    assert [p.name for p in target.parent.iterdir()] == ["results.csv"]
    source = tmp_path / "model.tflite"
    source.write_bytes(b"model")
    copy_file(source, tmp_path / "cell" / "model.tflite")
    copy_file(source, tmp_path / "cell" / "model.tflite")  # again, as a resumed sweep does
    assert (tmp_path / "cell" / "model.tflite").read_bytes() == b"model"
    assert [p.name for p in (tmp_path / "cell").iterdir()] == ["model.tflite"]
    assert (tmp_path / "cell" / "model.tflite").stat().st_ino != source.stat().st_ino  # a copy, not a link


def test_toolchain_versions_are_part_of_the_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ondevice_audit.sweep.stages import base as module

    before = Cache(tmp_path).key(_train())
    monkeypatch.setattr(module, "distribution_versions", lambda names: dict.fromkeys(names, "9.9"))
    assert Cache(tmp_path).key(_train()) != before


def test_an_entry_records_its_files_and_verify_finds_any_change(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    key = "ab" * 32
    with cache.writing("export", key) as folder:
        (folder / "model.tflite").write_bytes(b"x" * 1000)
        (folder / "sub").mkdir()
        (folder / "sub" / "export.json").write_text("{}")
    assert cache.verify("export", key) is None
    entry = cache.entry("export", key)
    (entry / "model.tflite").write_bytes(b"x" * 999)
    assert cache.verify("export", key) == "model.tflite has 999 bytes, 1000 when it was written"
    (entry / "model.tflite").write_bytes(b"y" + b"x" * 999)
    assert cache.verify("export", key) == "model.tflite changed since it was written (sha256 differs)"
    (entry / "sub" / "export.json").unlink()
    (entry / "model.tflite").write_bytes(b"x" * 1000)
    assert cache.verify("export", key) == "sub/export.json is missing"
    (entry / ".entry.json").write_text("{not json")
    assert cache.verify("export", key).startswith("its list of files cannot be read")
    cache.discard("export", key)
    assert not cache.has("export", key) and list(entry.parent.iterdir()) == []


def test_atomic_writes_follow_the_umask(tmp_path: Path) -> None:
    previous = os.umask(0o027)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
        with Cache(tmp_path).writing("score", "cd" * 32) as folder:
            (folder / "report.json").write_text("{}")
    finally:
        os.umask(previous)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o640
    assert Cache(tmp_path).entry("score", "cd" * 32).stat().st_mode & 0o777 == 0o750
