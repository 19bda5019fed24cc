"""Generated clip corpora and a memory probe for `audit`, shared by `run.py --only memory` and the streaming test.

The probe runs the CLI in a fresh interpreter and reports its peak RSS and whether TensorFlow got imported. The
peak is VmHWM, the high-water mark of that process's own memory: ru_maxrss would also count the parent's RSS,
which the child inherits at fork and keeps through exec.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

_MEASURED_CLI = """
import json, sys
from ondevice_audit.cli import app
try:
    app(sys.argv[1:], prog_name="ondevice-audit")
except SystemExit as exit:
    code = exit.code
status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines())
print(json.dumps({"code": code, "peak_kib": int(status["VmHWM"].split()[0]), "tensorflow": "tensorflow" in sys.modules}))
"""


def clip_corpus(folder: Path, n: int, labels: list[str], clips_per_speaker: int = 100, seed: int = 0) -> Path:
    """``n`` one-second 16 kHz WAV clips (a tone per speaker and label, noise louder for one gender) and their
    manifest (path, label, gender, speaker). Written once: the manifest is written last, so it marks a whole set."""
    import soundfile as sf

    manifest = folder / f"manifest-{n}.csv"
    if manifest.is_file():
        return manifest
    (folder / "clips").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    t = np.arange(16000, dtype=np.float32) / 16000
    rows = []
    for i in range(n):
        speaker, label = i // clips_per_speaker, labels[i % len(labels)]
        gender = "female" if speaker % 2 else "male"
        tone = 200 + 40 * labels.index(label) + 3 * (speaker % 10)
        noise = (0.2 if gender == "female" else 0.05) * rng.standard_normal(16000, dtype=np.float32)
        relative = f"clips/{i:06d}.wav"
        sf.write(folder / relative, 0.3 * np.sin(2 * np.pi * tone * t) + noise, 16000, subtype="PCM_16")
        rows.append((relative, label, gender, f"s{speaker:04d}"))
    pd.DataFrame(rows, columns=["path", "label", "gender", "speaker"]).to_csv(manifest, index=False)
    return manifest


def measured_command(*args: str, timeout: float = 7200) -> dict:
    """``ondevice-audit ARGS`` in a fresh process: its exit ``code``, ``peak_kib`` (VmHWM), ``tensorflow``
    (imported or not) and ``seconds``; a failure raises with the end of its stderr."""
    command = [sys.executable, "-c", _MEASURED_CLI, *args]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:2])} failed: {done.stderr[-2000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if result["code"] not in (0, None):
        raise RuntimeError(f"{' '.join(args[:2])} exited {result['code']}: {done.stderr[-2000:]}")
    return {**result, "seconds": time.perf_counter() - started}


def measured_audit(model: Path, manifest: Path, report: Path, *options: str) -> dict:
    """``audit MODEL --data MANIFEST -g gender`` in a fresh process: ``measured_command``'s figures and ``scored``
    (clips in the report)."""
    result = measured_command("audit", str(model), "--data", str(manifest), "-g", "gender", "--format", "json",
                              "-o", str(report), *options)  # fmt: skip
    return {**result, "scored": json.loads(report.read_text())["samples"]["scored"]}
