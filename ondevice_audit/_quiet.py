"""Keep the libraries' own log lines off the console unless ``--debug``.

TensorFlow, absl, LiteRT/XNNPACK and the TFLite converter write from C++ straight to file descriptor 2, so no
Python logging setting reaches them ("INFO: Created TensorFlow Lite XNNPACK delegate for CPU.", "fully_quantize:
0, inference_type: 6 ...", oneDNN and CUDA notices). Around the few calls known to talk (TensorFlow's import, the
converter, interpreter creation) fd 2 goes to a temporary file; afterwards everything but the known noise is
written back, so a real message from the library is never lost. ``--debug`` sets ``ONDEVICE_AUDIT_DEBUG``
(inherited by worker processes) and then nothing is captured or turned down.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = [
    "DEBUG_ENV",
    "captured_stderr",
    "debug_enabled",
    "enable_debug",
    "quiet_environment",
    "quiet_native",
    "quiet_python_loggers",
]

DEBUG_ENV = "ONDEVICE_AUDIT_DEBUG"

_NOISE = re.compile(
    r"^("
    r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|[IWE]\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ [\w.+-]+:\d+\] "  # absl/glog lines: oneDNN, cudart, cuDNN factories
    r"|INFO: "  # TFLite's minimal logger: the XNNPACK delegate, "Initialized TensorFlow Lite runtime"
    r"|fully_quantize: \d"  # the TFLite quantizer, once per int8 conversion
    r"|Estimated count of arithmetic ops"
    r"|Summary on the non-converted ops:|-{5,}$| \* (Accepted|Non-Converted) "  # the converter's op summary
    r")"
)
_LOGGERS = ("tensorflow", "absl", "tf2onnx", "h5py", "onnx", "onnxruntime", "ai_edge_litert")


def debug_enabled() -> bool:
    return os.environ.get(DEBUG_ENV, "") not in ("", "0")


def enable_debug() -> None:
    """Let every library talk, in this process and the workers it starts."""
    os.environ[DEBUG_ENV] = "1"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0")


def quiet_environment() -> None:
    """Before TensorFlow's first import: its C++ log level (only honoured by parts of TF 2.21, hence the rest)."""
    if not debug_enabled():
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def quiet_python_loggers() -> None:
    """absl's and the converters' Python loggers to errors only (tf2onnx logs every node at INFO)."""
    if debug_enabled():
        return
    for name in _LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    absl_logging = sys.modules.get("absl.logging")
    if absl_logging is not None:
        absl_logging.set_verbosity(absl_logging.ERROR)


@contextmanager
def captured_stderr() -> Iterator[list[str]]:
    """Everything written to file descriptor 2 inside the block, as stripped non-empty lines (not shown)."""
    lines: list[str] = []
    sys.stderr.flush()
    with tempfile.TemporaryFile() as sink:
        saved = os.dup(2)
        os.dup2(sink.fileno(), 2)
        try:
            yield lines
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            lines.extend(line.rstrip() for line in sink.read().decode(errors="replace").splitlines() if line.strip())


@contextmanager
def quiet_native() -> Iterator[None]:
    """Drop the libraries' known noise written to fd 2 inside the block; write every other line back."""
    if debug_enabled():
        yield
        return
    quiet_python_loggers()
    lines: list[str] = []
    try:
        with captured_stderr() as lines:
            yield
    finally:
        kept = [line for line in lines if not _NOISE.match(line)]
        if kept:
            sys.stderr.write("\n".join(kept) + "\n")
            sys.stderr.flush()
