"""The window scheduler's cycle model and closed form (pure Python), the shared checks of
the 3x3 window blocks, and their resource estimates against Yosys (slow). The RTL is checked
against the model in the block tests."""

import itertools
import math
import random

import numpy as np
import pytest
from amaranth import Module, Shape
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from rtl_templates.dwconv import DWConv3x3
from rtl_templates.line_buffer import LineBuffer
from rtl_templates.pixel_conv import PixelConv3x3
from rtl_templates.spike_conv import SpikeConv3x3
from rtl_templates.timing import run_single
from rtl_templates.window import WindowGeometry, WindowModel, raster_tokens
from rtl_templates.window_block import check_accumulator, int_array
from sim.block_sim import make_pattern


def _free_flow(geo: WindowGeometry, images: int) -> list[int]:
    n = images * geo.tokens
    return run_single(WindowModel(geo), {"i": n * geo.time_steps},
                      {"o": n * geo.groups * geo.time_steps})["o"]


@pytest.mark.parametrize("height,width", [(1, 1), (1, 4), (4, 1), (2, 2), (3, 5), (5, 3), (4, 4)])
def test_closed_form_equals_model_in_free_flow(height, width):
    for T, G, S, images, stages in itertools.product([1, 2, 5], [1, 3], [1, 2], [1, 3], [1, 4]):
        geo = WindowGeometry(height, width, T, G, S, stages)
        fired = _free_flow(geo, images)
        assert fired[-1] == geo.cycles(images), (T, G, S, images, stages)
        assert fired[0] == geo.first_output_cycle()
        # After the start-up the engine never waits: one beat per 9*S cycles.
        assert np.all(np.diff(fired) == geo.steps_per_beat)


def test_start_up_and_per_token_figures():
    geo = WindowGeometry(4, 4, 4, 8, 1)  # digits-tiny RPE conv 8 -> 32 with pe = 4, simd = 8
    assert geo.slots == 16 and geo.depth == 64
    assert geo.steps_per_token == 9 * 8 * 4
    assert geo.startup_cycles == 4 * (4 + 2)  # tokens 0 .. W+1 in, T beats each
    assert geo.cycles(2) == 24 + 2 * 16 * 288 + 2
    assert WindowGeometry(1, 6, 2, 1, 1).startup_cycles == 2 * 2  # one row: only (0, 1) ahead
    assert WindowGeometry(1, 1, 3, 1, 1).startup_cycles == 3


def test_window_reach():
    geo = WindowGeometry(3, 5, 1, 1, 1)
    assert [geo.ahead(0, x) for x in range(5)] == [6, 6, 6, 6, 5]
    assert [geo.ahead(2, x) for x in range(5)] == [1, 1, 1, 1, 0]
    # Row 0 stays whole (row 1 reads it); later rows keep from (y-1, x-1) on.
    assert [geo.behind(0, x) for x in range(5)] == [0, 1, 2, 3, 4]
    assert [geo.behind(1, x) for x in range(5)] == [5, 6, 6, 6, 6]
    assert [geo.tap_offset(k) for k in range(9)] == [-6, -5, -4, -1, 0, 1, 4, 5, 6]
    # Everything a window can need fits, with room for one more token.
    for w in range(1, 40):
        assert WindowGeometry(3, w, 1, 1, 1).slots >= 2 * w + 4


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_model_skip_equals_stepping(seed):
    """The model's idle-stretch jumps (quiet/skip) give the same cycles as ticking every cycle."""

    class Stepping(WindowModel):
        def quiet(self):
            return 1

    rng = random.Random(seed)
    geo = WindowGeometry(rng.randint(1, 4), rng.randint(1, 4), rng.randint(1, 4),
                         rng.randint(1, 3), rng.randint(1, 3), rng.randint(1, 6))
    images = 2
    n = images * geo.tokens
    env = {"idle": {"i": make_pattern(rng, 0.5)}, "stall": {"o": make_pattern(rng, 0.6)}}
    counts = ({"i": n * geo.time_steps}, {"o": n * geo.groups * geo.time_steps})
    fast = run_single(WindowModel(geo), *counts, **env)
    slow = run_single(Stepping(geo), *counts, **env)
    assert fast == slow
    assert fast["o"][-1] > geo.cycles(images)  # the gaps and stalls did cost cycles


def test_raster_tokens():
    x = np.arange(2 * 3 * 4 * 2 * 5).reshape(2, 3, 4, 2, 5)  # [images, steps, C, H, W]
    tok = raster_tokens(x)
    assert tok.shape == (2 * 2 * 5, 3, 4)
    assert tok[1 * 10 + 1 * 5 + 3, 2, 1] == x[1, 2, 1, 1, 3]  # image 1, y 1, x 3, t 2, c 1
    with pytest.raises(ValueError, match="must be"):
        raster_tokens(x[0])


def test_parameter_checks():
    with pytest.raises(TypeError, match="width must be an integer >= 1, not 0"):
        LineBuffer(height=2, width=0, word_width=4, time_steps=1, groups=1, slices=1)
    with pytest.raises(TypeError, match="must hold integers"):
        int_array("weight", [[0.5, 1.0]], (1, 2))
    with pytest.raises(ValueError, match=r"weight must have shape \[2, 2\], not \[1, 2\]"):
        int_array("weight", [[1, 2]], (2, 2))
    with pytest.raises(ValueError, match="weight must fit signed 4 bits, not 8"):
        int_array("weight", [[1, 8]], (1, 2), bits=4)
    assert int_array("bias", np.array([3, -4]), (2,)).tolist() == [3, -4]


def test_accumulator_bound():
    w = int_array("w", [[[7, -8, 0]], [[1, 1, 1]]], (2, 1, 3))
    check_accumulator(4, np.array([0, 0]), w, 1)  # [-8, 7] and [0, 3] fit signed 4 bits
    with pytest.raises(ValueError, match=r"acc_bits must be >= 12 to hold \[-2040, 1785\], not 8"):
        check_accumulator(8, np.array([0, 0]), w, 255)
    with pytest.raises(ValueError, match=r"acc_bits must be >= 5 to hold \[-8, 9\]"):
        check_accumulator(4, np.array([0, 6]), w, 1)


# --------------------------------------------------------------------------- estimate vs Yosys

class _PlainPorts(wiring.Component):
    """The block behind plain unsigned stream payloads. Yosys 0.70's ABC9 can fail
    (issue YosysHQ/yosys#4349: `count_id(wire->name) == 0`) on a top-level port `o__payload`
    beside Amaranth's field alias `o__payload[0]`; inside the wrapper the alias is harmless."""

    def __init__(self, dut):
        self.dut = dut
        super().__init__({"i": In(stream.Signature(Shape.cast(dut.i.payload.shape()).width)),
                          "o": Out(stream.Signature(Shape.cast(dut.o.payload.shape()).width))})

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = dut = self.dut
        m.d.comb += [dut.i.valid.eq(self.i.valid), dut.i.payload.eq(self.i.payload),
                     self.i.ready.eq(dut.i.ready), self.o.valid.eq(dut.o.valid),
                     self.o.payload.eq(dut.o.payload), dut.o.ready.eq(self.o.ready)]
        return m


def _designs():
    rng = random.Random(1)

    def ints(*shape, lo=-7, hi=7):
        return np.array([rng.randint(lo, hi) for _ in range(math.prod(shape))]).reshape(shape)

    return {
        "spike_conv 8->32 4x4 pe2 simd2": SpikeConv3x3(
            ints(32, 8, 3, 3), ints(32, lo=-50, hi=50), height=4, width=4, time_steps=4,
            weight_bits=4, acc_bits=13, pe=2, simd=2),
        "dwconv 32 4x4 lanes4": DWConv3x3(
            ints(32, 3, 3, lo=-127, hi=127), ints(32, lo=-300, hi=300), height=4, width=4,
            time_steps=4, acc_bits=13, weight_bits=8, lanes=4),
        # Event mode: flag files, their multiplexers and the priority encoder.
        "spike_conv 8->32 4x4 event": SpikeConv3x3(
            ints(32, 8, 3, 3, lo=-127, hi=127), ints(32, lo=-50, hi=50), height=4, width=4,
            time_steps=4, weight_bits=8, acc_bits=16, mode="event"),
        "spike_conv 8->32 4x4 simd8 event": SpikeConv3x3(
            ints(32, 8, 3, 3, lo=-127, hi=127), ints(32, lo=-50, hi=50), height=4, width=4,
            time_steps=4, weight_bits=8, acc_bits=16, simd=8, mode="event"),
        "dwconv 32 4x4 lanes4 event": DWConv3x3(
            ints(32, 3, 3, lo=-127, hi=127), ints(32, lo=-300, hi=300), height=4, width=4,
            time_steps=4, acc_bits=14, weight_bits=8, lanes=4, mode="event"),
        "pixel_conv 1->8 8x8 pe8": PixelConv3x3(
            ints(8, 1, 3, 3, lo=-127, hi=127), ints(8, lo=-300, hi=300), height=8, width=8,
            pixel_bits=8, weight_bits=8, acc_bits=20, pe=8),
    }


@pytest.mark.slow
@pytest.mark.parametrize("family", ["ice40", "ecp5"])
@pytest.mark.parametrize("name", list(_designs()))
def test_resource_estimate_against_yosys(name, family):
    from hwgen.targets.synth import ToolMissing, synth_stats

    block = _designs()[name]
    try:
        got = synth_stats(_PlainPorts(block), family)
    except ToolMissing as e:
        pytest.skip(str(e))
    est = block.resources(family)
    print(f"\n{name} on {family}: estimate vs Yosys: LUT {est.lut} / {got.lut} "
          f"({100 * (est.lut - got.lut) / got.lut:+.0f} %), FF {est.ff} / {got.ff}, "
          f"BRAM {est.bram(family)} / {got.bram}, DSP {est.dsp} / {got.dsp}")
    assert got.unmapped == []
    assert est.dsp == got.dsp
    assert got.bram <= est.bram(family) <= got.bram + 2
    assert abs(est.ff - got.ff) <= 0.1 * got.ff
    assert abs(est.lut - got.lut) <= 0.3 * got.lut
