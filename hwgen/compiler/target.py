"""What a plan must fit: a device's capacity, a utilisation ceiling, a budget, a frame rate.

`Device` is the capacity of one FPGA (the board registry in hwgen.targets.boards names
them); `Target` is what the planner fits the accelerator into.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from hwgen.errors import HwgenError

if TYPE_CHECKING:  # a board is only read for its device and clock here
    from hwgen.targets.boards import Board


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
    spram: int = 0  # single-port RAMs (iCE40 UP5K SB_SPRAM256KA), no initial contents
    spram_bits: int = 0  # bits per single-port RAM


SPRAM_PER_DEVICE = {"iCE40UP5K": 4}
# What the board top (hwgen/targets/board_top.py) needs besides the accelerator, measured.
BOARD_TOP_RESERVE = {"lut": 600, "lc": 700, "ff": 200, "bram": 1}


def logic_cells(lut: int, ff: int) -> int:
    """iCE40 logic cells (a LUT4 and a flip-flop each) after nextpnr packs a design: a
    flip-flop shares a cell only with the LUT that alone feeds it, and most of ours hold
    stream words and shift registers fed by other flip-flops. Fitted to nextpnr 0.11 on
    digits-tiny (4,320 cells for 3,038 LUTs and 1,974 flip-flops): cells = LUTs + 65% of
    the flip-flops."""
    return lut + (13 * ff) // 20


@dataclass(frozen=True)
class ExternalMemory:
    """A board's external memory as the external-weight style sees it (measured figures:
    BENCHMARKS.md, "SDRAM path"): ``clock_mhz`` the controller's and the engine's clock,
    ``efficiency`` the share of the peak a sequential stream of bursts achieves, ``latency``
    the cycles from a request to its first beat, ``controller_lut``/``controller_ff`` the
    placed controller's size."""

    name: str
    beat_bits: int
    capacity_bytes: int
    clock_mhz: float
    efficiency: float
    latency: int
    controller_lut: int
    controller_ff: int


class ModelTooLarge(HwgenError):
    """The model does not fit the target even at its smallest folding."""


@dataclass(frozen=True)
class Target:
    """What the plan must fit: a device (under a LUT utilisation ceiling) and/or a budget,
    and optionally a frame rate to reach at `clock_mhz` (no faster than needed)."""

    device: Device | None = None
    max_util: float = 0.8
    fps: float | None = None
    clock_mhz: float = 12.0
    budget: dict[str, int] | None = None  # caps on "lut", "ff", "bram", "dsp"
    memory: ExternalMemory | None = None  # the board's memory for external weights
    # Left free for the board top around the accelerator (UART, frame buffer, self-test).
    reserve: dict[str, int] = field(default_factory=lambda: dict(BOARD_TOP_RESERVE))

    @classmethod
    def for_board(cls, board: Board, max_util: float | None = None,
                  fps: float | None = None) -> Target:
        """The board's device at its clock; `max_util` in percent, default the board's."""
        util = board.max_util if max_util is None else max_util
        if not 1 <= util <= 100:
            raise HwgenError(f"--max-util must be a percentage in 1..100, not {util}")
        return cls(device=board.device, max_util=util / 100, fps=fps, clock_mhz=board.clock_mhz,
                   memory=board.memory)

    @property
    def spram(self) -> int:
        """SB_SPRAM256KA primitives of the device (the iCE40 UP5K has four)."""
        return SPRAM_PER_DEVICE.get(self.device.name, 0) if self.device else 0

    @property
    def family(self) -> str:
        return self.device.family if self.device and self.device.family in ("ice40", "ecp5") \
            else "ecp5"

    def limits(self) -> dict[str, int]:
        caps: dict[str, int] = {}
        if self.device is not None:
            # The ceiling is on LUTs (hwgen issue 4: "default 80% LUT"); on an iCE40 it is
            # on logic cells too, where flip-flops count as well (issue 5: "<= 80% logic
            # cells"), and nextpnr needs that slack to place and route.
            caps = {"lut": int(self.device.lut * self.max_util), "ff": self.device.ff,
                    **({"lc": int(self.device.lut * self.max_util)}
                       if self.family == "ice40" else {}),
                    "bram": self.device.bram, "dsp": self.device.dsp,
                    "spram": self.spram}
        for key, value in (self.reserve if self.device is not None else {}).items():
            if key in caps:
                caps[key] = max(0, caps[key] - value)
        for key, value in (self.budget or {}).items():
            caps[key] = min(caps.get(key, value), value)
        return caps
