"""A spike linear layer whose weights live in external memory: the whole image's input
spikes are held on chip and every weight tile, streamed from the memory port into one of
two tile buffers, is used for all tokens and time steps before it is replaced.

Golden function: `quant.golden.spike_linear` (out = bias + sum of the weight columns whose
input spike is 1); docs/hardware.md "External-weight execution style".
"""

from __future__ import annotations

from amaranth import Cat, Module, Mux, Signal
from amaranth.hdl import unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from rtl_templates.common import (
    Resources,
    bits_for,
    check_choice,
    check_divides,
    check_int,
    spike_signature,
    values_signature,
)
from rtl_templates.engine_models import LinearEngineModel
from rtl_templates.gated_sum import (
    FoldedLinear,
    check_acc_bits,
    check_matrix,
    gated_sum,
    mux_luts,
    rom_luts,
    tree_ffs,
    tree_luts,
    tree_stages,
    weight_rows,
)
from rtl_templates.memport import MemPortSignature
from rtl_templates.spike_linear import _lowest_set_bit


class LinearEngine(FoldedLinear, wiring.Component):
    """``out[o] = bias[o] + sum of weight[o][i] over the inputs i whose spike is 1``, dense,
    weights read from external memory.

    Parameters: ``weight`` [out][in], ``bias`` [out], ``tokens`` (N), ``time_steps`` (T),
    ``weight_bits``, ``acc_bits`` (as `SpikeLinear`), ``pe`` (output lanes = a tile's
    output channels, divides out), ``simd`` (inputs per cycle, divides in), ``beat_bits``
    (W, the memory's data width: must divide ``pe * simd * weight_bits``), ``max_burst``
    (beats per request), ``base_addr`` and ``addr_bits`` (where the layer's weights start,
    in W-bit words).

    Ports: sink ``i`` (spikes, ``unsigned(in)``: an image's N*T beats, token-major,
    time-minor); source ``o`` (values, ``pe`` lanes): per image, **tile-major**: for tile g:
    for token n: for t: one beat with outputs ``g*pe .. g*pe+pe-1`` (a LIF with ``pe``
    lanes can read it: t is innermost); ``mem`` (the initiator side of a
    `MemPortSignature` (addr_bits, beat_bits, max_burst): read requests only (``write``
    0, ``count`` = beats - 1); ``w`` is never valid).

    Memory image: tile g's rows ``weight_rows`` rows ``g*K .. g*K+K-1`` (K = in/simd), each
    row split into ``R/W`` beats least significant first, at ``base_addr + (g*K + k)*R/W``
    (`memory_image`). A tile is requested as `requests()` bursts.

    Timing: the image is loaded first (``i.ready`` high until its N*T beats are in; the
    next image loads after the last operation of the current one). Tile g+2's requests go
    out when tile g has issued its last operation, so at most two tiles are requested and
    not consumed, a buffer is always free for arriving data and ``r.ready`` is always
    high. Computing: one operation per cycle (a tile row and a spike chunk); a tile takes
    ``N*T*K`` operations; it starts when its buffer is full and the image is loaded. An
    output beat fires ``stages + 1`` cycles after its last operation (``stages = 1 +
    tree_stages(simd)``). Backpressure on ``o`` stalls the datapath as in `SpikeLinear`;
    gaps on ``r`` only delay. `cycles()` is the exact free-flow count; `model()` the
    cycle model under any gaps and stalls. ``mode="event"`` (``simd`` 1): a position costs
    ``max(1, set bits)`` operations, one per set bit, lowest first (the priority encoder of
    `SpikeLinear`), each reading that input's tile row; one more pipeline stage (the
    encoder's registered index). The engine prefetches the first two tiles of
    the next image (a sequencer would prefetch the next layer's).
    """

    def __init__(self, weight, bias, *, tokens: int, time_steps: int, weight_bits: int,
                 acc_bits: int, pe: int = 1, simd: int = 1, beat_bits: int = 16,
                 max_burst: int = 64, base_addr: int = 0, addr_bits: int = 24,
                 mode: str = "dense"):
        self.weight_bits = check_int("weight_bits", weight_bits, 2)
        self.weight, self.bias = check_matrix(weight, bias, weight_bits)
        self.out_features, self.in_features = len(self.weight), len(self.weight[0])
        self.tokens = check_int("tokens", tokens)
        self.time_steps = check_int("time_steps", time_steps)
        self.pe = check_int("pe", pe)
        check_divides("pe", pe, self.out_features)
        self.simd = check_int("simd", simd)
        check_divides("simd", simd, self.in_features)
        check_choice("mode", mode, ("dense", "event"))
        if mode == "event" and simd != 1:
            raise ValueError(f"simd must be 1 in event mode, not {simd!r}")
        if tokens * time_steps < 3:
            raise ValueError(f"tokens * time_steps must be >= 3 (the spike word prefetch), "
                             f"not {tokens * time_steps!r}")
        self.mode = mode
        self.beat_bits = check_int("beat_bits", beat_bits)
        row = pe * simd * weight_bits
        if row % beat_bits:
            raise ValueError(f"beat_bits ({beat_bits}) must divide a tile row of "
                             f"pe * simd * weight_bits = {row} bits")
        self.max_burst = check_int("max_burst", max_burst, 2)
        self.base_addr = check_int("base_addr", base_addr, 0)
        self.addr_bits = check_int("addr_bits", addr_bits)
        if base_addr + self.memory_words > 1 << addr_bits:
            raise ValueError(f"the weights ({self.memory_words} words from {base_addr}) must fit "
                             f"addr_bits ({addr_bits})")
        self.acc_bits = check_acc_bits(acc_bits, self.weight, self.bias, 1)
        super().__init__({
            "i": In(spike_signature(self.in_features)),
            "o": Out(values_signature(acc_bits, pe)),
            "mem": Out(MemPortSignature(addr_width=addr_bits, data_width=beat_bits,
                                        max_burst=max_burst)),
        })

    # -- shapes ---------------------------------------------------------------
    @property
    def stages(self) -> int:
        """Pipeline stages after issue: (event: the address register), the tile read, the
        tree registers."""
        return 1 + tree_stages(self.simd) + (self.mode == "event")

    @property
    def positions(self) -> int:
        return self.tokens * self.time_steps

    @property
    def row_beats(self) -> int:
        return self.pe * self.simd * self.weight_bits // self.beat_bits

    @property
    def tile_beats(self) -> int:
        return self.chunks * self.row_beats

    @property
    def memory_words(self) -> int:
        return self.groups * self.tile_beats

    def tile_requests(self) -> list[int]:
        """Beat counts of one tile's requests."""
        full, rest = divmod(self.tile_beats, self.max_burst)
        return [self.max_burst] * full + ([rest] if rest else [])

    def requests(self) -> list[tuple[int, int]]:
        """(word address, beats) of one image's (read) requests, in order."""
        out = []
        for g in range(self.groups):
            addr = self.base_addr + g * self.tile_beats
            for n in self.tile_requests():
                out.append((addr, n))
                addr += n
        return out

    def elaborate(self, platform):
        m = Module()
        P, K, G, IN, W = self.positions, self.chunks, self.groups, self.in_features, self.beat_bits
        BR, R = self.row_beats, self.pe * self.simd * self.weight_bits
        req, rdata = self.mem.req, self.mem.r  # reads only: mem.w stays idle

        # Both memories are written and read at different addresses in any one cycle (the
        # spikes are written only while nothing is computed; fill and compute use different
        # buffers), so no read-during-write bypass is needed.
        attrs = {"ram_style": "block", "no_rw_check": 1}
        m.submodules.act = act = Memory(shape=unsigned(IN), depth=P, init=[], attrs=attrs)
        act_w, act_r = act.write_port(), act.read_port(domain="sync")
        m.submodules.tiles = tiles = Memory(shape=unsigned(R), depth=2 * K, init=[], attrs=attrs)
        tile_w, tile_r = tiles.write_port(), tiles.read_port(domain="sync")

        # -- load the image's spikes ------------------------------------------
        loaded = Signal()
        n_in = Signal(range(max(P, 2)))
        m.d.comb += [self.i.ready.eq(~loaded), act_w.addr.eq(n_in), act_w.data.eq(self.i.payload),
                     act_w.en.eq(self.i.valid & ~loaded)]
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += n_in.eq(n_in + 1)
            with m.If(n_in == P - 1):
                m.d.sync += [n_in.eq(0), loaded.eq(1)]

        # -- requests: at most two tiles requested and not yet consumed --------
        lengths = self.tile_requests()
        ahead = Signal(range(3))
        c_req = Signal(range(max(len(lengths), 2)))
        g_req = Signal(range(max(G, 2)))
        addr = Signal(self.addr_bits, init=self.base_addr)
        length = Signal(range(self.max_burst + 1))
        last_req = c_req == len(lengths) - 1
        m.d.comb += [req.valid.eq(ahead != 2), req.payload.addr.eq(addr),
                     req.payload.count.eq(length - 1), req.payload.write.eq(0)]
        m.d.comb += length.eq(lengths[0])
        if lengths[-1] != lengths[0]:
            with m.If(last_req):
                m.d.comb += length.eq(lengths[-1])
        tile_requested = Signal()
        with m.If(req.valid & req.ready):
            m.d.sync += [addr.eq(addr + length), c_req.eq(c_req + 1)]
            with m.If(last_req):
                m.d.comb += tile_requested.eq(1)
                m.d.sync += [c_req.eq(0), g_req.eq(g_req + 1)]
                with m.If(g_req == G - 1):
                    m.d.sync += [g_req.eq(0), addr.eq(self.base_addr)]

        # -- fill: assemble rows from beats into the buffer being filled ------
        full = [Signal(name="full0"), Signal(name="full1")]
        f_sel = Signal()
        b_f = Signal(range(max(BR, 2)))
        k_f = Signal(range(max(K, 2)))
        low = Signal(max(1, (BR - 1) * W))  # the row's earlier beats
        m.d.comb += [rdata.ready.eq(1), tile_w.addr.eq(f_sel * K + k_f)]
        m.d.comb += tile_w.data.eq(Cat(low, rdata.payload) if BR > 1 else rdata.payload)
        with m.If(rdata.valid):
            with m.If(b_f == BR - 1):
                m.d.comb += tile_w.en.eq(1)
                m.d.sync += [b_f.eq(0), k_f.eq(k_f + 1)]
                with m.If(k_f == K - 1):
                    m.d.sync += [k_f.eq(0), f_sel.eq(~f_sel)]
                    with m.If(f_sel):
                        m.d.sync += full[1].eq(1)
                    with m.Else():
                        m.d.sync += full[0].eq(1)
            if BR > 1:
                with m.Else():
                    m.d.sync += [b_f.eq(b_f + 1), low.word_select(b_f, W).eq(rdata.payload)]

        # -- compute: tile g over every position p and chunk k ------------------
        advance, go = Signal(), Signal()
        c_sel = Signal()
        g = Signal(range(max(G, 2)))
        p = Signal(range(max(P, 2)))
        k = Signal(range(max(K, 2)))
        ready_tile = Signal()
        m.d.comb += [ready_tile.eq(Cat(full[0], full[1]).bit_select(c_sel, 1)),
                     go.eq(loaded & ready_tile & advance)]
        consumed, end_pos = Signal(), Signal()  # a position's last operation issues
        with m.If(go & end_pos):
            m.d.sync += p.eq(p + 1)
            with m.If(p == P - 1):
                m.d.comb += consumed.eq(1)
                m.d.sync += [p.eq(0), g.eq(g + 1), c_sel.eq(~c_sel)]
                with m.If(c_sel):
                    m.d.sync += full[1].eq(0)
                with m.Else():
                    m.d.sync += full[0].eq(0)
                with m.If(g == G - 1):
                    m.d.sync += [g.eq(0), loaded.eq(0)]
        m.d.sync += ahead.eq(ahead + tile_requested - consumed)
        tags = {"valid": Signal(name="valid_s1"), "first": Signal(name="first_s1"),
                "last": Signal(name="last_s1"), "g": Signal(range(max(G, 2)), name="g_s1")}
        # The current position's spikes are in a register (`word`), the next position's in
        # the spike memory's read register: at a position's last operation `word` takes
        # them and the memory reads the one after, so no path runs from the block RAM's
        # slow output through the encoder or the chunk multiplexer (hence N*T >= 3). The
        # image's first word is caught from the input as it loads.
        word = Signal(IN)
        p1 = Signal(range(max(P, 2)), init=1)  # (p + 1) mod P
        p2 = Signal(range(max(P, 2)))
        step = Signal()
        m.d.comb += [p2.eq(Mux(p1 == P - 1, 0, p1 + 1)), step.eq(go & end_pos),
                     act_r.en.eq(1), act_r.addr.eq(Mux(step, p2, p1))]
        with m.If(step):
            m.d.sync += [word.eq(act_r.data), p1.eq(p2)]
        with m.If(self.i.valid & self.i.ready & (n_in == 0)):
            m.d.sync += word.eq(self.i.payload)
        gates = Signal(self.simd)
        if self.mode == "dense":
            m.d.comb += [end_pos.eq(k == K - 1), tile_r.addr.eq(c_sel * K + k),
                         tile_r.en.eq(advance)]
            with m.If(go):
                m.d.sync += k.eq(Mux(k == K - 1, 0, k + 1))
            with m.If(advance):
                m.d.sync += [tags["valid"].eq(go), tags["first"].eq(k == 0),
                             tags["last"].eq(k == K - 1), tags["g"].eq(g),
                             gates.eq(word.word_select(k, self.simd))]
        else:
            # The encoder reads the position's word fresh, then what is left of it.
            fresh, pending, cur = Signal(init=1), Signal(IN), Signal(IN)
            m.d.comb += cur.eq(Mux(fresh, word, pending))
            rest, idx, at_most_one = _lowest_set_bit(m, cur)
            m.d.comb += end_pos.eq(at_most_one)
            with m.If(go):
                m.d.sync += [fresh.eq(at_most_one), pending.eq(rest)]
            # The encoder's index gets a register before the address adder and the memory.
            a = {name: Signal(len(v), name=f"{name}_a") for name, v in
                 (("valid", go), ("first", fresh), ("last", at_most_one), ("g", g),
                  ("gate", cur.any()), ("sel", c_sel), ("idx", idx))}
            with m.If(advance):
                m.d.sync += [a["valid"].eq(go), a["first"].eq(fresh), a["last"].eq(at_most_one),
                             a["g"].eq(g), a["gate"].eq(cur.any()), a["sel"].eq(c_sel),
                             a["idx"].eq(idx)]
            m.d.comb += [tile_r.addr.eq(a["sel"] * K + a["idx"]), tile_r.en.eq(advance)]
            gate1 = Signal()
            with m.If(advance):
                m.d.sync += [tags[n].eq(a[n]) for n in ("valid", "first", "last", "g")]
                m.d.sync += gate1.eq(a["gate"])
            m.d.comb += gates.eq(gate1)
        sums, tags = gated_sum(m, words=tile_r.data, gates=gates, pe=self.pe, simd=self.simd,
                               weight_bits=self.weight_bits, advance=advance, tags=tags)
        self.accumulate_output(m, sums, tags, advance)
        return m

    # -- estimates ------------------------------------------------------------
    def model(self) -> LinearEngineModel:
        return LinearEngineModel(self)

    def ops_per_tile(self, spike_counts=None) -> int:
        """Operations of one tile: dense ``N*T*K``; event ``sum over positions of
        max(1, spike count)`` (`spike_counts`: the image's N*T counts)."""
        if self.mode == "dense":
            return self.positions * self.chunks
        counts = [int(c) for c in spike_counts]
        if len(counts) != self.positions:
            raise ValueError(f"spike_counts must list {self.positions} positions, not {len(counts)}")
        return sum(max(1, c) for c in counts)

    def cycles(self, images: int, latency: int, spike_counts=None) -> int:
        """Cycle of the last output beat of `images` images when everything flows freely
        (input always valid, output and memory always ready, every beat offered as soon as
        the memory's `latency` allows). Event mode: `spike_counts` [images][N*T]."""
        check_int("images", images)
        ops = [self.ops_per_tile(None if self.mode == "dense" else spike_counts[i])
               for i in range(images)]
        G, P, TB, n = self.groups, self.positions, self.tile_beats, len(self.tile_requests())
        req_start, data_end, end = [], [], []
        load_done = P  # image 0's beats fire in cycles 1 .. P
        for j in range(images * G):
            if j < 2:
                rs = 1 + j * n
            else:
                rs = max(end[j - 2] + 1, req_start[j - 1] + n)
            req_start.append(rs)
            prev = data_end[j - 1] if j else 0
            data_end.append(max(rs + latency - 1, prev) + TB)
            if j and j % G == 0:
                load_done = end[j - 1] + P
            start = max(end[j - 1] + 1 if j else 1, data_end[j] + 1, load_done + 1)
            end.append(start + ops[j // G] - 1)
        return end[-1] + self.stages + 1

    def resources(self, family: str) -> Resources:
        """Estimate: the gated adder trees and output register of `SpikeLinear` (dense), the
        chunk multiplexer over the spike word, the row assembly register (FFs with a
        per-beat enable), counters; the
        spike memory (``N*T`` x in) and the two tile buffers (``2K`` x row) are block RAM
        (forced: at the sizes the engine is for they are large)."""
        G, K, P, IN, pe = self.groups, self.chunks, self.positions, self.in_features, self.pe
        BR, W = self.row_beats, self.beat_bits
        counters = 2 * bits_for(P) + 2 * bits_for(K) + 2 * bits_for(G) + bits_for(BR) \
            + self.addr_bits + bits_for(len(self.tile_requests())) + 8
        tags = 3 + bits_for(G)
        ff = (counters + (BR - 1) * W + tags * (1 + tree_stages(self.simd)) + self.simd
              + IN + bits_for(P)
              + tree_ffs(pe, self.simd, self.weight_bits) + pe * self.acc_bits + 1)
        per_bit = 2 if G <= 4 else 2 + rom_luts(G)
        lut = (tree_luts(pe, self.simd, self.weight_bits) + pe * self.acc_bits * per_bit
               + self.simd * mux_luts(K) + 2 * counters + self.addr_bits + (BR - 1) + 16
               + IN + 2 * bits_for(P))  # the word register's input mux, the prefetch counter
        if self.mode == "event":  # the encoder of spike_linear's event mode, its address stage
            lut += 3 * IN + bits_for(IN) * IN // 6 + IN * 5 // 6  # fresh mux, clear, pending
            ff += IN + 1 + tags + 2 + bits_for(IN)
        mems = ((P, IN), (2 * K, pe * self.simd * self.weight_bits))
        return Resources(lut=lut, ff=ff, memories=mems, memory_kinds=("block", "block"))


def memory_image(engine: LinearEngine) -> list[int]:
    """The engine's weights as memory words (from ``base_addr`` on), in request order."""
    mask = (1 << engine.beat_bits) - 1
    words = []
    for row in weight_rows(engine.weight, engine.pe, engine.simd, engine.weight_bits):
        words += [(row >> (b * engine.beat_bits)) & mask for b in range(engine.row_beats)]
    return words


def pack_engine_values(values, width: int, pe: int) -> list[int]:
    """Output beat words of one image in the engine's order. `values` [tokens][T][out]."""
    mask = (1 << width) - 1
    tokens, T, out = len(values), len(values[0]), len(values[0][0])
    check_divides("pe", pe, out)
    words = []
    for g in range(out // pe):
        for n in range(tokens):
            for t in range(T):
                words.append(sum((int(values[n][t][g * pe + j]) & mask) << (j * width)
                                 for j in range(pe)))
    return words
