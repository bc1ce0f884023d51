"""One engine run over a sequence of spike linear layers with a LIF between each two: the
first layer reads the image's spikes, each later one the spikes its predecessor's LIF wrote
into an on-chip spike memory; all weights stream from one memory port (an SAFormer MLP:
fc1 -> LIF -> fc2). Golden: `quant.golden.spike_linear` and `quant.golden.lif`.
"""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal
from amaranth.hdl import signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from rtl_templates.common import check_divides, check_int, spike_signature, values_signature
from rtl_templates.engine_models import EngineSequenceModel
from rtl_templates.gated_sum import (
    check_acc_bits,
    check_matrix,
    gated_sum,
    tree_stages,
    weight_rows,
)
from rtl_templates.lif_array import check_vth, lif_lanes, membranes, threshold_table
from rtl_templates.memport import MemPortSignature


def _pick(m: Module, sel, values: list[int], name: str) -> Signal:
    """A per-layer constant selected by a layer counter."""
    out = Signal(range(max(values) + 2), name=name)
    with m.Switch(sel):
        for i, v in enumerate(values):
            with m.Case(i):
                m.d.comb += out.eq(v)
    return out


class EngineSequence(wiring.Component):
    """``layers`` [(weight [out][in], bias [out], acc_bits)], ``lifs`` [(vth [out of the
    layer before], input_shift, state_bits)], one per boundary; ``tokens``, ``time_steps``,
    ``weight_bits``, ``pe`` (divides every out), ``simd`` (divides every in),
    ``beat_bits``, ``max_burst``, ``base_addr``, ``addr_bits`` as `LinearEngine`.

    Ports: sink ``i`` (the first layer's input spikes, an image's N*T beats); source ``o``
    (the last layer's values, tile-major: for tile g: for n: for t); ``mem``. With
    ``residual_bits``, a sink ``u`` (the residual stream, ``pe`` lanes of
    ``signed(residual_bits)``, in ``o``'s order) is added to every output beat, and ``o``
    carries ``u + out`` at ``residual_bits`` (the caller's width must hold the sum, as
    `derive_widths`' u_bits does): ``o.valid`` needs ``u.valid``, ``u.ready`` is ``o.ready``
    while an output beat waits (a join). With ``input_lif`` ((vth, input_shift,
    state_bits) of the first layer's inputs) and ``input_bits``, ``i`` carries values
    instead (``pe`` lanes of ``signed(input_bits)``, tile-major like ``o``: (in/pe) * N*T
    beats an image), and a LIF turns them into the first layer's spikes as they load.

    A boundary's LIF may be segments ``[(channels, vth, input_shift, state_bits)]`` on
    consecutive channel ranges. ``sasa=(b, SASA(...))``: layer b's outputs are Q|K, the
    LIF writes them into their own memory, a pass streams it through SASA into layer b +
    1's spike memory. ``u_memory`` (with ``input_lif`` and ``input_bits ==
    residual_bits``): a whole block. The input values U are also kept in block RAM
    (tile-major, ``pe`` lanes a word); the outputs of every layer in ``adds`` and of the
    last layer get U added (``u = U + out``, at ``residual_bits``, wrapping as the
    golden model's final width does), written back into U; the LIF after an added layer
    takes ``u``, ``o`` carries the last layer's ``u`` (there is no ``u`` port). ``dwc``
    (a `DWConv3x3` over the first layer's input spikes, ``pe`` lanes): once an image is
    loaded, a pass streams its spikes through it and adds every beat into U; layer 0
    starts when the pass is done. With U in block RAM the next image loads only once the
    last layer's outputs are all out.

    Memory image: the layers' `LinearEngine` images one after the other from ``base_addr``
    (`sequence_image`). Tiles are requested and filled in order over all layers (at most two
    requested and not consumed). Layer l >= 1 starts when every output of layer l - 1 has
    gone through the LIF into its spike memory (the pipeline drains between layers); a
    beat of an inner layer leaves the output register in the cycle after it is complete
    (the LIF is always ready), only the last layer's beats wait for ``o.ready``. The next
    image loads after the last operation of the current one.
    """

    def __init__(self, layers, lifs, *, tokens: int, time_steps: int, weight_bits: int,
                 pe: int = 1, simd: int = 1, beat_bits: int = 16, max_burst: int = 64,
                 base_addr: int = 0, addr_bits: int = 24, residual_bits: int | None = None,
                 input_lif=None, input_bits: int | None = None, sasa=None,
                 u_memory: bool = False, adds=(), dwc=None, act_of=None,
                 token_major: bool = False):
        self.weight_bits = check_int("weight_bits", weight_bits, 2)
        if not layers or len(lifs) != len(layers) - 1:
            raise ValueError(f"need at least one layer and one LIF per boundary, not "
                             f"{len(layers)} layers and {len(lifs)} LIFs")
        self.layers = []
        for w, b, acc in layers:
            w, b = check_matrix(w, b, weight_bits)
            self.layers.append((w, b, check_acc_bits(acc, w, b, 1)))
        self.ins = [len(w[0]) for w, _, _ in self.layers]
        self.outs = [len(w) for w, _, _ in self.layers]
        sasa = [] if sasa is None else [sasa] if isinstance(sasa, tuple) else list(sasa)
        for x, (a, b) in enumerate(zip(self.outs, self.ins[1:], strict=False)):
            if a != b and not any(x == sb and (a, b) == (2 * blk.dim, blk.dim) for sb, blk in sasa):
                raise ValueError(f"a layer's inputs must be its predecessor's outputs ({a}), not {b}")
        self.lifs = [_lif_segments(lif, n, pe) for lif, n in zip(lifs, self.outs, strict=False)]
        self.tokens, self.time_steps = check_int("tokens", tokens), check_int("time_steps", time_steps)
        self.pe, self.simd = check_int("pe", pe), check_int("simd", simd)
        for n in self.outs:
            check_divides("pe", pe, n)
        for n in self.ins:
            check_divides("simd", simd, n)
        self.beat_bits = check_int("beat_bits", beat_bits)
        if (pe * simd * weight_bits) % beat_bits:
            raise ValueError(f"beat_bits ({beat_bits}) must divide a tile row of "
                             f"pe * simd * weight_bits = {pe * simd * weight_bits} bits")
        self.max_burst = check_int("max_burst", max_burst, 2)
        self.addr_bits = check_int("addr_bits", addr_bits)
        self.base_addr = check_int("base_addr", base_addr, 0)
        if base_addr + sum(self.layer_words) > 1 << addr_bits:
            raise ValueError(f"the weights must fit addr_bits ({addr_bits})")
        self.acc_bits = max(acc for _, _, acc in self.layers)
        self.residual_bits = residual_bits
        self.input_lif, self.input_bits = None, input_bits
        if input_lif is not None:
            check_int("input_bits", input_bits, 2)
            check_divides("pe", pe, self.ins[0])
            vth, sh, sb = input_lif
            self.input_lif = (check_vth(vth, self.ins[0], sb), check_int("input_shift", sh, 0), sb)
        self.sasa = {}
        for b, block in sasa:  # (boundary b, a SASA component): layer b + 1 reads its Y
            if not isinstance(b, int) or not 0 <= b < len(lifs) or b in self.sasa:
                raise ValueError(f"the SASA boundary must be 0 .. {len(lifs) - 1}, not {b!r}")
            if (2 * block.dim, block.dim) != (self.outs[b], self.ins[b + 1]) \
                    or block.tokens != tokens or block.time_steps != time_steps:
                raise ValueError(f"SASA at boundary {b} must take layer {b}'s {self.outs[b]} "
                                 f"outputs (Q|K) and give layer {b + 1}'s {self.ins[b + 1]} inputs")
            self.sasa[b] = block
        L = len(self.layers)
        self.act_of = list(range(L)) if act_of is None else [int(x) for x in act_of]
        if len(self.act_of) != L or sorted(set(self.act_of)) != list(range(max(self.act_of) + 1)):
            raise ValueError(f"act_of must name a spike memory 0, 1, ... for each of the {L} "
                             f"layers, not {act_of!r}")
        ports = {
            "i": In(spike_signature(self.ins[0]) if input_lif is None
                    else values_signature(input_bits, pe)),
            "o": Out(values_signature(residual_bits or self.layers[-1][2], pe)),
            "mem": Out(MemPortSignature(addr_width=addr_bits, data_width=beat_bits,
                                        max_burst=max_burst)),
        }
        self.u_memory, self.adds, self.dwc = bool(u_memory), (), {}
        if u_memory:  # a whole block: U in block RAM, added after `adds` and the last layer
            L, D = len(self.layers), self.ins[0]
            if residual_bits is None or input_lif is None or input_bits != residual_bits:
                raise ValueError("u_memory needs residual_bits, and input_lif with "
                                 "input_bits == residual_bits (U comes in as values)")
            self.adds = tuple(sorted({check_int("adds", x, 0) for x in adds} | {L - 1}))
            for x in self.adds:
                if not 0 <= x < L or self.outs[x] != D:
                    raise ValueError(f"a residual add needs a layer of {D} outputs, not "
                                     f"layer {x!r}")
            dwcs = [] if dwc is None else [(0, dwc)] if not isinstance(dwc, list) else dwc
            for x, block in dwcs:  # a DWC pass over layer x's input spikes before it runs
                if (block.channels, block.lanes) != (D, pe) or block.geometry.tokens != tokens \
                        or block.geometry.time_steps != time_steps:
                    raise ValueError(f"the DWC must take {D} channels in {pe} lanes, "
                                     f"{tokens} tokens and {time_steps} time steps")
                if not 0 <= x < L or self.ins[x] != D or x - 1 in self.sasa or x in self.dwc:
                    raise ValueError(f"a DWC pass needs a layer of {D} inputs that no SASA "
                                     f"feeds, not layer {x!r}")
                self.dwc[x] = block
        elif adds or dwc is not None or token_major:
            raise ValueError("adds, dwc and token_major need u_memory")
        self.token_major = bool(token_major)
        if residual_bits is not None:
            check_int("residual_bits", residual_bits, 2)
            if not u_memory:
                ports["u"] = In(values_signature(residual_bits, pe))
        super().__init__(ports)

    # -- shapes ---------------------------------------------------------------
    @property
    def positions(self) -> int:
        return self.tokens * self.time_steps

    @property
    def input_beats(self) -> int:
        """Input beats per image."""
        return self.positions * (1 if self.input_lif is None else self.ins[0] // self.pe)

    @property
    def stages(self) -> int:
        """Pipeline stages from the memory reads to the accumulator: the read, the
        registered spike gates and weight row (no block RAM output drives the tree: the
        activation memories' select and the tile buffer's read were the critical path,
        45.5 MHz on the ECP5), then the tree's registers."""
        return 2 + tree_stages(self.simd, True)

    @property
    def row_beats(self) -> int:
        return self.pe * self.simd * self.weight_bits // self.beat_bits

    @property
    def chunks(self) -> list[int]:
        return [n // self.simd for n in self.ins]

    @property
    def groups(self) -> list[int]:
        return [n // self.pe for n in self.outs]

    @property
    def layer_words(self) -> list[int]:
        return [g * k * self.row_beats for g, k in zip(self.groups, self.chunks, strict=True)]

    def tile_requests(self, layer: int) -> list[int]:
        full, rest = divmod(self.chunks[layer] * self.row_beats, self.max_burst)
        return [self.max_burst] * full + ([rest] if rest else [])

    def requests(self) -> list[tuple[int, int]]:
        out, addr = [], self.base_addr
        for layer, g in enumerate(self.groups):
            for _ in range(g):
                for n in self.tile_requests(layer):
                    out.append((addr, n))
                    addr += n
        return out

    def elaborate(self, platform):
        m = Module()
        P, L, W, BR = self.positions, len(self.layers), self.beat_bits, self.row_beats
        R, Ks, Gs = self.pe * self.simd * self.weight_bits, self.chunks, self.groups
        req, rdata = self.mem.req, self.mem.r  # reads only: mem.w stays idle
        attrs = {"ram_style": "block", "no_rw_check": 1}  # never the same address in a cycle
        # spike memories (layers may share one, `act_of`): a write port, a read port each
        act_of = self.act_of
        lif_written = {act_of[x + 1] for x in range(L - 1) if x not in self.sasa}
        mems = []
        for mi in range(max(act_of) + 1):
            n = max(self.ins[x] for x in range(L) if act_of[x] == mi)
            mem = Memory(shape=unsigned(n), depth=P, init=[], attrs=attrs)
            m.submodules[f"act{mi}"] = mem
            gran = mi in lif_written or (mi == act_of[0] and self.input_lif is not None)
            mems.append((mem.write_port(granularity=self.pe) if gran else mem.write_port(),
                         mem.read_port(domain="sync")))
        acts = [mems[mi] for mi in act_of]  # layer x's input memory
        if self.sasa:  # the LIF at a SASA boundary writes Q|K here, the pass reads it
            qk = Memory(shape=unsigned(max(self.outs[b] for b in self.sasa)), depth=P, init=[],
                        attrs=attrs)
            m.submodules.qk = qk
            qk_w, qk_r = qk.write_port(granularity=self.pe), qk.read_port(domain="sync")
        if self.u_memory:  # U, tile-major (word g*P + p: pe lanes of residual_bits)
            rb, Gu = self.residual_bits, self.ins[0] // self.pe
            m.submodules.u = umem = Memory(shape=unsigned(self.pe * rb), depth=Gu * P, init=[],
                                           attrs=attrs)
            uw, ur = umem.write_port(), umem.read_port(domain="sync")
            u_last = Gu * P - 1
        m.submodules.tiles = tiles = Memory(shape=unsigned(R), depth=2 * max(Ks), init=[], attrs=attrs)
        tile_w, tile_r = tiles.write_port(), tiles.read_port(domain="sync")
        kmax = max(Ks)

        def counter(n, name):
            return Signal(range(max(n, 2)), name=name)

        # -- load the first layer's spikes (through the input LIF: pe lanes a beat) -----
        loaded, n_in = Signal(), counter(P, "n_in")
        w0 = acts[0][0]
        fire_in = Signal()
        l_o = counter(L, "l_o")  # the output side's layer
        can_load = ~loaded
        if self.u_memory:  # U is read by the last layer's outputs: load once they are out
            can_load = ~loaded & (l_o != L - 1)
            ul = Signal(range(u_last + 1), name="u_load")
        if self.token_major:  # U comes token-major; the output pass must be done too
            out_go = Signal()
            can_load = can_load & ~out_go
        m.d.comb += [self.i.ready.eq(can_load), fire_in.eq(self.i.valid & can_load),
                     w0.addr.eq(n_in)]
        last_in = n_in == P - 1
        if self.token_major:  # into U only (word g*P + n*T + t); the LIF pass makes S
            u_in = self._token_walk(m, fire_in, "u_in")
            with m.If(fire_in):
                m.d.comb += [uw.addr.eq(u_in), uw.data.eq(self.i.payload.as_value()),
                             uw.en.eq(1)]
                m.d.sync += ul.eq(Mux(ul == u_last, 0, ul + 1))
            last_in = ul == u_last
        elif self.input_lif is None:
            m.d.comb += [w0.data.eq(self.i.payload), w0.en.eq(Mux(fire_in, -1, 0))]
        else:
            vth, shift, state_bits = self.input_lif
            g_in, t_in = counter(self.ins[0] // self.pe, "g_in"), counter(self.time_steps, "t_in")
            v = membranes(self.pe, state_bits)
            th = threshold_table(m, g_in, vth, self.pe, state_bits)
            xs = [self.i.payload[j] for j in range(self.pe)]
            spikes = lif_lanes(m, xs, v, th, first=t_in == 0, step=fire_in, input_shift=shift)
            m.d.comb += [w0.data.eq(Cat(*spikes).replicate(len(w0.en))),
                         w0.en.eq(Mux(fire_in, Const(1, len(w0.en)) << g_in, 0))]
            with m.If(fire_in):
                m.d.sync += t_in.eq(Mux(t_in == self.time_steps - 1, 0, t_in + 1))
                with m.If(last_in):
                    m.d.sync += g_in.eq(Mux(g_in == len(w0.en) - 1, 0, g_in + 1))
            last_in = last_in & (g_in == len(w0.en) - 1)
        if self.u_memory and not self.token_major:
            with m.If(fire_in):
                m.d.comb += [uw.addr.eq(ul), uw.data.eq(self.i.payload.as_value()), uw.en.eq(1)]
                m.d.sync += ul.eq(Mux(ul == u_last, 0, ul + 1))
        with m.If(fire_in):
            m.d.sync += n_in.eq(Mux(n_in == P - 1, 0, n_in + 1))
            with m.If(last_in):
                m.d.sync += loaded.eq(1)

        # -- requests over every layer's tiles -------------------------------------
        ahead = Signal(range(3))
        l_req, g_req = counter(L, "l_req"), counter(max(Gs), "g_req")
        c_req = counter(max(len(self.tile_requests(x)) for x in range(L)), "c_req")
        n_req = _pick(m, l_req, [len(self.tile_requests(x)) for x in range(L)], "n_req")
        g_last = _pick(m, l_req, [g - 1 for g in Gs], "g_req_last")
        first_len = _pick(m, l_req, [self.tile_requests(x)[0] for x in range(L)], "first_len")
        last_len = _pick(m, l_req, [self.tile_requests(x)[-1] for x in range(L)], "last_len")
        addr = Signal(self.addr_bits, init=self.base_addr)
        last_req = c_req == n_req - 1
        length = Signal(range(self.max_burst + 1))
        m.d.comb += [length.eq(Mux(last_req, last_len, first_len)), req.valid.eq(ahead != 2),
                     req.payload.addr.eq(addr), req.payload.count.eq(length - 1),
                     req.payload.write.eq(0)]
        tile_requested = Signal()
        with m.If(req.valid & req.ready):
            m.d.sync += [addr.eq(addr + length), c_req.eq(c_req + 1)]
            with m.If(last_req):
                m.d.comb += tile_requested.eq(1)
                m.d.sync += [c_req.eq(0), g_req.eq(g_req + 1)]
                with m.If(g_req == g_last):
                    m.d.sync += [g_req.eq(0), l_req.eq(l_req + 1)]
                    with m.If(l_req == L - 1):
                        m.d.sync += [l_req.eq(0), addr.eq(self.base_addr)]

        # -- fill ------------------------------------------------------------------
        full = [Signal(name="full0"), Signal(name="full1")]
        f_sel, b_f, k_f = Signal(), counter(BR, "b_f"), counter(kmax, "k_f")
        l_f, g_f = counter(L, "l_f"), counter(max(Gs), "g_f")
        k_f_last = _pick(m, l_f, [k - 1 for k in Ks], "k_f_last")
        g_f_last = _pick(m, l_f, [g - 1 for g in Gs], "g_f_last")
        low = Signal(max(1, (BR - 1) * W))
        m.d.comb += [rdata.ready.eq(1), tile_w.addr.eq(f_sel * kmax + k_f),
                     tile_w.data.eq(Cat(low, rdata.payload) if BR > 1 else rdata.payload)]
        with m.If(rdata.valid):
            with m.If(b_f == BR - 1):
                m.d.comb += tile_w.en.eq(1)
                m.d.sync += [b_f.eq(0), k_f.eq(k_f + 1)]
                with m.If(k_f == k_f_last):
                    m.d.sync += [k_f.eq(0), f_sel.eq(~f_sel), g_f.eq(g_f + 1)]
                    m.d.sync += Cat(*full).bit_select(f_sel, 1).eq(1)
                    with m.If(g_f == g_f_last):
                        m.d.sync += [g_f.eq(0), l_f.eq(Mux(l_f == L - 1, 0, l_f + 1))]
            if BR > 1:
                with m.Else():
                    m.d.sync += [b_f.eq(b_f + 1), low.word_select(b_f, W).eq(rdata.payload)]

        # -- compute ---------------------------------------------------------------
        advance, go = Signal(), Signal()
        c_sel = Signal()
        lay, g, p, k = counter(L, "layer"), counter(max(Gs), "g"), counter(P, "p"), counter(kmax, "k")
        written = Signal(max(1, L - 1))  # layer l's outputs are all in spike memory l + 1
        k_last = _pick(m, lay, [x - 1 for x in Ks], "k_last")
        g_last_c = _pick(m, lay, [x - 1 for x in Gs], "g_last")
        tile_base = _pick(m, lay, [sum(Gs[:x]) for x in range(L)], "tile_base")
        src_ready = Signal()
        # layer x may start when its input is complete: loaded, its predecessor's LIF done,
        # or the SASA pass after it; a DWC pass over it done. (The passes' flags fall a
        # cycle after the flag they start on: and-ed with it, a layer never sees a stale one.)
        flags = [loaded] + [written[x] for x in range(L - 1)]
        for b, block in self.sasa.items():  # layer b + 1 waits for the SASA pass
            m.submodules[f"sasa{b}"] = block
            flags[b + 1] = written[b] & self._sasa_pass(m, block, qk_r, acts[b + 1][0],
                                                        written[b], P)
        u_phases = []  # passes that own U's read port
        if self.token_major:  # the input LIF as a pass over U (tile-major) into act0
            lif_phase = Signal()
            u_phases.append(lif_phase)
            flags[0] = loaded & self._lif_pass(m, loaded, lif_phase, ur, acts[0][0], P)
        dwc_phase = Const(0)
        phases = {}  # memory -> a DWC pass owns its read port
        for x, block in self.dwc.items():  # the DWC pass reads layer x's input first
            m.submodules[f"dwc{x}"] = block
            phase = Signal(name=f"dwc{x}_phase")
            phases.setdefault(act_of[x], []).append(phase)
            flags[x] = flags[x] & self._dwc_pass(m, block, acts[x][1], flags[x], phase, uw, ur, P)
        if phases:
            dwc_phase = Cat(*[ph for phs in phases.values() for ph in phs]).any()
        u_phases.append(dwc_phase)
        m.d.comb += src_ready.eq(Cat(*flags).bit_select(lay, 1))
        m.d.comb += [go.eq(src_ready & Cat(*full).bit_select(c_sel, 1) & advance),
                     tile_r.addr.eq(c_sel * kmax + k), tile_r.en.eq(advance)]
        for mi, (_, rp) in enumerate(mems):
            with m.If(~Cat(*phases.get(mi, [Const(0)])).any()):
                m.d.comb += [rp.addr.eq(p), rp.en.eq(advance)]
        consumed = Signal()
        with m.If(go):
            m.d.sync += k.eq(k + 1)
            with m.If(k == k_last):
                m.d.sync += [k.eq(0), p.eq(p + 1)]
                with m.If(p == P - 1):
                    m.d.comb += consumed.eq(1)
                    m.d.sync += [p.eq(0), g.eq(g + 1), c_sel.eq(~c_sel),
                                 Cat(*full).bit_select(c_sel, 1).eq(0)]
                    with m.If(g == g_last_c):
                        m.d.sync += [g.eq(0), lay.eq(lay + 1)]
                        if L > 1:
                            with m.If(lay != 0):
                                m.d.sync += written.bit_select((lay - 1).as_unsigned(), 1).eq(0)
                        with m.If(lay == L - 1):
                            m.d.sync += [lay.eq(0), loaded.eq(0)]
        m.d.sync += ahead.eq(ahead + tile_requested - consumed)

        tile_id = sum(Gs)
        tags = {"valid": Signal(name="valid_s1"), "first": Signal(name="first_s1"),
                "last": Signal(name="last_s1"), "g": Signal(range(max(tile_id, 2)), name="tile_s1")}
        k1, l1 = counter(kmax, "k_s1"), counter(L, "l_s1")
        with m.If(advance):
            m.d.sync += [tags["valid"].eq(go), tags["first"].eq(k == 0), tags["last"].eq(k == k_last),
                         tags["g"].eq(tile_base + g), k1.eq(k), l1.eq(lay)]
        data = Signal(max(self.ins))
        with m.Switch(l1):
            for x, (_, rp) in enumerate(acts):
                with m.Case(x):
                    m.d.comb += data.eq(rp.data)  # layer x's input memory
        gates = Signal(self.simd)
        m.d.comb += gates.eq(data.word_select(k1, self.simd))
        sums, tags = gated_sum(m, words=tile_r.data, gates=gates, pe=self.pe, simd=self.simd,
                               weight_bits=self.weight_bits, advance=advance, tags=tags,
                               registered=True)

        # -- output register (the accumulator), then the LIF or the port ---------
        pe = self.pe
        acc = [Signal(signed(self.acc_bits), name=f"acc{j}") for j in range(pe)]
        acc_valid = Signal()
        bias = [Signal(signed(self.acc_bits), name=f"bias{j}") for j in range(pe)]
        biases = [b for _, bs, _ in self.layers for b in bs]
        with m.Switch(tags["g"]):
            for t_i in range(tile_id):
                with m.Case(t_i):
                    m.d.comb += [bias[j].eq(biases[t_i * pe + j]) for j in range(pe)]
        g_o, p_o = counter(max(Gs), "g_o"), counter(P, "p_o")
        t_o = counter(self.time_steps, "t_o")
        final = l_o == L - 1
        sink_ready = Signal()
        taken = Signal()
        lif_in = {x: acc for x in range(L)}
        if self.u_memory:  # out + U: into U again, into the LIF after it, or out
            add = Signal()
            m.d.comb += add.eq(Cat(*[l_o == x for x in self.adds]).any())
            ua = Signal(range(u_last + 1), name="u_addr")
            ua_next = Mux(ua == u_last, 0, ua + 1)
            usums = [Signal(signed(rb), name=f"usum{j}") for j in range(pe)]
            m.d.comb += [usums[j].eq(acc[j] + ur.data.word_select(j, rb).as_signed())
                         for j in range(pe)]
            if self.token_major:
                u_phases.append(out_go)
            with m.If(~Cat(*u_phases).any()):
                m.d.comb += [ur.addr.eq(Mux(taken & add, ua_next, ua)), ur.en.eq(1)]
            with m.If(taken & add):
                m.d.sync += ua.eq(ua_next)
                m.d.comb += [uw.addr.eq(ua), uw.data.eq(Cat(*usums)), uw.en.eq(1)]
            lif_in.update({x: usums for x in self.adds})
            if self.token_major:  # the last layer's U'' stays in U; the output pass sends it
                m.d.comb += sink_ready.eq(1)
                self._out_pass(m, out_go, ur, P)
            else:
                m.d.comb += [sink_ready.eq(~final | self.o.ready),
                             self.o.valid.eq(acc_valid & final)]
                m.d.comb += [self.o.payload[j].eq(usums[j]) for j in range(pe)]
        elif self.residual_bits is None:
            m.d.comb += [sink_ready.eq(~final | self.o.ready), self.o.valid.eq(acc_valid & final)]
            m.d.comb += [self.o.payload[j].eq(acc[j]) for j in range(pe)]
        else:  # join with the residual stream
            m.d.comb += [sink_ready.eq(~final | (self.o.ready & self.u.valid)),
                         self.o.valid.eq(acc_valid & final & self.u.valid),
                         self.u.ready.eq(acc_valid & final & self.o.ready)]
            m.d.comb += [self.o.payload[j].eq(self.u.payload[j] + acc[j]) for j in range(pe)]
        m.d.comb += advance.eq(~(tags["valid"] & acc_valid & ~sink_ready))
        with m.If(advance & tags["valid"]):
            m.d.sync += acc_valid.eq(tags["last"])
            for j in range(pe):
                m.d.sync += acc[j].eq(Mux(tags["first"], bias[j], acc[j]) + sums[j])
        with m.Elif(sink_ready):
            m.d.sync += acc_valid.eq(0)
        m.d.comb += taken.eq(acc_valid & sink_ready)
        g_o_last = _pick(m, l_o, [x - 1 for x in Gs], "g_o_last")
        with m.If(taken):
            m.d.sync += [p_o.eq(p_o + 1), t_o.eq(Mux(t_o == self.time_steps - 1, 0, t_o + 1))]
            with m.If(p_o == P - 1):
                m.d.sync += [p_o.eq(0), g_o.eq(g_o + 1)]
                with m.If(g_o == g_o_last):
                    m.d.sync += [g_o.eq(0), l_o.eq(Mux(final, 0, l_o + 1))]
                    if L > 1:
                        with m.If(~final):
                            m.d.sync += written.bit_select(l_o, 1).eq(1)
                    if self.token_major:
                        with m.If(final):
                            m.d.sync += out_go.eq(1)
        for x, segments in enumerate(self.lifs):
            here = Signal(name=f"lif{x}_take")
            m.d.comb += here.eq(taken & (l_o == x))
            spikes, first = None, 0
            for n, vth, shift, state_bits in segments:  # groups [first/pe, (first + n)/pe)
                inside = ((g_o >= first // pe) & (g_o < (first + n) // pe)
                          if len(segments) > 1 else Const(1))
                v = membranes(pe, state_bits)
                th = threshold_table(m, g_o - first // pe, vth, pe, state_bits)
                seg = Cat(*lif_lanes(m, lif_in[x], v, th, first=t_o == 0, step=here & inside,
                                     input_shift=shift))
                spikes = seg if spikes is None else Mux(inside, seg, spikes)
                first += n
            wp = qk_w if x in self.sasa else acts[x + 1][0]
            with m.If(here):  # memories shared by layers: one writer at a time
                m.d.comb += [wp.addr.eq(p_o), wp.data.eq(spikes.replicate(len(wp.en))),
                             wp.en.eq(Const(1, len(wp.en)) << g_o)]
        return m

    @staticmethod
    def _feed(m: Module, block, rd, start_flag, P: int) -> Signal:
        """Once ``start_flag`` is set, read words 0 .. P-1 through the read port ``rd`` into
        ``block.i``, one a cycle while it is ready; ``block.o`` is always ready (its beats
        are the caller's to store). Returns ``started`` (set the cycle after the flag is
        seen; cleared, with the read counter, when the flag is)."""
        started, s_valid = Signal(), Signal()
        r = Signal(range(P + 1))
        advance, issue = Signal(), Signal()
        m.d.comb += [advance.eq(~s_valid | block.i.ready),
                     issue.eq(advance & started & (r != P)),
                     block.i.valid.eq(s_valid), block.i.payload.eq(rd.data),
                     block.o.ready.eq(1)]
        with m.If(started):  # a read port may be shared by passes that run at other times
            m.d.comb += [rd.addr.eq(r), rd.en.eq(issue)]
        with m.If(start_flag & ~started):
            m.d.sync += started.eq(1)
        with m.If(advance):
            m.d.sync += s_valid.eq(issue)
        with m.If(issue):
            m.d.sync += r.eq(r + 1)
        with m.If(~start_flag):
            m.d.sync += [started.eq(0), r.eq(0)]
        return started

    def _sasa_pass(self, m: Module, block, qk_r, y_write, start_flag, P: int) -> Signal:
        """Once ``start_flag`` (every Q|K spike written) is set: read the Q|K memory a word a
        cycle into `block` (SASA) and write its Y words into the next layer's spike memory;
        returns the flag set when the last Y word is written (cleared with ``start_flag``,
        when the next layer has read them all)."""
        self._feed(m, block, qk_r, start_flag, P)
        passed, y = Signal(), Signal(range(max(P, 2)))
        with m.If(block.o.valid):
            m.d.comb += [y_write.addr.eq(y), y_write.data.eq(block.o.payload),
                         y_write.en.eq(-1)]
            m.d.sync += y.eq(Mux(y == P - 1, 0, y + 1))
            with m.If(y == P - 1):
                m.d.sync += passed.eq(1)
        with m.If(~start_flag):  # the next layer has read every Y word: ready for an image
            m.d.sync += passed.eq(0)
        return passed

    def _dwc_pass(self, m: Module, block, rd, start_flag, phase, uw, ur, P: int) -> Signal:
        """Once ``start_flag`` (the image loaded: S in act0, U in the U memory) is set:
        stream S through `block` (the DWC) and add each of its beats into U (read, then
        written the next cycle: pipelined, so ``block.o`` is always ready). ``phase`` is
        driven high while the pass owns act0's and U's read ports. Returns the flag set
        the cycle after the last beat is written (cleared with ``start_flag``)."""
        pe, rb = self.pe, self.residual_bits
        G = self.ins[0] // pe
        started = self._feed(m, block, rd, start_flag, P)
        done = Signal()
        m.d.comb += phase.eq(started & ~done)
        # block.o: per token n: for g: for t; U word g*P + n*T + t
        beats = Signal(range(G * P + 1))
        addr = self._token_walk(m, block.o.valid, "dwc")
        v_r, a_r = Signal(), Signal.like(addr)
        d_r = [Signal(signed(block.acc_bits), name=f"dwc_d{j}") for j in range(pe)]
        m.d.sync += v_r.eq(block.o.valid)
        with m.If(block.o.valid):
            m.d.comb += [ur.addr.eq(addr), ur.en.eq(1)]
            m.d.sync += [a_r.eq(addr), beats.eq(beats + 1)] + \
                [d_r[j].eq(block.o.payload[j]) for j in range(pe)]
        with m.If(v_r):
            m.d.comb += [uw.addr.eq(a_r), uw.en.eq(1),
                         uw.data.eq(Cat(*[(ur.data.word_select(j, rb).as_signed() + d_r[j])[:rb]
                                          for j in range(pe)]))]
            with m.If(beats == G * P):
                m.d.sync += done.eq(1)
        with m.If(~start_flag):
            m.d.sync += [done.eq(0), beats.eq(0)]
        return done

    def _token_walk(self, m: Module, step, name: str) -> Signal:
        """The U word ``g*P + n*T + t`` of a token-major walk (for n: for g: for t), one
        step on ``step``; it wraps after an image's ``(D/pe) * P`` steps."""
        T, P, G = self.time_steps, self.positions, self.ins[0] // self.pe
        t, g = Signal(range(max(T, 2)), name=f"{name}_t"), Signal(range(max(G, 2)), name=f"{name}_g")
        n_off = Signal(range(P + 1), name=f"{name}_n_off")
        g_off = Signal(range(G * P + 1), name=f"{name}_g_off")
        addr = Signal(range(G * P), name=f"{name}_addr")
        m.d.comb += addr.eq(g_off + n_off + t)
        with m.If(step):
            m.d.sync += t.eq(Mux(t == T - 1, 0, t + 1))
            with m.If(t == T - 1):
                m.d.sync += [g.eq(g + 1), g_off.eq(g_off + P)]
                with m.If(g == G - 1):
                    m.d.sync += [g.eq(0), g_off.eq(0), n_off.eq(Mux(n_off == P - T, 0, n_off + T))]
        return addr

    def _lif_pass(self, m: Module, start_flag, phase, ur, wp, P: int) -> Signal:
        """Once ``start_flag`` (U loaded) is set: read U word by word (tile-major: t
        innermost, so a lane's membrane is one register) through the input LIF into the
        first layer's spike memory, a word a cycle. Returns the flag set the cycle after the
        last spikes are written (cleared with ``start_flag``)."""
        pe, T, rb = self.pe, self.time_steps, self.residual_bits
        G = self.ins[0] // pe
        N = G * P
        q = Signal(range(N + 1), name="lif_q")
        g, p = Signal(range(max(G, 2)), name="lif_g"), Signal(range(max(P, 2)), name="lif_p")
        g_r, p_r = Signal.like(g, name="lif_g_r"), Signal.like(p, name="lif_p_r")
        t, t_r = Signal(range(max(T, 2)), name="lif_t"), Signal(range(max(T, 2)), name="lif_t_r")
        v_r, last_r, done = Signal(), Signal(), Signal()
        issue = Signal()
        m.d.comb += [issue.eq(start_flag & (q != N)), phase.eq(start_flag & ~done)]
        with m.If(issue):
            m.d.comb += [ur.addr.eq(q), ur.en.eq(1)]
            m.d.sync += [q.eq(q + 1), g_r.eq(g), p_r.eq(p), t_r.eq(t), last_r.eq(q == N - 1),
                         p.eq(Mux(p == P - 1, 0, p + 1)), t.eq(Mux(t == T - 1, 0, t + 1))]
            with m.If(p == P - 1):
                m.d.sync += g.eq(g + 1)
        m.d.sync += v_r.eq(issue)
        vth, shift, state_bits = self.input_lif
        v = membranes(pe, state_bits)
        th = threshold_table(m, g_r, vth, pe, state_bits)
        xs = [ur.data.word_select(j, rb).as_signed() for j in range(pe)]
        spikes = lif_lanes(m, xs, v, th, first=t_r == 0, step=v_r, input_shift=shift)
        with m.If(v_r):
            m.d.comb += [wp.addr.eq(p_r), wp.data.eq(Cat(*spikes).replicate(len(wp.en))),
                         wp.en.eq(Const(1, len(wp.en)) << g_r)]
            with m.If(last_r):
                m.d.sync += done.eq(1)
        with m.If(~start_flag):
            m.d.sync += [done.eq(0), q.eq(0), g.eq(0), p.eq(0), t.eq(0)]
        return done

    def _out_pass(self, m: Module, go, ur, P: int) -> None:
        """While ``go`` (set when the last layer's last output is in U): send U token-major
        on ``o`` (for n: for g: for t), a word a cycle while ``o`` is ready; clears ``go``
        after the last word has left.

        Two stages: the U read (valid ``out_read``), then a register (``out_valid``) that
        drives ``o``, so the block RAM's clock-to-out does not reach into the block behind
        (the 49.6 MHz external-all build's critical path ran from this read through the
        head LIF's adder)."""
        pe, rb = self.pe, self.residual_bits
        N = self.ins[0] // pe * P
        ov_a, ov = Signal(name="out_read"), Signal(name="out_valid")
        r, adv, adv_a, issue = Signal(range(N + 1), name="out_r"), Signal(), Signal(), Signal()
        word = Signal(len(ur.data), name="out_word")
        m.d.comb += [adv.eq(~ov | self.o.ready), adv_a.eq(~ov_a | adv),
                     issue.eq(adv_a & go & (r != N))]
        addr = self._token_walk(m, issue, "out")
        with m.If(go):  # a read port's enable is 1 unless driven: 0 holds a stalled word
            m.d.comb += [ur.addr.eq(addr), ur.en.eq(issue)]
        with m.If(issue):
            m.d.sync += r.eq(r + 1)
        with m.If(adv_a):
            m.d.sync += ov_a.eq(issue)
        with m.If(adv):
            m.d.sync += [ov.eq(ov_a), word.eq(ur.data)]
        with m.If(go & (r == N) & ~ov_a & adv):
            m.d.sync += [go.eq(0), r.eq(0)]
        m.d.comb += [self.o.valid.eq(ov)]
        m.d.comb += [self.o.payload[j].eq(word.word_select(j, rb).as_signed())
                     for j in range(pe)]

    def model(self) -> EngineSequenceModel:
        return EngineSequenceModel(self)


def sequence_image(seq: EngineSequence) -> list[int]:
    """Every layer's weights as memory words from ``base_addr``, in request order."""
    mask, words = (1 << seq.beat_bits) - 1, []
    for w, _, _ in seq.layers:
        for row in weight_rows(w, seq.pe, seq.simd, seq.weight_bits):
            words += [(row >> (b * seq.beat_bits)) & mask for b in range(seq.row_beats)]
    return words


def _lif_segments(lif, channels: int, pe: int) -> list[tuple[int, list[int], int, int]]:
    """A boundary's LIF as segments [(channels, vth, input_shift, state_bits)]: one
    (vth, input_shift, state_bits) for all channels, or a list of segments (e.g. q_lif and
    k_lif behind a layer computing q and k), each a multiple of ``pe`` channels."""
    if len(lif) == 3 and not isinstance(lif[0], tuple):
        lif = [(channels, *lif)]
    out = []
    for n, vth, sh, sb in lif:
        check_divides("pe", pe, check_int("segment channels", n))
        out.append((n, check_vth(vth, n, sb), check_int("input_shift", sh, 0), sb))
    if sum(n for n, *_ in out) != channels:
        raise ValueError(f"the LIF segments must cover the layer's {channels} outputs, not "
                         f"{sum(n for n, *_ in out)}")
    return out
