"""Microcontroller budgets: does a TFLite variant fit a board's RAM and flash when TFLM runs it?

A model on a microcontroller needs RAM for TFLM's tensor arena and flash for the .tflite flatbuffer. Neither
may take the whole chip: the rest of the firmware needs RAM (stack, heap, audio and feature buffers, RTOS,
radio stacks) and flash (application, TFLM's kernels, bootloader). ``fits`` therefore keeps a *headroom*
share of each budget for the firmware (default 25 %) and checks the arena and the file against the rest.
Board presets and their sources: ``docs/mcu-boards.md``.

Sizes: ``KB``/``MB`` are decimal (1000, 1000²) and ``KiB``/``MiB`` binary (1024, 1024²), as in IEC 80000-13.
Datasheets often write "256 KB" for 256 KiB; the presets use the binary values the chips have.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ondevice_audit.errors import UsageError

__all__ = [
    "BOARDS",
    "DEFAULT_FLASH_HEADROOM",
    "DEFAULT_RAM_HEADROOM",
    "Board",
    "DeploymentSettings",
    "FitResult",
    "MCUBudget",
    "fits",
    "format_size",
    "parse_size",
    "resolve_budget",
]

DEFAULT_RAM_HEADROOM = 0.25
"""Share of RAM kept for the rest of the firmware: the arena may use the other 75 %. A rule of thumb, not a
measurement: an Arduino (Mbed OS) or ESP-IDF build with audio capture and MFCCs uses tens of KiB of RAM."""
DEFAULT_FLASH_HEADROOM = 0.25
"""Share of flash kept for code: application, TFLM's kernels and runtime, RTOS or SDK, bootloader."""

_UNITS = {"": 1, "b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3, "kib": 1024, "mib": 1024**2, "gib": 1024**3}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$", re.IGNORECASE)


def parse_size(text: str) -> int:
    """``256KiB`` -> 262144, ``512KB`` -> 512000, ``1.5MiB``, ``4096`` (bytes). KB is 1000 bytes, KiB 1024."""
    match = _SIZE.match(text)
    unit = match.group(2).lower() if match else ""
    if not match or unit not in _UNITS:
        raise UsageError(
            f"cannot read size {text!r}: use a number with B, KB, MB (x1000) or KiB, MiB (x1024), e.g. 256KiB"
        )
    size = float(match.group(1)) * _UNITS[unit]
    if size < 1 or size != int(size):
        raise UsageError(f"size {text!r} is not a positive whole number of bytes")
    return int(size)


def format_size(size: int) -> str:
    """Bytes as KiB or MiB with one decimal, the way the presets are written."""
    if size >= 1024**2:
        return f"{size / 1024**2:.1f} MiB"
    if size >= 1024:
        return f"{size / 1024:.1f} KiB"
    return f"{size} B"


@dataclass(frozen=True)
class Board:
    name: str
    """Preset key for ``--board``."""
    title: str
    ram_bytes: int
    """On-chip SRAM the application can address (external PSRAM/SDRAM not counted)."""
    flash_bytes: int
    """Flash the firmware and model live in (on-chip, or the board's QSPI chip when the MCU has none)."""
    note: str


BOARDS: dict[str, Board] = {
    board.name: board
    for board in (
        Board(
            "nano33ble",
            "Arduino Nano 33 BLE Sense (nRF52840)",
            256 * 1024,
            1024 * 1024,
            "nRF52840: 256 KiB SRAM, 1 MiB on-chip flash; a board TFLM's micro_speech example has long targeted",
        ),
        Board(
            "esp32s3",
            "ESP32-S3-DevKitC-1-N8 (ESP32-S3-WROOM-1-N8)",
            512 * 1024,
            8 * 1024 * 1024,
            "512 KiB on-chip SRAM (part of it is taken by caches and ESP-IDF), 8 MiB quad-SPI flash, no PSRAM; "
            "DevKitC-1 variants with more flash or PSRAM need --mcu-flash/--mcu-ram",
        ),
        Board(
            "pico",
            "Raspberry Pi Pico (RP2040)",
            264 * 1024,
            2 * 1024 * 1024,
            "RP2040: 264 KiB SRAM in six banks, no on-chip flash; the board's 2 MiB QSPI flash (execute in place)",
        ),
        Board(
            "stm32f746disco",
            "STM32F746G-DISCO (STM32F746NG)",
            320 * 1024,
            1024 * 1024,
            "STM32F746NG: 320 KiB SRAM (incl. 64 KiB DTCM; ITCM and backup SRAM not counted), 1 MiB on-chip "
            "flash; the board's SDRAM and QSPI flash not counted",
        ),
    )
}
"""Common boards for keyword spotting; sources in ``docs/mcu-boards.md``."""


@dataclass(frozen=True)
class MCUBudget:
    ram_bytes: int | None
    """RAM the model may share with the firmware; None: not checked."""
    flash_bytes: int | None
    """Flash the model may share with the firmware; None: not checked."""
    label: str = "custom budget"
    """Board title or 'custom budget', for reports."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def resolve_budget(board: str | None = None, ram: str | None = None, flash: str | None = None) -> MCUBudget | None:
    """The budget ``--board``, ``--mcu-ram`` and ``--mcu-flash`` describe: sizes given override the board's.

    None when none is given. Only RAM or only flash (without a board) leaves the other unchecked.
    """
    if board is None and ram is None and flash is None:
        return None
    preset = None
    if board is not None:
        preset = BOARDS.get(board.strip().lower())
        if preset is None:
            raise UsageError(
                f"unknown board {board!r}; choose one of {', '.join(BOARDS)} or give --mcu-ram/--mcu-flash"
            )
    ram_bytes = parse_size(ram) if ram is not None else (preset.ram_bytes if preset else None)
    flash_bytes = parse_size(flash) if flash is not None else (preset.flash_bytes if preset else None)
    label = preset.title if preset else "custom budget"
    if preset and (ram is not None or flash is not None):
        label += " (sizes overridden)"
    return MCUBudget(ram_bytes, flash_bytes, label)


@dataclass(frozen=True)
class DeploymentSettings:
    """A microcontroller budget, as written: a board preset and/or sizes (``256KiB``) overriding it."""

    board: str | None = None
    mcu_ram: str | None = None
    mcu_flash: str | None = None

    def budget(self) -> MCUBudget | None:
        return resolve_budget(self.board, self.mcu_ram, self.mcu_flash)


@dataclass(frozen=True)
class FitResult:
    arena_bytes: int | None
    """TFLM's tensor arena for the model; None when TFLM cannot run it (then it fits no board)."""
    flash_bytes: int
    """The .tflite file's size."""
    ram_ok: bool
    flash_ok: bool
    reason: str
    """One line: what fits where, or what does not and by how much."""
    ram_limit_bytes: int | None
    """What the arena may use: the RAM budget less the headroom (None: RAM not checked)."""
    flash_limit_bytes: int | None
    budget: MCUBudget

    @property
    def ok(self) -> bool:
        return self.ram_ok and self.flash_ok

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


def _check_headroom(name: str, share: float) -> None:
    if not 0 <= share < 1:
        raise UsageError(f"{name} headroom must be a share of the budget in [0, 1), got {share}")


def fits(
    model_path: Path,
    budget: MCUBudget,
    ram_headroom: float = DEFAULT_RAM_HEADROOM,
    flash_headroom: float = DEFAULT_FLASH_HEADROOM,
) -> FitResult:
    """Whether ``model_path`` fits ``budget`` on TFLM, keeping ``*_headroom`` of each for the firmware.

    The arena is measured by loading the model on TFLM (``runtimes.tflm.footprint``). A model TFLM cannot
    run (missing op, f16 or dynamic-range file) does not fit: ``arena_bytes`` is None and ``reason`` says why.
    """
    from ondevice_audit.runtimes.interface import ModelLoadError
    from ondevice_audit.runtimes.tflm import footprint

    _check_headroom("RAM", ram_headroom)
    _check_headroom("flash", flash_headroom)
    if not model_path.is_file():
        raise UsageError(f"model not found: {model_path}; check the path")
    flash = model_path.stat().st_size
    ram_limit = None if budget.ram_bytes is None else int(budget.ram_bytes * (1 - ram_headroom))
    flash_limit = None if budget.flash_bytes is None else int(budget.flash_bytes * (1 - flash_headroom))
    flash_ok = flash_limit is None or flash <= flash_limit
    arena: int | None = None
    parts = []
    try:
        arena = footprint(model_path).arena_bytes
    except ModelLoadError as exc:
        parts.append(f"TFLM cannot run it: {exc}")
    if arena is not None and ram_limit is not None:
        verb = "fits in" if arena <= ram_limit else "exceeds"
        parts.append(
            f"arena {format_size(arena)} {verb} {format_size(ram_limit)} of {format_size(budget.ram_bytes or 0)} RAM"
        )
    if flash_limit is not None:
        verb = "fits in" if flash_ok else "exceeds"
        parts.append(
            f"model {format_size(flash)} {verb} {format_size(flash_limit)} of "
            f"{format_size(budget.flash_bytes or 0)} flash"
        )
    headroom = f"{ram_headroom:.0%} of RAM and {flash_headroom:.0%} of flash kept for the firmware"
    return FitResult(
        arena_bytes=arena,
        flash_bytes=flash,
        ram_ok=arena is not None and (ram_limit is None or arena <= ram_limit),
        flash_ok=flash_ok,
        reason=f"{budget.label}: {'; '.join(parts)} ({headroom})",
        ram_limit_bytes=ram_limit,
        flash_limit_bytes=flash_limit,
        budget=budget,
    )
