"""The HTML report in a real browser: headless Chromium renders it, every embedded plot decodes, no console errors.

`make test` installs Debian's chromium when it is missing.
"""

from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from ondevice_audit.metrics import GroupMetricFrame
from ondevice_audit.report.document import build_report
from ondevice_audit.report.html import HtmlFormat

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (make test installs it)")
_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
          "--disable-background-networking", "--disable-component-update", "--disable-sync",
          "--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000"]  # fmt: skip
_PROBE = (
    "<script>window.addEventListener('error', e => document.title = 'JSERROR ' + e.message);"
    "window.addEventListener('load', () => { const i = [...document.images];"
    " document.title = 'IMAGES ' + i.filter(x => x.complete && x.naturalWidth > 0).length + '/' + i.length; });"
    "</script>"
)


def _report() -> dict:
    rng = np.random.default_rng(0)
    n = 400
    speaker = rng.integers(0, 40, n)
    group = np.where(speaker % 2 == 0, "<script>alert(1)</script>", 'a|b,"c"')
    truth = rng.choice(["yes", "no"], n)
    pred = np.where(rng.random(n) < np.where(speaker % 2 == 0, 0.7, 0.9), truth, rng.choice(["yes", "no"], n))
    frame = GroupMetricFrame(y_true=truth, y_pred=pred, sensitive_features=pd.DataFrame({"g": group}),
                             speakers=speaker, metric="accuracy", n_boot=200, n_perm=200)  # fmt: skip
    return build_report(command="score", frame=frame, inputs=[], warnings=[],
                        settings={"metric": "accuracy", "groups": ["g"], "min_group_size": 30, "bootstrap": 200,
                                  "permutations": 200, "seed": 0, "confidence": 0.95},
                        samples={"total": n, "scored": n, "failed": 0, "failures": []})  # fmt: skip


def _chromium(profile, *args):
    return subprocess.run([CHROMIUM, *_FLAGS, f"--user-data-dir={profile}", *args], capture_output=True, text=True,
                          timeout=120)  # fmt: skip


def test_report_renders_in_chromium_with_its_plots(tmp_path):
    html = HtmlFormat().format(_report())
    page = tmp_path / "report.html"
    page.write_text(html)
    probed = tmp_path / "probed.html"
    probed.write_text(html.replace("</body>", _PROBE + "</body>"))

    dom = _chromium(tmp_path / "profile-a", "--dump-dom", probed.as_uri())
    title = re.search(r"<title>(.*?)</title>", dom.stdout, re.S).group(1)
    assert title.startswith("IMAGES "), title
    loaded, total = map(int, title.split()[1].split("/"))
    assert total >= 1 and loaded == total
    assert "<script>alert(1)</script>" not in dom.stdout  # the hostile group name stayed text
    assert "CONSOLE" not in _chromium(tmp_path / "profile-b", "--dump-dom", page.as_uri()).stderr

    shot = tmp_path / "shot.png"
    _chromium(tmp_path / "profile-c", f"--screenshot={shot}", "--window-size=1200,1600", page.as_uri())
    pixels = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    plotted = (pixels[..., 2] - pixels[..., 0] > 60).sum()  # the blue bars of the per-group plot
    assert plotted > 5000
