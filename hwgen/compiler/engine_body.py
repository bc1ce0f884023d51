"""The transformer body of an IntModel on one external-weight engine: every block's
[Wq; Wk], o, fc1 and fc2 as one `EngineSequence` (docs/hardware.md, "The sequencer").

Per block the sequence runs [Wq; Wk] -> q_lif | k_lif -> SASA pass -> o (+ U + DWC) ->
mlp_lif -> fc1 -> fc1_lif -> fc2 (+ U) -> the next block's attn_lif; the blocks share the
spike memories (one per layer kind) and the U memory; each block has its own on-chip SASA
and DWC (small: thresholds, 9 x D weights). In: U (the `rpe` tap's values), tile-major
or token-major; out: the last block's U'' (its `u_mlp` tap), in the same order.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from amaranth import Module
from amaranth.lib import wiring

from hwgen.compiler.graph import mark_used
from quant.ir import IntModel, LIFLayer, LinearLayer
from rtl_templates.common import Resources, bits_for
from rtl_templates.dwconv import DWConv3x3
from rtl_templates.engine_sequence import EngineSequence, sequence_image
from rtl_templates.lif_array import lane_luts
from rtl_templates.linear_engine import LinearEngine
from rtl_templates.memport import MemPortRAM, WithMemory, pass_through
from rtl_templates.memport_arbiter import share_memory_network
from rtl_templates.sasa import SASA
from rtl_templates.timing import Network, Sink, Source

KINDS = 4  # layers per block: [Wq; Wk], o, fc1, fc2
BEAT_BITS = 16  # the memory port's data width (the ULX3S's SDRAM: 16 bits)


def _layer(x: LinearLayer) -> tuple[list, list, int]:
    return x.weight.tolist(), x.bias.tolist(), x.acc_bits


def _lif(x: LIFLayer) -> tuple[list, int, int]:
    return x.vth.tolist(), x.input_shift, x.state_bits


def body_sequence(model: IntModel, *, pe: int, simd: int, beat_bits: int = BEAT_BITS,
                  max_burst: int = 64, base_addr: int = 0, addr_bits: int = 24,
                  mode: str = "dense", token_major: bool = False) -> EngineSequence:
    """Every block of `model` on one engine of ``pe`` x ``simd`` (dense), weights from
    ``base_addr`` in the memory port's address space (`sequence_image` gives the words).
    ``token_major``: U in and U'' out in the on-chip values order (per token: for each
    group of ``pe`` channels: T beats), the drop-in for the on-chip blocks' chain."""
    if mode != "dense":
        raise ValueError(f"the body's engine is dense only so far, not {mode!r}")
    cfg, D, T = model.config, model.config.dim, model.config.time_steps
    H, W = cfg.grid
    layers, lifs, sasa, dwc, adds = [], [], [], [], []
    for j, blk in enumerate(model.blocks):
        first = KINDS * j
        if j:  # the previous block's fc2 (+ U) goes through this block's attn_lif
            lifs.append(_lif(blk.attn_lif))
        layers += [(blk.q.weight.tolist() + blk.k.weight.tolist(),
                    blk.q.bias.tolist() + blk.k.bias.tolist(),
                    max(blk.q.acc_bits, blk.k.acc_bits)),
                   _layer(blk.o), _layer(blk.fc1), _layer(blk.fc2)]
        lifs += [[(D, *_lif(blk.q_lif)), (D, *_lif(blk.k_lif))], _lif(blk.mlp_lif),
                 _lif(blk.fc1_lif)]
        sasa.append((first, SASA(dim=D, heads=cfg.heads, time_steps=T, tokens=cfg.tokens,
                                 mode=cfg.sasa_mode.value, agg_vth=blk.agg_lif.vth.tolist(),
                                 agg_input_shift=blk.agg_lif.input_shift,
                                 agg_state_bits=blk.agg_lif.state_bits)))
        dwc.append((first, DWConv3x3(blk.dwc.weight.tolist(), blk.dwc.bias.tolist(), height=H,
                                     width=W, time_steps=T, acc_bits=blk.dwc.acc_bits,
                                     weight_bits=model.weight_bits, lanes=pe)))
        adds += [first + 1, first + 3]
    return EngineSequence(
        layers, lifs, tokens=cfg.tokens, time_steps=T, weight_bits=model.weight_bits, pe=pe,
        simd=simd, beat_bits=beat_bits, max_burst=max_burst, base_addr=base_addr,
        addr_bits=addr_bits, residual_bits=model.u_bits, input_bits=model.u_bits,
        input_lif=_lif(model.blocks[0].attn_lif), sasa=sasa, u_memory=True, adds=adds, dwc=dwc,
        act_of=[x % KINDS for x in range(len(layers))], token_major=token_major)


# ------------------------------------------------------------- the body as one graph node

@dataclass(frozen=True)
class BodySpec:
    """The body engine of a generated external-weight accelerator: its folding (dense,
    ``pe`` also the residual stream's lanes) and the memory-port model it reads (the timing
    contract of the board's controller: ``latency`` cycles from request to first beat, one
    beat a cycle in a burst, the last ``refresh_cycles`` of every ``refresh_period`` cycles
    busy; docs/hardware.md, "The generated external-weight accelerator")."""

    pe: int
    simd: int
    latency: int = 16
    refresh_period: int = 0  # 0: no refresh gaps
    refresh_cycles: int = 0
    max_burst: int = 64
    controller_lut: int = 0  # the board's controller, counted in the plan's resources
    controller_ff: int = 0
    addr_bits: int | None = None  # None: the memory-port model inside; else the port leaves
    # The stem's spike convs and the RPE on engines of their own, their weights behind the
    # same port (when theirs would crowd the block RAM, or with --weights external-all);
    # U then runs tile-major and the body serves no memory of its own.
    front: bool = False
    front_simd: int = 1  # SIMD of those conv engines (their PE: the body's)

    def __str__(self) -> str:
        front = f"; stem convs and RPE on engines, SIMD={self.front_simd}" if self.front else ""
        return f"PE={self.pe} SIMD={self.simd} dense{front}"


def body_words(model: IntModel, beat_bits: int = BEAT_BITS) -> int:
    """Words of the body's memory image (`body_memory_image`'s length): every block's weights
    packed whole into beats (the engine's rows fill whole beats, `style.body_specs`)."""
    weights = sum(b.q.weight.numel() + b.k.weight.numel() + b.o.weight.numel()
                  + b.fc1.weight.numel() + b.fc2.weight.numel() for b in model.blocks)
    return weights * model.weight_bits // beat_bits


def body_memory_image(model: IntModel, spec: BodySpec) -> list[int]:
    """The words the body's memory must hold from address 0 (every block's weights in the
    engine's request order, `sequence_image`), e.g. for `hwgen run --load-weights`."""
    seq = mark_used(body_sequence(model, pe=spec.pe, simd=spec.simd, max_burst=spec.max_burst,
                                  addr_bits=32, token_major=True))
    for block in [*seq.sasa.values(), *seq.dwc.values()]:
        mark_used(block)
    return sequence_image(seq)


class ExternalBody(wiring.Component):
    """Every transformer block of `model` on one `EngineSequence` (token-major U in, the last
    block's U'' out: the on-chip blocks' chain's ports), its weights behind the memory port:
    with ``spec.addr_bits`` None, a `MemPortRAM` inside holding them, timed as `spec` says
    (the memory-port model `hwgen sim` runs; cycle model: the engine's next to the
    memory's, `WithMemory.model_network`); else the port itself (``mem``, word addresses
    of ``addr_bits``, the weights from 0), for a board top with the SDRAM controller. With
    ``spec.front`` U comes in and U'' goes out tile-major (the RPE's conv engine in front,
    a spike collector behind) and the port always leaves, shared with the conv engines."""

    def __init__(self, model: IntModel, spec: BodySpec):
        if spec.front and spec.addr_bits is None:
            raise ValueError("a body next to conv engines serves no memory of its own: "
                             "give spec.addr_bits (the shared port's)")
        addr_bits = spec.addr_bits or max(4, bits_for(body_words(model) - 1))
        seq = body_sequence(model, pe=spec.pe, simd=spec.simd, max_burst=spec.max_burst,
                            addr_bits=addr_bits, token_major=not spec.front)
        self.model_ir, self.spec, self.sequence = model, spec, seq
        self.pe, self.simd = spec.pe, spec.simd
        if spec.addr_bits is None:
            ram = MemPortRAM(data_width=seq.beat_bits, depth=1 << addr_bits,
                             max_burst=spec.max_burst, latency=spec.latency,
                             refresh_period=spec.refresh_period,
                             refresh_cycles=spec.refresh_cycles, init=sequence_image(seq))
            self.inner = WithMemory(seq, ram)
        else:
            self.inner = seq
        super().__init__(dict(self.inner.signature.members))

    def elaborate(self, platform):
        m = Module()
        m.submodules.inner = self.inner
        pass_through(m, self, self.inner)
        return m

    def requests(self) -> list[tuple[int, int]]:
        return self.sequence.requests()

    def model_network(self, net: Network, inputs: dict, prefix: str = "dut") -> dict:
        """The engine's model (``{prefix}.block``), with its memory's when it has one inside;
        returns where this block's ports are (``req``, ``w``, ``r`` too without one)."""
        if isinstance(self.inner, WithMemory):
            return self.inner.model_network(net, inputs, prefix)
        net.add(f"{prefix}.block", self.sequence.model())
        return {name: (f"{prefix}.block", name) for name in ("i", "o", "req", "w", "r")}

    def cycles_per_image(self) -> int:
        """One image alone through the body, from its first U beat offered to its last U''
        beat out (exact: the engine's and the memory's cycle models)."""
        net = Network()
        at = self.model_network(net, {}, prefix="body")
        if not isinstance(self.inner, WithMemory):  # the spec's memory-port model beside it
            spec = self.spec
            ram = mark_used(MemPortRAM(data_width=self.sequence.beat_bits,
                                       depth=1 << self.sequence.addr_bits,
                                       max_burst=spec.max_burst, latency=spec.latency,
                                       refresh_period=spec.refresh_period,
                                       refresh_cycles=spec.refresh_cycles))
            share_memory_network(net, [(self.sequence, at)], ram.model())
        net.add("src", Source(self.sequence.input_beats))
        sink = net.add("sink", Sink())
        net.connect(("src", "o"), at["i"])
        net.connect(at["o"], ("sink", "i"))
        beats = self.sequence.input_beats  # U'' has as many beats as U
        net.run(lambda: sink.received >= beats, 100_000_000)
        return sink.cycles[-1]

    def resources(self, family: str) -> Resources:
        return body_resources(self.model_ir, self.sequence, family) + Resources(
            self.spec.controller_lut, self.spec.controller_ff)


# The sequencer's own counters and pass state (the SASA, DWC, LIF and output passes, the
# token walks) beyond the engine's: 280 .. 420 flip-flops measured over four bodies
# (digits-tiny at pe 8 and 16, a two-block D 16 model, cifar-mid at pe 32; Yosys 0.70).
SEQUENCER_FF = 300


def body_resources(model: IntModel, seq: EngineSequence, family: str) -> Resources:
    """Estimate of the body engine from its parts' own estimates: the engine datapath for its
    widest tile (`LinearEngine`, with its spike memory and two tile buffers), the registered
    weight row and gates in front of the tree (`EngineSequence.stages`), the other spike
    memories (one per layer kind, and Q|K), U in block RAM, every LIF site of the sequence
    (each boundary segment and the input pass: its own lanes, membranes and threshold
    table, `lane_luts`), the sequencer's counters (`SEQUENCER_FF`), and each block's SASA
    and DWC, and the output pass's word register (token-major). The weights are not on chip."""
    cfg, T = model.config, model.config.time_steps
    P, D = seq.positions, cfg.dim
    wide = max(seq.ins)
    eng = mark_used(LinearEngine([[0] * wide] * seq.pe, [0] * seq.pe, tokens=cfg.tokens, time_steps=T,
                       weight_bits=seq.weight_bits, acc_bits=seq.acc_bits, pe=seq.pe,
                       simd=seq.simd, beat_bits=seq.beat_bits, max_burst=seq.max_burst,
                       addr_bits=seq.addr_bits)).resources(family)
    # The engine's own spike memory is sized for its widest tile; the sequence's are one per
    # layer kind (the widest layer of each kind) and Q|K.
    kinds = max(seq.act_of) + 1
    widths = [max(w for w, k in zip(seq.ins, seq.act_of, strict=True) if k == mi)
              for mi in range(kinds)]
    eng = dataclasses.replace(eng, memories=eng.memories[1:],
                              memory_kinds=eng.memory_kinds[1:])
    spikes = tuple((P, w) for w in (*widths, 2 * D))
    sites = [(n, sb) for segments in seq.lifs for n, _, _, sb in segments]
    if seq.input_lif is not None:  # the pass that turns U into the first layer's spikes
        sites.append((seq.ins[0], seq.input_lif[2]))
    lif_lut = sum(lane_luts(seq.pe, n // seq.pe, sb, family) for n, sb in sites)
    lif_ff = sum(seq.pe * sb for _, sb in sites)
    tiles = sum(seq.groups)
    staged = seq.pe * seq.simd * seq.weight_bits + seq.simd + 3 + bits_for(tiles)
    # token-major, the output pass registers each U'' word before `o`
    out_reg = seq.pe * model.u_bits + 1 if seq.token_major else 0
    out = eng + Resources(
        round(lif_lut) + 2 * seq.pe * model.u_bits,
        lif_ff + staged + seq.pe * model.u_bits + SEQUENCER_FF + out_reg,
        memories=(*spikes, ((D // seq.pe) * P, seq.pe * model.u_bits)),
        memory_kinds=("block",) * (len(spikes) + 1))
    for block in [*seq.sasa.values(), *seq.dwc.values()]:
        out = out + block.resources(family)
    return out
