"""The ``ondevice-audit`` command line: argument parsing and error mapping only.

Each command lives in its own module and registers itself on ``app`` (``_app.py``) when imported; the work
happens in the library. Options shared by several commands are declared once (``_options.py``,
``_gate_options.py``), mostly as groups built from the library's own option dataclasses (``_params.py``).
"""

from __future__ import annotations

from ondevice_audit.cli import audit, datasets, demo, explain, export, gate, report, score, sweep, targets, train  # noqa: F401
from ondevice_audit.cli._app import app

__all__ = ["app", "main"]


def main() -> None:
    app()
