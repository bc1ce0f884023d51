"""A cycle-level model of an SDR SDRAM chip that raises at the first protocol or timing violation.

`SDRAMChip.edge` takes what the chip sees at one rising edge of its clock (command
pins, dq, dm) and returns the word it drives on dq for the next edge's sampling, or
None. It checks the power-up wait and the init sequence, the bank state
(ACT/READ/WRITE/PRE/REF/MRS), tRCD, tRP, tRAS (min and max), tRC, tRRD, tRFC,
tWR, tMRD, the refresh rate and data-bus turnaround, and refuses to return a word
that was never written. Pure Python: the cocotb glue is in sim/cocotb_tests/sdram.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


class SDRAMViolation(AssertionError):
    """The controller broke the chip's protocol or timing; the message says what and when."""


@dataclass(frozen=True)
class SDRAMTimings:
    """Datasheet timings in ns (tMRD in clocks). Default: Micron MT48LC16M16A2-75 (the
    ULX3S-85F's chip; also what LiteDRAM's MT48LC16M16 module assumes)."""

    tRCD: float = 20.0
    tRP: float = 20.0
    tRAS: float = 44.0
    tRAS_max: float = 120_000.0
    tRC: float = 66.0
    tRFC: float = 66.0
    tRRD: float = 15.0
    tWR: float = 15.0
    tMRD_clk: int = 2
    tREFI: float = 64e6 / 8192  # 8192 refreshes per 64 ms
    max_postponed: int = 8  # refreshes that may be owed at once
    power_up: float = 100_000.0  # stable clock, NOPs only, before the first command
    tAC: dict = field(default_factory=lambda: {2: 6.0, 3: 5.4})  # clock to data out, per CL


@dataclass(frozen=True)
class SDRAMGeometry:
    banks: int = 4
    rows: int = 8192
    cols: int = 512
    width: int = 16  # MT48LC16M16A2: 16M x 16 (32 MB); AS4C32M16: cols 1024

    @property
    def words(self) -> int:
        return self.banks * self.rows * self.cols


CMD_NAMES = {(0, 1, 1): "ACT", (1, 0, 1): "READ", (1, 0, 0): "WRITE", (0, 1, 0): "PRE",
             (0, 0, 1): "REF", (0, 0, 0): "MRS", (1, 1, 0): "BST", (1, 1, 1): "NOP"}


class SDRAMChip:
    """The chip's state, advanced one clock edge at a time (`edge`)."""

    def __init__(self, period_ns: float, geometry: SDRAMGeometry = SDRAMGeometry(),
                 timings: SDRAMTimings = SDRAMTimings()):
        self.period, self.g, self.t = period_ns, geometry, timings
        self.k = -1  # edge index
        self.open_row: list[int | None] = [None] * geometry.banks
        self.last_act = [None] * geometry.banks
        self.last_pre = [None] * geometry.banks
        self.last_write = [None] * geometry.banks
        self.last_act_any = None
        self.last_ref = None
        self.last_mrs = None
        self.mode: int | None = None
        self.precharged_all = False
        self.init_refreshes = 0
        self.first_edge_cke: int | None = None
        self.refresh_debt_start: int | None = None
        self.refreshes = 0
        self.data: dict[tuple[int, int, int], int] = {}
        self.read_pipe: dict[int, int] = {}  # edge -> word to be driven for sampling there
        self.counts = dict.fromkeys(CMD_NAMES.values(), 0)

    # -- helpers ---------------------------------------------------------------
    def _fail(self, msg: str):
        raise SDRAMViolation(f"SDRAM edge {self.k} ({self.k * self.period / 1000:.3f} us): {msg}")

    def _since(self, k: int | None) -> float:
        return float("inf") if k is None else (self.k - k) * self.period

    def _need(self, what: str, k: int | None, ns: float):
        if self._since(k) < ns:
            self._fail(f"{what}: {self._since(k):.1f} ns, needs {ns} ns")

    @property
    def cl(self) -> int:
        return (self.mode >> 4) & 7

    @property
    def initialised(self) -> bool:
        return self.precharged_all and self.init_refreshes >= 2 and self.mode is not None

    def _check_mode(self):
        mode = self.mode
        if mode & 7 != 0 or (mode >> 3) & 1:
            self._fail(f"mode {mode:#x}: burst length must be 1, sequential (LiteDRAM's BL=1)")
        if self.cl not in (2, 3):
            self._fail(f"mode {mode:#x}: CAS latency {self.cl} is reserved")

    # -- one clock edge --------------------------------------------------------
    def edge(self, *, cke: int, cs_n: int, ras_n: int, cas_n: int, we_n: int, ba: int, a: int,
             dq: int | None, dm: int) -> int | None:
        """The chip's next clock edge, with the pin values it samples there; returns the
        word it drives on dq from this edge (+ tAC) on, for the controller to sample half
        a period later (None: dq released).

        The chip's clock is the controller's inverted (as on the board, where the SDRAM
        clock is shifted 180 degrees so the chip samples mid-cycle): a READ at edge k
        puts its word out tAC after edge k + CL - 1, and the controller's rising edge
        half a period after that edge latches it, which needs tAC < period / 2.
        """
        self.k += 1
        k = self.k
        if cke and self.first_edge_cke is None:
            self.first_edge_cke = k
        self._refresh_check()
        for bank, row in enumerate(self.open_row):
            if row is not None and self._since(self.last_act[bank]) > self.t.tRAS_max:
                self._fail(f"bank {bank} row {row} open longer than tRAS max")
        out = self.read_pipe.pop(k, None)
        driving = out is not None
        name = "NOP" if cs_n else CMD_NAMES[(ras_n, cas_n, we_n)]
        if name != "NOP" and not cke:
            self._fail(f"{name} with CKE low")
        if name != "NOP":
            self.counts[name] += 1
            if self.first_edge_cke is None or self._since(self.first_edge_cke) < self.t.power_up:
                self._fail(f"{name} before the {self.t.power_up / 1000:.0f} us power-up wait")
            if name not in ("PRE", "REF", "MRS") and not self.initialised:
                self._fail(f"{name} before the init sequence (PRE all, 2 x REF, MRS) finished")
            getattr(self, f"_{name.lower()}")(ba, a, dq, dm, driving)
        if self.last_mrs is not None and name != "MRS" and name != "NOP":
            self._need(f"{name} after MRS (tMRD)", self.last_mrs, self.t.tMRD_clk * self.period)
        return out

    def _refresh_check(self):
        if self.refresh_debt_start is None:
            return
        owed = int(self._since(self.refresh_debt_start) // self.t.tREFI) - self.refreshes
        if owed > self.t.max_postponed:
            self._fail(f"refresh starved: {owed} refreshes owed (at most "
                       f"{self.t.max_postponed} may be postponed)")

    def _bank_ok(self, ba: int):
        if not 0 <= ba < self.g.banks:
            self._fail(f"bank {ba} does not exist")

    def _act(self, ba, a, dq, dm, driving):
        self._bank_ok(ba)
        if self.open_row[ba] is not None:
            self._fail(f"ACT bank {ba}: row {self.open_row[ba]} is still open")
        if a >= self.g.rows:
            self._fail(f"ACT bank {ba}: row {a} does not exist")
        self._need(f"ACT bank {ba} after PRE (tRP)", self.last_pre[ba], self.t.tRP)
        self._need(f"ACT bank {ba} after ACT (tRC)", self.last_act[ba], self.t.tRC)
        self._need("ACT after ACT of another bank (tRRD)", self.last_act_any, self.t.tRRD)
        self._need("ACT after REF (tRFC)", self.last_ref, self.t.tRFC)
        self.open_row[ba] = a
        self.last_act[ba] = self.last_act_any = self.k

    def _column(self, what: str, ba: int, a: int) -> tuple[int, int, int]:
        self._bank_ok(ba)
        if self.open_row[ba] is None:
            self._fail(f"{what} bank {ba}: no row is open")
        self._need(f"{what} bank {ba} after ACT (tRCD)", self.last_act[ba], self.t.tRCD)
        col = a & 0x3FF  # A0..A9 (A10 is auto-precharge)
        if col >= self.g.cols:
            self._fail(f"{what} bank {ba}: column {col} does not exist")
        return ba, self.open_row[ba], col

    def _read(self, ba, a, dq, dm, driving):
        key = self._column("READ", ba, a)
        if key not in self.data:
            self._fail(f"READ of bank {key[0]} row {key[1]} column {key[2]}, never written")
        # Valid tAC after chip edge k + CL - 1: the controller samples it half a period
        # later (the chip's clock is the controller's inverted; see `edge`).
        self.read_pipe[self.k + self.cl - 1] = self.data[key]
        if (a >> 10) & 1:  # auto-precharge: starts when the burst (of 1) is done
            self._auto_precharge(ba, self.k + 1)

    def _write(self, ba, a, dq, dm, driving):
        key = self._column("WRITE", ba, a)
        if driving or self.read_pipe:
            self._fail("WRITE while read data is on (or due on) dq: bus conflict")
        if dq is None:
            self._fail("WRITE with dq not driven by the controller")
        old = self.data.get(key)
        if dm and old is None:
            self._fail(f"masked WRITE (dm {dm:#x}) to a never-written word")
        word = dq
        for byte in range(self.g.width // 8):
            if (dm >> byte) & 1:
                mask = 0xFF << (8 * byte)
                word = (word & ~mask) | (old & mask)
        self.data[key] = word
        self.last_write[ba] = self.k
        if (a >> 10) & 1:  # auto-precharge: starts tWR after the data
            self._auto_precharge(ba, self.k + math.ceil(self.t.tWR / self.period))

    def _auto_precharge(self, ba: int, at: int):
        """The bank closes itself at edge `at` (no tRAS lockout on SDR: tRAS is checked)."""
        held = (at - self.last_act[ba]) * self.period
        if held < self.t.tRAS:
            self._fail(f"auto-precharge of bank {ba} {held:.1f} ns after ACT, needs tRAS "
                       f"{self.t.tRAS} ns")
        self.open_row[ba] = None
        self.last_pre[ba] = at

    def _pre(self, ba, a, dq, dm, driving):
        banks = range(self.g.banks) if (a >> 10) & 1 else [ba]
        for b in banks:
            self._bank_ok(b)
            if self.open_row[b] is not None:
                self._need(f"PRE bank {b} after ACT (tRAS)", self.last_act[b], self.t.tRAS)
                self._need(f"PRE bank {b} after WRITE (tWR)", self.last_write[b], self.t.tWR)
            self.open_row[b] = None
            self.last_pre[b] = self.k
        if len(banks) == self.g.banks:
            self.precharged_all = True

    def _all_idle(self, what: str):
        for b, row in enumerate(self.open_row):
            if row is not None:
                self._fail(f"{what} with bank {b} row {row} open")
            self._need(f"{what} after PRE of bank {b} (tRP)", self.last_pre[b], self.t.tRP)

    def _ref(self, ba, a, dq, dm, driving):
        self._all_idle("REF")
        self._need("REF after REF (tRFC)", self.last_ref, self.t.tRFC)
        self.last_ref = self.k
        if self.mode is None:
            if not self.precharged_all:
                self._fail("REF before the init sequence's PRE all")
            self.init_refreshes += 1
        self.refreshes += 1

    def _mrs(self, ba, a, dq, dm, driving):
        self._all_idle("MRS")
        self._need("MRS after REF (tRFC)", self.last_ref, self.t.tRFC)
        self.last_mrs = self.k
        mode = a | (ba << 13)
        if (mode >> 7) & 3:
            # LiteDRAM's sequence first writes A8 ("reset DLL", a DDR habit; a reserved
            # operating mode on SDR) and then the real mode: a reserved mode is remembered
            # as "no mode", so opening a row before the real one is an error.
            self.mode = None
            return
        self.mode = mode
        self._check_mode()
        if self.t.tAC[self.cl] >= self.period / 2:
            self._fail(f"CL {self.cl}: tAC {self.t.tAC[self.cl]} ns leaves no setup before the "
                       f"controller samples, half a period ({self.period / 2} ns) later")
        if self.initialised and self.refresh_debt_start is None:
            self.refresh_debt_start = self.k
            self.refreshes = 0

    def _bst(self, ba, a, dq, dm, driving):
        self._fail("BURST TERMINATE is not expected with burst length 1")
