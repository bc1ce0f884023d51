"""A 3x3 spike convolution whose weights live in external memory: a window gather in front of
a `LinearEngine` (the engine reads each position's whole 3x3 neighbourhood as one
``9 * in``-bit spike word).

Golden function: `quant.golden.conv3x3` on spikes (zero padding 1, stride 1). The external-
weight style runs the spike convs (stem.1, the RPE) this way; docs/hardware.md "The conv
on the engine" gives the cost (the spike memory holds the gathered words, 9x the input).
"""

from __future__ import annotations

from amaranth import Cat, Module, Mux, Signal
from amaranth.hdl import unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from rtl_templates.common import Resources, check_int, spike_signature
from rtl_templates.line_buffer import LineBuffer
from rtl_templates.linear_engine import LinearEngine
from rtl_templates.spike_conv import conv_weight_shape
from rtl_templates.timing import Network
from rtl_templates.window import TAPS, WindowModel
from rtl_templates.window_block import int_array
from rtl_templates.window_resources import control_ff, memory_logic


class WindowGather(wiring.Component):
    """Each position's 3x3 neighbourhood of spike words as one beat.

    Parameters: ``height``, ``width`` (grid), ``time_steps`` (T), ``channels`` (C, bits of
    an input beat). Ports: sink ``i`` (spikes ``unsigned(C)``, T beats per token, tokens in
    raster order, images back to back); source ``o`` (``unsigned(9*C)``, the same order:
    per token, per t, one beat; tap k = 3*ky + kx, input (y + ky - 1, x + kx - 1), in bits
    ``[k*C, (k+1)*C)``, zero outside the grid).

    It is a `LineBuffer` with one group and one slice whose nine steps per beat shift the
    tap words into the output register, so its timing is that of a 3x3 block with
    ``9 * T`` steps per token (`WindowModel`, exact).
    """

    def __init__(self, *, height: int, width: int, time_steps: int, channels: int):
        self.channels = check_int("channels", channels)
        self.lines = LineBuffer(height=height, width=width, word_width=channels,
                                time_steps=time_steps, groups=1, slices=1)
        self.geometry = self.lines.geometry
        super().__init__({"i": In(stream.Signature(unsigned(channels))),
                          "o": Out(stream.Signature(unsigned(TAPS * channels)))})

    def elaborate(self, platform):
        m = Module()
        m.submodules.lines = lines = self.lines
        wiring.connect(m, wiring.flipped(self.i), lines.i)
        C = self.channels
        window = Signal(TAPS * C)
        m.d.comb += [lines.o_ready.eq(self.o.ready), self.o.valid.eq(lines.o_valid),
                     self.o.payload.eq(window)]
        tap = Mux(lines.tap_valid, lines.word, 0)
        with m.If(lines.advance & lines.valid):
            m.d.sync += window.eq(Cat(window[C:], tap) if TAPS * C > C else tap)
        return m

    def model(self) -> WindowModel:
        return WindowModel(self.geometry)

    def resources(self, family: str) -> Resources:
        """Estimate: the line buffer's slots (``slots * T`` x C, block RAM) with its read
        logic and scheduler (`control_ff`: a LUT per bit), the window register (9C FFs, the
        shift in their enables) and the tap mask (a LUT a bit). Yosys 0.70 on ECP5 (with
        the engine behind it, bench/bench_blocks.py kind "conv engine")."""
        geo, C = self.geometry, self.channels
        lut, ff = memory_logic(geo.depth, C, family)
        ctl = control_ff(geo, 1)
        return Resources(lut=lut + ctl + C, ff=ff + ctl + TAPS * C,
                         memories=((geo.depth, C),), memory_kinds=("block",))


def window_words(spikes, height: int, width: int) -> list[int]:
    """Software twin of `WindowGather` for one image: spikes [N][T][C] (0/1) -> its output
    words, token-major, time-minor."""
    T, C = len(spikes[0]), len(spikes[0][0])
    words = []
    for y in range(height):
        for x in range(width):
            for t in range(T):
                w = 0
                for k in range(TAPS):
                    yy, xx = y + k // 3 - 1, x + k % 3 - 1
                    if 0 <= yy < height and 0 <= xx < width:
                        for c, bit in enumerate(spikes[yy * width + xx][t]):
                            w |= int(bit) << (k * C + c)
                words.append(w)
    return words


def conv_as_linear(weight) -> list[list[int]]:
    """[out][in][3][3] -> the engine's [out][9*in]: input k*in + c is tap k of channel c."""
    out_ch, in_ch = conv_weight_shape(weight)
    w = int_array("weight", weight, (out_ch, in_ch, 3, 3))
    return [[int(w[o, c, k // 3, k % 3]) for k in range(TAPS) for c in range(in_ch)]
            for o in range(out_ch)]


class ConvEngine(wiring.Component):
    """``out = conv3x3(spikes, weight, bias)``, weights read from external memory.

    Parameters: ``weight`` [out][in][3][3], ``bias`` [out], ``height``, ``width``,
    ``time_steps``, and the `LinearEngine` knobs (``weight_bits``, ``acc_bits``, ``pe``,
    ``simd`` (divides ``9 * in``), ``beat_bits``, ``max_burst``, ``base_addr``,
    ``addr_bits``, ``mode``).

    Ports: sink ``i`` (spikes ``unsigned(in)``, as `WindowGather`), source ``o`` and
    ``mem`` (those of the engine: values tile-major, for g: for token: for t; the weights
    `memory_image` of ``engine``, whose weight matrix is `conv_as_linear`).

    Timing: the gather's (`WindowModel`) in front of the engine's (`LinearEngine`); the
    engine loads the image's H*W*T gathered words, so the gather only stalls while the
    engine computes. `model_network` puts both cycle models in a `Network`.
    """

    def __init__(self, weight, bias, *, height: int, width: int, time_steps: int,
                 weight_bits: int, acc_bits: int, pe: int = 1, simd: int = 1,
                 beat_bits: int = 16, max_burst: int = 64, base_addr: int = 0,
                 addr_bits: int = 24, mode: str = "dense"):
        out_ch, in_ch = conv_weight_shape(weight)
        self.in_channels, self.out_channels = in_ch, out_ch
        self.height, self.width = check_int("height", height), check_int("width", width)
        self.gather = WindowGather(height=height, width=width, time_steps=time_steps,
                                   channels=in_ch)
        self.engine = LinearEngine(conv_as_linear(weight), bias, tokens=height * width,
                                   time_steps=time_steps, weight_bits=weight_bits,
                                   acc_bits=acc_bits, pe=pe, simd=simd, beat_bits=beat_bits,
                                   max_burst=max_burst, base_addr=base_addr,
                                   addr_bits=addr_bits, mode=mode)
        e = self.engine
        self.pe, self.simd, self.acc_bits, self.base_addr = e.pe, e.simd, e.acc_bits, e.base_addr
        self.positions = e.positions
        super().__init__({"i": In(spike_signature(in_ch)), "o": Out(e.o.signature),
                          "mem": Out(e.mem.signature)})

    def requests(self) -> list[tuple[int, int]]:
        return self.engine.requests()

    def resources(self, family: str) -> Resources:
        return self.engine.resources(family) + self.gather.resources(family)

    def cycles_per_image(self, latency: int = 16) -> int:
        """One image in free flow, memory ``latency`` cycles (the engine's `cycles`; the
        gather keeps ahead of the engine's load)."""
        return self.engine.cycles(1, latency)

    def elaborate(self, platform):
        m = Module()
        m.submodules.gather, m.submodules.engine = self.gather, self.engine
        wiring.connect(m, wiring.flipped(self.i), self.gather.i)
        wiring.connect(m, self.gather.o, self.engine.i)
        wiring.connect(m, self.engine.o, wiring.flipped(self.o))
        wiring.connect(m, self.engine.mem, wiring.flipped(self.mem))
        return m

    def model_network(self, net: Network, inputs: dict,
                      prefix: str = "dut") -> dict[str, tuple[str, str]]:
        """Add the gather's (``{prefix}_gather``) and the engine's (``{prefix}_engine``)
        models to `net`, joined (the engine's event mode needs the gathered words: computed
        from ``inputs['i']`` by `window_words`); returns where this block's ports are."""
        gather, engine = f"{prefix}_gather", f"{prefix}_engine"
        net.add(gather, self.gather.model())
        net.add(engine, self.engine.model())
        T, C, N = self.engine.time_steps, self.in_channels, self.height * self.width
        beats, words = list(inputs.get("i", ())), []
        for b in range(0, len(beats) - N * T + 1, N * T):
            img = [[[(beats[b + n * T + t] >> c) & 1 for c in range(C)] for t in range(T)]
                   for n in range(N)]
            words += window_words(img, self.height, self.width)
        net.connect((gather, "o"), (engine, "i"), words=words if beats else None)
        return {"i": (gather, "i"), "o": (engine, "o"),
                **{p: (engine, p) for p in ("req", "w", "r")}}
