"""Large batches are split over threads: the rows and failures must come back in the order of the paths."""

from __future__ import annotations

import numpy as np
import soundfile as sf

from ondevice_audit.frontend import AudioFrontendSpec, build_frontend
from ondevice_audit.frontend.audio import _SUB_BATCH


def test_threaded_sub_batches_keep_order_and_failure_positions(tmp_path):
    spec = AudioFrontendSpec(kind="mfcc", clip_seconds=0.25)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(2 * _SUB_BATCH + 7):
        path = tmp_path / f"{i}.wav"
        sf.write(path, (0.1 * (1 + i % 5) * rng.standard_normal(4000)).astype(np.float32), 16000)
        paths.append(path)
    bad = [3, _SUB_BATCH + 1, 2 * _SUB_BATCH + 6]  # one in each sub-batch
    paths[bad[0]].write_bytes(b"not audio")
    paths[bad[1]] = tmp_path / "missing.wav"
    paths[bad[2]].write_bytes(b"")
    frontend = build_frontend(spec)

    batch = frontend.transform(paths)

    assert sorted(batch.failures) == bad
    assert batch.failures[bad[1]] == "file not found"
    assert np.flatnonzero(~batch.ok).tolist() == bad
    one_by_one = np.stack([frontend.load_one(path) for i, path in enumerate(paths) if i not in bad])
    assert batch.inputs.shape == one_by_one.shape
    np.testing.assert_allclose(batch.inputs, one_by_one, rtol=1e-5, atol=1e-4)
    np.testing.assert_array_equal(frontend.transform(paths).inputs, batch.inputs)  # same files, same numbers
