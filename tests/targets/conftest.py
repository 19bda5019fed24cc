"""Fixtures for targets: a keyword dataset of generated WAVs, tiny models in three files, a Python without
TensorFlow to play the device, and a real OpenSSH server on 127.0.0.1.

- Data: three labels as tones (``_unknown_`` is noise), 12 speakers in two genders, with more noise and a
  wider pitch spread for one gender so the groups differ. Clips are 0.5 s at 8 kHz to keep the front-end fast.
- Models: one small Keras MLP trained for a few epochs (good, not perfect), converted with
  ``tf.lite.TFLiteConverter`` (float32, and full int8 calibrated on the first eight clips, all of one female
  speaker, as a careless export would: int8 then flips male clips more) and ``tf2onnx``, each carrying its
  labels and front-end as ondevice-audit metadata.
- The device Python: ``python -m venv --without-pip`` plus a ``.pth`` naming a folder of symlinks to numpy,
  ai_edge_litert and onnxruntime only. The venv does not see the project's site-packages, so TensorFlow and
  ondevice_audit cannot be imported, as on a board with just a runtime installed.
- sshd: its own config, host key and authorized key in a temp folder, run as the current user with
  ``sshd -D -f CONFIG -p PORT``; the client gets a known_hosts holding that host key, so host-key checking
  stays on. ``SetEnv TMPDIR`` points remote temporary folders into a folder the tests can inspect.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from ondevice_audit.export.metadata import ModelMetadata, write_metadata
from ondevice_audit.frontend import AudioFrontendSpec, build_frontend

SPEC = AudioFrontendSpec(kind="mfcc", sample_rate=8000, clip_seconds=0.5, n_mels=20, n_mfcc=10)
LABELS = ["yes", "no", "_unknown_"]
_TONES = {"yes": 440.0, "no": 880.0}
SSHD = Path("/usr/sbin/sshd")


@dataclass(frozen=True)
class Dataset:
    manifest: Path
    frame: pd.DataFrame
    spec: AudioFrontendSpec = SPEC
    labels: tuple[str, ...] = tuple(LABELS)

    def inputs(self) -> np.ndarray:
        return build_frontend(self.spec).transform([self.manifest.parent / p for p in self.frame["path"]]).inputs


@dataclass(frozen=True)
class Models:
    f32: Path
    int8: Path
    onnx: Path


@pytest.fixture(scope="session")
def kws(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    root = tmp_path_factory.mktemp("kws")
    rng = np.random.default_rng(7)
    t = np.arange(round(SPEC.sample_rate * SPEC.clip_seconds)) / SPEC.sample_rate
    rows = []
    for s in range(12):
        gender = "female" if s % 2 == 0 else "male"
        noise, spread = (0.6, 0.1) if gender == "female" else (1.0, 0.3)
        pitch = 1 + rng.normal(0, spread)
        for label in LABELS:
            for take in range(4):
                if label == "_unknown_":
                    wave = rng.normal(0, 0.3, len(t))
                else:
                    wave = 0.4 * np.sin(2 * np.pi * _TONES[label] * pitch * (1 + rng.normal(0, spread)) * t)
                wave = (wave + rng.normal(0, noise, len(t))).astype(np.float32)
                path = f"spk{s}/{label}-{take}.wav"
                (root / path).parent.mkdir(exist_ok=True)
                sf.write(root / path, np.clip(wave, -1, 1), SPEC.sample_rate)
                rows.append({"path": path, "label": label, "gender": gender, "speaker": f"spk{s}"})
    frame = pd.DataFrame(rows)
    frame.to_csv(root / "manifest.csv", index=False)
    return Dataset(root / "manifest.csv", frame)


@pytest.fixture(scope="session")
def models(kws: Dataset, tmp_path_factory: pytest.TempPathFactory) -> Models:
    from ondevice_audit import _tensorflow

    tf, keras = _tensorflow.tensorflow(), _tensorflow.keras()
    import tf2onnx

    out = tmp_path_factory.mktemp("models")
    features = kws.inputs()
    targets = kws.frame["label"].map({name: i for i, name in enumerate(LABELS)}).to_numpy()
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.layers.Input(SPEC.input_shape),
        keras.layers.Rescaling(0.01),  # MFCCs run to the hundreds; keep the logits, and so the margins, small
        keras.layers.Flatten(),
        keras.layers.Dense(16, activation="relu"),
        keras.layers.Dense(len(LABELS), activation="softmax"),
    ])  # fmt: skip
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    model.fit(features, targets, epochs=4, batch_size=32, verbose=0)

    f32, int8, onnx = out / "kws-f32.tflite", out / "kws-int8.tflite", out / "kws.onnx"
    f32.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([row[None]] for row in features[:8])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    int8.write_bytes(converter.convert())
    signature = [tf.TensorSpec((None, *SPEC.input_shape), tf.float32, name="input")]
    tf2onnx.convert.from_keras(model, input_signature=signature, opset=17, output_path=str(onnx))
    for path in (f32, int8, onnx):
        write_metadata(path, ModelMetadata(labels=LABELS, frontend=SPEC))
    return Models(f32, int8, onnx)


def _device_python(root: Path, packages: tuple[str, ...]) -> Path:
    """A venv whose only third-party packages are ``packages`` (and their dist-info), none of them TensorFlow."""
    site = Path(np.__file__).resolve().parent.parent
    shim = root / "shim"
    shim.mkdir(parents=True)
    for package in packages:
        for entry in site.glob(f"{package}*"):
            (shim / entry.name).symlink_to(entry)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root / "venv")], check=True)
    python = root / "venv" / "bin" / "python"
    purelib = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                             check=True, capture_output=True, text=True).stdout.strip()  # fmt: skip
    (Path(purelib) / "device-shim.pth").write_text(f"{shim}\n")
    probe = "import importlib.util as u; print(u.find_spec('tensorflow'), u.find_spec('ondevice_audit'))"
    # as over ssh, a checkout on PYTHONPATH stays on this side
    clean = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([python, "-c", probe], check=True, capture_output=True, text=True, cwd=root, env=clean)
    found = done.stdout
    assert found.split() == ["None", "None"], "the device Python must not see TensorFlow or ondevice_audit"
    return python


@pytest.fixture(scope="session")
def device_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Python with numpy, ai_edge_litert and onnxruntime only."""
    return _device_python(tmp_path_factory.mktemp("device"), ("numpy", "ai_edge_litert", "onnxruntime"))


@pytest.fixture(scope="session")
def micro_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Python with numpy, onnxruntime and pymicro-features (the TFLite Micro audio front-end) only."""
    packages = ("numpy", "onnxruntime", "pymicro_features", "micro_features_cpp")
    return _device_python(tmp_path_factory.mktemp("micro-device"), packages)


@pytest.fixture(scope="session")
def litert_only_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Python with numpy and ai_edge_litert only: a board that cannot run ONNX."""
    return _device_python(tmp_path_factory.mktemp("litert-device"), ("numpy", "ai_edge_litert"))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class SshServer:
    """One sshd on 127.0.0.1 that tests can stop, restart on the same port, or cut connections of."""

    def __init__(self, root: Path):
        self.root = root
        self.remote_tmp = root / "remote-tmp"
        self.remote_tmp.mkdir()
        self.port = _free_port()
        self.user = (
            os.environ.get("USER") or subprocess.run(["id", "-un"], capture_output=True, text=True).stdout.strip()
        )
        for name in ("host_key", "client_key"):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(root / name)], check=True)
        (root / "authorized_keys").write_text((root / "client_key.pub").read_text())
        host_key = (root / "host_key.pub").read_text().split()
        self.known_hosts = root / "known_hosts"
        self.known_hosts.write_text(f"[127.0.0.1]:{self.port} {host_key[0]} {host_key[1]}\n")
        self.config = root / "sshd_config"
        self.config.write_text(
            "\n".join([
                f"HostKey {root / 'host_key'}",
                "ListenAddress 127.0.0.1",
                f"AuthorizedKeysFile {root / 'authorized_keys'}",
                "PubkeyAuthentication yes",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "PermitRootLogin yes",
                "StrictModes no",
                "UsePAM no",
                "PidFile none",
                f"AllowUsers {self.user}",
                f"SetEnv TMPDIR={self.remote_tmp}",
                "Subsystem sftp internal-sftp",
                "LogLevel ERROR",
                "",
            ])
        )  # fmt: skip
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def options(self) -> list[str]:
        """The client's --ssh-option values: our known_hosts (host keys checked) and our key."""
        return [
            f"UserKnownHostsFile={self.known_hosts}",
            f"IdentityFile={self.root / 'client_key'}",
            "IdentitiesOnly=yes",
        ]

    def url(self, python: Path | str | None = None) -> str:
        return f"ssh://{self.user}@127.0.0.1:{self.port}" + (f"?python={python}" if python else "")

    def start(self) -> None:
        if os.geteuid() == 0:
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation folder, as root
        self.process = subprocess.Popen(
            [str(SSHD), "-D", "-f", str(self.config), "-p", str(self.port), "-E", str(self.root / "sshd.log")]
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"sshd exited: {(self.root / 'sshd.log').read_text()}")
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise RuntimeError("sshd did not start listening")

    def connection_pids(self) -> list[int]:
        """The per-connection sshd processes: children of our listener."""
        if self.process is None:
            return []
        children = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == self.process.pid:
                children.append(int(stat.parent.name))
        return children

    def cut_connections(self) -> int:
        """Kill every open connection (their sshd processes); the listener keeps accepting new ones."""
        pids = self.connection_pids()
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                continue
        return len(pids)

    def stop(self) -> None:
        """Drop the server: connections first, then the listener."""
        if self.process is None:
            return
        self.cut_connections()
        self.process.kill()
        self.process.wait()
        self.process = None

    def remote_folders(self) -> list[Path]:
        return sorted(self.remote_tmp.glob("ondevice-audit.*"))


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    if not SSHD.exists():
        pytest.skip("openssh-server is not installed (make system-deps installs it)")
    server = SshServer(tmp_path_factory.mktemp("sshd"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def server(sshd: SshServer) -> Iterator[SshServer]:
    """The session's sshd, running, with no remote folder left over before or after a test."""
    if sshd.process is None:
        sshd.start()
    assert sshd.remote_folders() == []
    yield sshd
    if sshd.process is None:
        sshd.start()
    assert sshd.remote_folders() == [], "a remote temporary folder was left behind"
