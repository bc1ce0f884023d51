"""Build the accelerator graph (hwgen.compiler.graph) from an integer model and a folding:
one block per layer, the forks and FIFOs of the residual stream, and each stream's tap.
"""

from __future__ import annotations

import dataclasses

import torch
from amaranth import Shape

from hwgen.compiler.engine_body import BEAT_BITS, BodySpec, ExternalBody, body_words
from hwgen.compiler.graph import Folding, Graph, Node, TapSpec
from hwgen.compiler.memmap import map_memory
from quant.config import SasaMode
from quant.ir import IntModel, LIFLayer
from rtl_templates.common import bits_for
from rtl_templates.conv_engine import ConvEngine
from rtl_templates.dwconv import DWConv3x3
from rtl_templates.engine_sequence import sequence_image
from rtl_templates.head import Head
from rtl_templates.lif_array import WORD, LIFArray
from rtl_templates.lif_linear import LIFLinear
from rtl_templates.linear_engine import memory_image
from rtl_templates.maxpool import SpikeMaxPool2x2
from rtl_templates.memport import MemPortRAM
from rtl_templates.pixel_conv import PixelConv3x3
from rtl_templates.plumbing import Fork, StreamFIFO, bram_depth, ram_in_block_ram
from rtl_templates.residual_add import ResidualAdd
from rtl_templates.sasa import SASA
from rtl_templates.spike_collector import SpikeCollector
from rtl_templates.spike_conv import SpikeConv3x3
from rtl_templates.spike_linear import SpikeLinear
from rtl_templates.spram_fifo import SPRAM_DEPTH, SPRAMFIFO, spram_slices

# ------------------------------------------------------------------------------- builder

class _Builder:
    def __init__(self, model: IntModel, folding: dict[str, Folding], lanes_u: int,
                 family: str | None, spram: int, lif_block: frozenset[str],
                 fuse: frozenset[str], body: BodySpec | None = None):
        self.body = body
        self.family = family
        self.lif_block = lif_block
        self.fuse = fuse
        self.spram_left = spram
        self.m = model
        self.cfg = model.config
        self.f = folding
        self.L = lanes_u
        self.g = Graph(model)
        self.T = self.cfg.time_steps
        self.tokens = 0  # tokens per image of the grid being built
        self.front = body is not None and body.front
        if self.front:  # the body's weights from 0, then each engine conv's (front_convs)
            self.mem_next = body_words(model)
            total = self.mem_next + sum(front_words(c, model.weight_bits)
                                        for c in front_convs(model))
            self.mem_bits = body.addr_bits or max(4, bits_for(total - 1))

    def node(self, name: str, kind: str, component, layer: str | None = None) -> Node:
        return self.g.add(name, kind, component, layer, self.tokens)

    def conv_style(self, conv, f: Folding) -> str:
        rows = (conv.out_channels // f.pe) * 9 * (conv.in_channels // f.simd)
        return weight_style(rows, f.pe * f.simd * self.m.weight_bits, self.family)

    def fold(self, layer: str) -> Folding:
        return self.f.get(layer, Folding())

    def spikes_tap(self, keys, grid, channels) -> TapSpec:
        return TapSpec("spikes", tuple(keys), grid, channels, steps=self.T)

    def values_tap(self, keys, grid, channels, width, lanes, steps=None,
                   tile_major: bool = False) -> TapSpec:
        return TapSpec("values", tuple(keys), grid, channels, width, lanes,
                       self.T if steps is None else steps, tile_major)

    def fanout(self, name: str, src: tuple[str, str], shape, n: int, tap: TapSpec):
        """A fork after `src` with `n` outputs; returns the fork's output refs."""
        fork = self.node(f"{name}.fork", "fork", Fork(shape, n))
        self.g.connect(src, (fork.name, "i"), tap)
        return [(fork.name, f"o{k}") for k in range(n)]

    def fifo(self, name: str, src: tuple[str, str], shape, depth: int,
             beats: int) -> tuple[str, str]:
        """A FIFO of `depth` beats after `src`, which carries `beats` beats per image. On an
        iCE40 any RAM takes a whole 4 kbit block RAM: small FIFOs go in flip-flops, big
        ones in SPRAM while the device has some left (rtl_templates/spram_fifo.py). On an
        ECP5 a FIFO in block RAM gets an output register (`StreamFIFO` ``out_reg``): the
        RAM's clock-to-out is then not in front of the next block's logic; one deeper than a
        block RAM is banked by hand (``bank_depth``), so the RAMs' clock-to-out is not in
        front of the multiplexer between them either (Yosys' ECP5 mapping leaves the
        block RAM's own output register unused)."""
        width = Shape.cast(shape).width
        bits = depth * width
        if self.family == "ice40" and bits > SMALL_FIFO_BITS \
                and spram_slices(width) <= self.spram_left and depth <= SPRAM_DEPTH:
            self.spram_left -= spram_slices(width)
            comp = SPRAMFIFO(shape, depth, spram=True)
        else:
            style = "logic" if self.family == "ice40" and bits <= SMALL_FIFO_BITS else None
            out_reg = self.family == "ecp5" and ram_in_block_ram(depth, width, self.family)
            per_bram = bram_depth(depth, width, self.family) if out_reg else depth
            comp = StreamFIFO(shape, depth, style, out_reg=out_reg,
                              bank_depth=per_bram if per_bram < depth else None)
        node = self.node(name, "fifo", comp)
        node.beats = beats
        self.g.connect(src, (node.name, "i"))
        return (node.name, "o")

    def lif(self, name: str, lif, channels: int, lanes: int, in_width: int,
            repeat: bool = False):
        storage = "block" if name in self.lif_block and 16 % lanes == 0 else "registers"
        comp = LIFArray(channels=channels, lanes=lanes, time_steps=self.T, in_width=in_width,
                        vth=lif.vth.tolist(), input_shift=lif.input_shift,
                        state_bits=lif.state_bits, repeat=repeat, storage=storage,
                        pipelined=self.family == "ecp5")
        return self.node(name, "lif", comp, name)

    def fusable(self, layer: str, f: Folding, lanes: int) -> bool:
        """Whether the spike linear `layer` is fused with the LIF array feeding it (asked for
        in `fuse`, dense, and the spike memory's 16-bit rows split into whole beats)."""
        return (layer in self.fuse and f.mode == "dense" and WORD % lanes == 0
                and WORD % f.simd == 0)

    def lif_linear(self, layer: str, lif, linear, f: Folding, pe: int, lanes: int,
                   in_width: int) -> Node:
        """`lif` and the spike linear `linear` as one LIFLinear node named `layer`."""
        comp = LIFLinear(linear.weight.tolist(), linear.bias.tolist(), time_steps=self.T,
                         weight_bits=self.m.weight_bits, acc_bits=linear.acc_bits, pe=pe,
                         simd=f.simd, lanes=lanes, in_width=in_width, vth=lif.vth.tolist(),
                         input_shift=lif.input_shift, state_bits=lif.state_bits)
        return self.node(layer, "lif_linear", comp, layer)

    def build(self) -> Graph:
        m, cfg, T, g = self.m, self.cfg, self.T, self.g
        wbits = m.weight_bits
        # ---- stem
        src = None
        src_tap = None
        grids = cfg.stem_grids()
        for i, stage in enumerate(m.stem):
            h, w = grids[i]
            self.tokens = h * w
            conv, cout = stage.conv, stage.conv.out_channels
            f = self.fold(f"stem.{i}.conv")
            name = f"stem.{i}.conv"
            if conv.pixel_input:
                comp = PixelConv3x3(conv.weight.tolist(), conv.bias.tolist(), height=h, width=w,
                                    pixel_bits=conv.pixel_bits, weight_bits=wbits,
                                    acc_bits=conv.acc_bits, pe=f.pe, simd=f.simd,
                                    weight_style=self.conv_style(conv, f),
                                    pipelined=self.family == "ecp5")
                node = self.node(name, "pixel_conv", comp, name)
                g.input = (name, "i")
                g.input_tap = TapSpec("pixels", ("pixels",), (h, w), conv.in_channels,
                                      width=conv.pixel_bits)
                steps = 1
            elif self.front and i > 0:  # weights from the memory port, LIF into a memory
                comp = self.conv_engine(conv, h, w, f.pe)
                node = self.node(name, "conv_engine", comp, name)
                g.connect(src, (name, "i"), src_tap)
                lif = self.collector(f"stem.{i}.lif", stage.lif, cout, f.pe, conv.acc_bits,
                                     h * w)
                g.connect((node.name, "o"), (lif.name, "i"),
                          self.values_tap([name], (h, w), cout, conv.acc_bits, f.pe,
                                          tile_major=True))
            else:
                comp = SpikeConv3x3(conv.weight.tolist(), conv.bias.tolist(), height=h, width=w,
                                    time_steps=T, weight_bits=wbits, acc_bits=conv.acc_bits,
                                    pe=f.pe, simd=f.simd, weight_style=self.conv_style(conv, f),
                                    pipelined=self.family == "ecp5", mode=f.mode)
                node = self.node(name, "spike_conv", comp, name)
                if i == 0:  # event frames: the accelerator's input is spikes, T beats a token
                    g.input = (name, "i")
                    g.input_tap = self.spikes_tap(["frames"], (h, w), conv.in_channels)
                else:
                    g.connect(src, (name, "i"), src_tap)
                steps = T
            if node.kind != "conv_engine":
                lif = self.lif(f"stem.{i}.lif", stage.lif, cout, f.pe, conv.acc_bits,
                               repeat=conv.pixel_input)
                g.connect((node.name, "o"), (lif.name, "i"),
                          self.values_tap([name], (h, w), cout, conv.acc_bits, f.pe, steps))
            src, src_tap = (lif.name, "o"), self.spikes_tap([lif.name], (h, w), cout)
            if stage.pool:
                pool = self.node(f"stem.{i}.pool", "pool",
                             SpikeMaxPool2x2(channels=cout, height=h, width=w, time_steps=T),
                             f"stem.{i}.pool")
                g.connect(src, (pool.name, "i"), src_tap)
                src = (pool.name, "o")
                src_tap = self.spikes_tap([pool.name], (h // 2, w // 2), cout)

        # ---- RPE conv: starts the residual stream U (u_bits wide from here on)
        grid = cfg.grid
        H, W = grid
        self.tokens = cfg.tokens
        D, L, ub = cfg.dim, self.L, m.u_bits
        f = self.fold("rpe")
        if self.front:
            rpe = self.node("rpe", "conv_engine", self.conv_engine(m.rpe, H, W, L, ub), "rpe")
        else:
            rpe = self.node("rpe", "spike_conv", SpikeConv3x3(
                m.rpe.weight.tolist(), m.rpe.bias.tolist(), height=H, width=W, time_steps=T,
                weight_bits=wbits, acc_bits=ub, pe=L, simd=f.simd,
                weight_style=self.conv_style(m.rpe, Folding(L, f.simd)),
                pipelined=self.family == "ecp5", mode=f.mode), "rpe")
        g.connect(src, (rpe.name, "i"), src_tap)
        u, u_tap = (rpe.name, "o"), self.values_tap(["rpe"], grid, D, ub, L,
                                                     tile_major=self.front)
        u_shape = rpe.component.o.payload.shape()

        if self.body is not None:  # every block on one engine, its weights behind a memory port
            spec = dataclasses.replace(self.body, addr_bits=self.mem_bits) if self.front \
                else self.body
            body = self.node("body", "engine", ExternalBody(m, spec), "blocks")
            g.connect(u, (body.name, "i"), u_tap)
            u = (body.name, "o")
            u_tap = self.values_tap([f"blocks.{cfg.depth - 1}.u_mlp"], grid, D, ub, L,
                                    tile_major=self.front)
        beats_u = (D // L) * T
        token_mode = cfg.sasa_mode == SasaMode.TOKEN
        for b, blk in enumerate([] if self.body is not None else m.blocks):
            p = f"blocks.{b}"
            # U -> (FIFO -> add) and (LIF -> S). The add of token n waits for the DWC of
            # token n, which needs S (so U) up to token n+W+1 (channel mode), or for SASA,
            # which needs the whole image (token mode): the FIFO holds that skew. Sizes
            # are the smallest the cycle models found free of deadlock and of slow-down,
            # plus a beat (docs/hardware.md, "FIFO sizing").
            skew_tokens = cfg.tokens if token_mode else min(W + 2, cfg.tokens)
            u_to_add, u_to_lif = self.fanout(f"{p}.u_in", u, u_shape, 2, u_tap)
            u_delayed = self.fifo(f"{p}.u_fifo", u_to_add, u_shape, skew_tokens * beats_u,
                                  cfg.tokens * beats_u)
            attn_lif = self.lif(f"{p}.attn_lif", blk.attn_lif, D, L, ub)
            g.connect(u_to_lif, (attn_lif.name, "i"))
            s_shape = attn_lif.component.o.payload.shape()
            s_to_qk, s_to_dwc = self.fanout(f"{p}.s", (attn_lif.name, "o"), s_shape, 2,
                                            self.spikes_tap([f"{p}.attn_lif"], grid, D))
            # q and k read the same spikes: one linear with 2D outputs, one LIF array.
            fq = self.fold(f"{p}.qk")
            qk_acc = max(blk.q.acc_bits, blk.k.acc_bits)
            qk = self.node(f"{p}.qk", "linear", SpikeLinear(
                _cat_rows(blk.q.weight, blk.k.weight), _cat_rows(blk.q.bias, blk.k.bias),
                time_steps=T, weight_bits=wbits, acc_bits=qk_acc, pe=fq.pe, simd=fq.simd,
                mode=fq.mode, pipelined=self.family == "ecp5"), f"{p}.qk")
            if token_mode:
                g.connect(s_to_qk, (qk.name, "i"))
                s_dwc = self.fifo(f"{p}.s_fifo", s_to_dwc, s_shape, (skew_tokens + 1) * T,
                                  cfg.tokens * T)
            else:
                g.connect(self.fifo(f"{p}.s_fifo", s_to_qk, s_shape, skew_tokens * T,
                                    cfg.tokens * T),
                          (qk.name, "i"))
                s_dwc = s_to_dwc
            if blk.q_lif.input_shift != blk.k_lif.input_shift:
                raise ValueError(f"{p}: q and k LIFs must share input_shift")
            qk_lif = self.lif(f"{p}.qk_lif", LIFLayer(
                vth=torch.cat([blk.q_lif.vth, blk.k_lif.vth]),
                state_bits=max(blk.q_lif.state_bits, blk.k_lif.state_bits),
                input_shift=blk.q_lif.input_shift), 2 * D, fq.pe, qk_acc)
            g.connect((qk.name, "o"), (qk_lif.name, "i"),
                      self.values_tap([f"{p}.q", f"{p}.k"], grid, 2 * D, qk_acc, fq.pe))
            sasa = self.node(f"{p}.sasa", "sasa", SASA(
                dim=D, heads=cfg.heads, time_steps=T, tokens=cfg.tokens, mode=cfg.sasa_mode.value,
                agg_vth=blk.agg_lif.vth.tolist(), agg_input_shift=blk.agg_lif.input_shift,
                agg_state_bits=blk.agg_lif.state_bits), f"{p}.sasa")
            g.connect((qk_lif.name, "o"), (sasa.name, "i"),
                      self.spikes_tap([f"{p}.q_lif", f"{p}.k_lif"], grid, 2 * D))
            fo = self.fold(f"{p}.o")
            o = self.node(f"{p}.o", "linear", SpikeLinear(
                blk.o.weight.tolist(), blk.o.bias.tolist(), time_steps=T, weight_bits=wbits,
                acc_bits=blk.o.acc_bits, pe=L, simd=fo.simd, mode=fo.mode,
                pipelined=self.family == "ecp5"), f"{p}.o")
            g.connect((sasa.name, "o"), (o.name, "i"), self.spikes_tap([f"{p}.sasa"], grid, D))
            dwc = self.node(f"{p}.dwc", "dwconv", DWConv3x3(
                blk.dwc.weight.tolist(), blk.dwc.bias.tolist(), height=H, width=W, time_steps=T,
                acc_bits=blk.dwc.acc_bits, weight_bits=wbits, lanes=L,
                weight_style=weight_style((D // L) * 9, L * wbits, self.family),
                pipelined=self.family == "ecp5", mode=self.fold(f"{p}.dwc").mode), f"{p}.dwc")
            g.connect(s_dwc, (dwc.name, "i"))
            add = self.node(f"{p}.add_attn", "add",
                        ResidualAdd((ub, blk.o.acc_bits, blk.dwc.acc_bits), ub, L,
                                    skid=self.family == "ecp5"), f"{p}.u_attn")
            g.connect(u_delayed, (add.name, "i0"))
            g.connect((o.name, "o"), (add.name, "i1"),
                      self.values_tap([f"{p}.o"], grid, D, blk.o.acc_bits, L))
            g.connect((dwc.name, "o"), (add.name, "i2"),
                      self.values_tap([f"{p}.dwc"], grid, D, blk.dwc.acc_bits, L))
            u = (add.name, "o")
            u_tap = self.values_tap([f"{p}.u_attn"], grid, D, ub, L)

            # U -> (FIFO -> add) and MLP: LIF -> fc1 -> LIF -> fc2.
            u_to_add, u_to_lif = self.fanout(f"{p}.u_mid", u, u_shape, 2, u_tap)
            u_delayed = self.fifo(f"{p}.u_fifo2", u_to_add, u_shape, 2 * beats_u,
                                  cfg.tokens * beats_u)
            # (On request, each LIF array fused with the linear it feeds: no spike taps.)
            f1 = self.fold(f"{p}.fc1")
            if self.fusable(f"{p}.fc1", f1, L):
                fc1 = self.lif_linear(f"{p}.fc1", blk.mlp_lif, blk.fc1, f1, f1.pe, L, ub)
                g.connect(u_to_lif, (fc1.name, "i"))
            else:
                mlp_lif = self.lif(f"{p}.mlp_lif", blk.mlp_lif, D, L, ub)
                g.connect(u_to_lif, (mlp_lif.name, "i"))
                fc1 = self.node(f"{p}.fc1", "linear", SpikeLinear(
                    blk.fc1.weight.tolist(), blk.fc1.bias.tolist(), time_steps=T,
                    weight_bits=wbits, acc_bits=blk.fc1.acc_bits, pe=f1.pe, simd=f1.simd,
                    mode=f1.mode, pipelined=self.family == "ecp5"), f"{p}.fc1")
                g.connect((mlp_lif.name, "o"), (fc1.name, "i"),
                          self.spikes_tap([f"{p}.mlp_lif"], grid, D))
            hid = cfg.hidden
            fc1_tap = self.values_tap([f"{p}.fc1"], grid, hid, blk.fc1.acc_bits, f1.pe)
            f2 = self.fold(f"{p}.fc2")
            if self.fusable(f"{p}.fc2", f2, f1.pe):
                fc2 = self.lif_linear(f"{p}.fc2", blk.fc1_lif, blk.fc2, f2, L, f1.pe,
                                      blk.fc1.acc_bits)
                g.connect((fc1.name, "o"), (fc2.name, "i"), fc1_tap)
            else:
                fc1_lif = self.lif(f"{p}.fc1_lif", blk.fc1_lif, hid, f1.pe, blk.fc1.acc_bits)
                g.connect((fc1.name, "o"), (fc1_lif.name, "i"), fc1_tap)
                fc2 = self.node(f"{p}.fc2", "linear", SpikeLinear(
                    blk.fc2.weight.tolist(), blk.fc2.bias.tolist(), time_steps=T,
                    weight_bits=wbits, acc_bits=blk.fc2.acc_bits, pe=L, simd=f2.simd,
                    mode=f2.mode, pipelined=self.family == "ecp5"), f"{p}.fc2")
                g.connect((fc1_lif.name, "o"), (fc2.name, "i"),
                          self.spikes_tap([f"{p}.fc1_lif"], grid, hid))
            add2 = self.node(f"{p}.add_mlp", "add",
                         ResidualAdd((ub, blk.fc2.acc_bits), ub, L,
                                     skid=self.family == "ecp5"), f"{p}.u_mlp")
            g.connect(u_delayed, (add2.name, "i0"))
            g.connect((fc2.name, "o"), (add2.name, "i1"),
                      self.values_tap([f"{p}.fc2"], grid, D, blk.fc2.acc_bits, L))
            u = (add2.name, "o")
            u_tap = self.values_tap([f"{p}.u_mlp"], grid, D, ub, L)

        # ---- head
        if self.front:  # U'' comes tile-major: collect the image's spikes token-major
            head_lif = self.collector("head.lif", m.head.lif, D, L, ub, cfg.tokens)
        else:
            head_lif = self.lif("head.lif", m.head.lif, D, L, ub)
        g.connect(u, (head_lif.name, "i"), u_tap)
        fh = self.fold("head")
        head = self.node("head", "head", Head(
            m.head.weight.tolist(), m.head.bias.tolist(), time_steps=T, tokens=cfg.tokens,
            weight_bits=wbits, acc_bits=m.head.acc_bits, pe=fh.pe, simd=fh.simd,
            pipelined=self.family == "ecp5", mode=fh.mode), "head")
        g.connect((head_lif.name, "o"), (head.name, "i"), self.spikes_tap(["head.lif"], grid, D))
        g.output = (head.name, "o")
        g.output_tap = TapSpec("result", ("logits", "pred"), (1, 1), cfg.num_classes,
                               width=m.head.acc_bits)
        if self.front and self.body.addr_bits is None:  # the memory-port model, inside
            b = self.body
            g.memory = MemPortRAM(data_width=BEAT_BITS, depth=1 << self.mem_bits,
                                  max_burst=b.max_burst, latency=b.latency,
                                  refresh_period=b.refresh_period,
                                  refresh_cycles=b.refresh_cycles, init=graph_memory_image(g))
        return g

    def conv_engine(self, conv, h: int, w: int, pe: int, acc_bits: int | None = None):
        """A spike conv on its own engine, its weights at the next free memory address."""
        c = ConvEngine(conv.weight.tolist(), conv.bias.tolist(), height=h, width=w,
                       time_steps=self.T, weight_bits=self.m.weight_bits,
                       acc_bits=acc_bits or conv.acc_bits, pe=pe, simd=self.body.front_simd,
                       beat_bits=BEAT_BITS, max_burst=self.body.max_burst, base_addr=self.mem_next,
                       addr_bits=self.mem_bits)
        self.mem_next += front_words(conv, self.m.weight_bits)
        return c

    def collector(self, name: str, lif, channels: int, lanes: int, in_width: int,
                  tokens: int) -> Node:
        """The LIF after an engine (tile-major values in), its spikes token-major out."""
        comp = SpikeCollector(channels=channels, lanes=lanes, tokens=tokens,
                              time_steps=self.T, in_width=in_width, vth=lif.vth.tolist(),
                              input_shift=lif.input_shift, state_bits=lif.state_bits)
        return self.node(name, "collector", comp, name)


def front_convs(model: IntModel) -> list:
    """The convs an external-weight accelerator with ``front`` runs on engines of their own,
    in memory order after the body's weights: the stem's spike convs after the first
    stage, then the RPE."""
    return [st.conv for st in model.stem[1:]] + [model.rpe]


def front_words(conv, weight_bits: int) -> int:
    """Memory words of one engine conv's weights (its rows fill whole beats)."""
    return conv.weight.numel() * weight_bits // BEAT_BITS


def graph_memory_image(graph: Graph) -> list[int]:
    """The words the memory behind a graph's engines holds from address 0: each engine's
    weights at its base address (the body's `sequence_image`, a conv engine's
    `memory_image`)."""
    parts = []
    for node in graph.nodes.values():
        if node.kind not in ("engine", "conv_engine"):  # (a body may hold its memory inside)
            continue
        c = node.component
        if isinstance(c, ExternalBody):
            parts.append((c.sequence.base_addr, node.name, sequence_image(c.sequence)))
        else:
            parts.append((c.base_addr, node.name, memory_image(c.engine)))
    words: list[int] = []
    for base, name, part in sorted(parts):
        if len(words) > base:
            raise ValueError(f"{name}'s weights overlap the ones before them")
        words += [0] * (base - len(words)) + part
    return words


def _cat_rows(a, b) -> list:
    return a.tolist() + b.tolist()


def build_graph(model: IntModel, folding: dict[str, Folding] | None = None,
                lanes_u: int = 1, family: str | None = None, spram: int = 0,
                lif_block: frozenset[str] = frozenset(),
                fuse: frozenset[str] = frozenset(), body: BodySpec | None = None) -> Graph:
    """The accelerator graph of `model`: folding per layer name ("stem.0.conv", "rpe",
    "blocks.0.qk", "blocks.0.o", "blocks.0.fc1", "blocks.0.fc2", "head"), and the lanes of
    the residual stream (PE of rpe/o/fc2, lanes of the DWC, the adds and the LIFs reading U).
    `family` ("ice40", "ecp5" or None for simulation/ASIC) picks memory styles: where small
    weight tables and FIFOs go; `spram` is how many iCE40 SPRAMs big FIFOs may use;
    `lif_block` names the LIF arrays that keep their spikes in block RAM; `fuse` names the
    MLP linears ("blocks.0.fc1", "blocks.0.fc2") to fuse with the LIF array feeding them
    (`rtl_templates.lif_linear`; dense folding whose SIMD and LIF lanes divide 16). With
    `body`, the transformer blocks are one `ExternalBody` node (the external-weight style:
    one engine, its weights behind a memory port; its pe must be `lanes_u`)."""
    if body is not None and body.pe != lanes_u:
        raise ValueError(f"the body engine's pe ({body.pe}) must be the residual lanes ({lanes_u})")
    return _Builder(model, folding or {}, lanes_u, family, spram, frozenset(lif_block),
                    frozenset(fuse), body).build()


SMALL_FIFO_BITS = 256


def weight_style(rows: int, row_bits: int, family: str | None) -> str:
    """"block" or "logic" for a window block's weight ROM: what Yosys would pick by cost
    (hwgen.compiler.memmap), decided here because the block fixes it with a ram_style attribute."""
    fam = family if family in ("ice40", "ecp5") else "ecp5"
    return "block" if map_memory(rows, row_bits, fam, rom=True).kind == "bram" else "logic"
