"""The classification head: per image, logits[k] = bias[k] + the sum of weight[k][c] over every
spike S[t, n, c] of the image, and the index of the first maximum logit (golden:
`quant.golden.head_logits`, `argmax_first`). No multipliers: the gated adder tree of
`gated_sum` adds a class's weights wherever a spike is 1, beat after beat.
"""

from __future__ import annotations

import math

from amaranth import Cat, Const, Module, Mux, Signal
from amaranth.hdl import signed, unsigned
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from rtl_templates.common import (
    Resources,
    bits_for,
    check_choice,
    check_divides,
    check_int,
    spike_signature,
)
from rtl_templates.gated_sum import (
    check_acc_bits,
    check_matrix,
    gated_sum,
    mux_luts,
    rom_resources,
    tree_ffs,
    tree_luts,
    tree_stages,
    weight_rows,
)
from rtl_templates.spike_linear import MODES, _lowest_set_bit
from rtl_templates.timing import BlockModel, LocalQuiet


def result_layout(classes: int, acc_bits: int) -> data.StructLayout:
    """Payload of the head's output: the class (first maximum) and all logits."""
    return data.StructLayout({"cls": unsigned(bits_for(classes)),
                              "logits": data.ArrayLayout(signed(acc_bits), classes)})


class Phase(enum.Enum):
    ACCUM = 0  # adding the image's beats
    DRAIN = 1  # the last operations pass the tree
    SCAN = 2  # argmax, one class per cycle
    EMIT = 3  # the result beat is offered


class Head(wiring.Component):
    """Logits and class of each image from its spike beats.

    Parameters: ``weight`` ([classes][D] ints fitting signed ``weight_bits``), ``bias``
    ([classes] ints, already in the summed domain: added once per image), ``time_steps``
    (T), ``tokens`` (N per image), ``weight_bits``, ``acc_bits`` (signed width of the
    logits; must hold ``bias + T*N * [sum of negative, sum of positive weights]``), ``pe``
    (classes added per operation, divides classes), ``simd`` (inputs per operation,
    divides D), ``pipelined`` (register the memory read before the adder tree and the tree
    every `gated_sum.REGISTERED_LEVELS` levels: the planner's choice on ECP5, for timing;
    ``stages = 2 + tree_stages(simd, True)``), ``mode`` ("dense" or "event": visit only
    the set bits of each beat; ``simd`` must be 1).

    Ports: sink ``i`` (spikes, ``unsigned(D)``, ``T*N`` beats per image, token-major);
    source ``o`` (one beat per image, `result_layout(classes, acc_bits)`).

    Weight memory: depth ``(classes/pe) * (D/simd)``, width ``pe * simd * weight_bits``,
    the layout of `gated_sum.weight_rows` (row ``g*(D/simd) + k`` holds classes
    ``g*pe ..`` over inputs ``k*simd ..``, lane-major). The order of summation does not
    matter, so the head holds one beat (``D`` bits), not a token.

    Accumulators: ``classes`` registers of ``acc_bits``, arranged as a ring of
    ``classes/pe`` groups that turns by one group after each group's last operation
    (back in order after every beat), so only the front group is ever added to. They
    start at the bias, and are the output beat's ``logits`` directly.

    Timing: per beat ``(classes/pe) * (D/simd)`` operations, one per cycle; the next beat
    is taken in the cycle of the current one's last operation, so in free flow beats
    cost nothing extra. After an image's last operation: ``stages = 1 +
    tree_stages(simd)`` cycles of drain, ``classes + 1`` cycles of argmax scan (upwards,
    strict ``>``; the scanned logit is registered before the comparison), then the result
    is offered. Free flow: ``cycles_per_image() = T*N * (classes/pe) * (D/simd) + stages +
    classes + 2``.

    Event mode: per beat, for each group, one operation per set bit of the beat (lowest
    first, the priority encoder of `spike_linear`), adding that input's ``pe`` weights
    into the front group; a beat without spikes costs one operation that adds nothing.
    The encoder's index is registered before the address adder and the memory (one more
    stage). Free flow: ``cycles_per_image(counts) = sum over the image's beats of
    ops(beat) + stages + classes + 2``, ``ops = (classes/pe) * popcount`` or 1 if zero.

    Backpressure: ``i.ready`` and ``o.valid`` depend only on the block's state; while the
    result waits, the head takes at most one beat of the next image.
    """

    def __init__(self, weight, bias, *, time_steps: int, tokens: int, weight_bits: int,
                 acc_bits: int, pe: int = 1, simd: int = 1, pipelined: bool = False,
                 mode: str = "dense"):
        self.weight_bits = check_int("weight_bits", weight_bits, 2)
        self.weight, self.bias = check_matrix(weight, bias, weight_bits)
        self.classes, self.in_features = len(self.weight), len(self.weight[0])
        self.time_steps = check_int("time_steps", time_steps)
        self.tokens = check_int("tokens", tokens)
        self.pe = check_int("pe", pe)
        check_divides("pe", pe, self.classes)
        self.simd = check_int("simd", simd)
        check_divides("simd", simd, self.in_features)
        self.acc_bits = check_acc_bits(acc_bits, self.weight, self.bias, time_steps * tokens)
        if not isinstance(pipelined, bool):
            raise TypeError(f"pipelined must be a bool, not {pipelined!r}")
        self.pipelined = pipelined
        check_choice("mode", mode, MODES)
        if mode == "event" and simd != 1:
            raise ValueError(f"simd must be 1 in event mode, not {simd!r}")
        self.mode = mode
        super().__init__({"i": In(spike_signature(self.in_features)),
                          "o": Out(stream.Signature(result_layout(self.classes, acc_bits)))})

    @property
    def groups(self) -> int:
        return self.classes // self.pe

    @property
    def chunks(self) -> int:
        return self.in_features // self.simd

    @property
    def beats(self) -> int:
        """Input beats per image."""
        return self.time_steps * self.tokens

    @property
    def stages(self) -> int:
        return (1 + self.pipelined + tree_stages(self.simd, self.pipelined)
                + (self.mode == "event"))

    def memory_shape(self) -> tuple[int, int]:
        return self.groups * self.chunks, self.pe * self.simd * self.weight_bits

    def elaborate(self, platform):
        m = Module()
        G, K, B, C = self.groups, self.chunks, self.beats, self.classes
        depth, width = self.memory_shape()
        m.submodules.weights = mem = Memory(
            shape=unsigned(width), depth=depth,
            init=weight_rows(self.weight, self.pe, self.simd, self.weight_bits))
        rd = mem.read_port(domain="sync")

        phase = Signal(Phase)
        buf = Signal(self.in_features)
        full = Signal()
        dense = self.mode == "dense"
        if dense:
            op = Signal(range(max(G * K, 2)))  # g*K + k: the memory row
            k = Signal(range(max(K, 2)))
        beat = Signal(range(max(B, 2)))
        issue, last_of_beat, end = Signal(), Signal(), Signal()
        m.d.comb += [
            issue.eq(full & (phase == Phase.ACCUM)),
            *([last_of_beat.eq(op == G * K - 1)] if dense else []),
            end.eq(last_of_beat & (beat == B - 1)),
            self.i.ready.eq(~full | (issue & last_of_beat)),
            *([rd.addr.eq(op)] if dense else []), rd.en.eq(1),
        ]
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [buf.eq(self.i.payload), full.eq(1)]
        with m.Elif(issue & last_of_beat):
            m.d.sync += full.eq(0)
        with m.If(issue):
            if dense:
                m.d.sync += [op.eq(_wrap(op, G * K)), k.eq(_wrap(k, K))]
            with m.If(last_of_beat):
                m.d.sync += beat.eq(_wrap(beat, B))
            with m.If(end):
                m.d.sync += phase.eq(Phase.DRAIN)

        tags = {"valid": Signal(name="valid_s1"), "turn": Signal(name="turn_s1"),
                "end": Signal(name="end_s1")}
        gates = Signal(self.simd)
        if dense:
            m.d.sync += [tags["valid"].eq(issue), tags["turn"].eq(k == K - 1),
                         tags["end"].eq(end), gates.eq(buf.word_select(k, self.simd))]
        else:
            self._event_issue(m, rd, buf, issue, last_of_beat, end, tags, gates)
        sums, tags = gated_sum(m, words=rd.data, gates=gates, pe=self.pe, simd=self.simd,
                               weight_bits=self.weight_bits, advance=Const(1), tags=tags,
                               registered=self.pipelined)

        # Accumulator ring: ring[0] is the group being added to.
        ring = [[Signal(signed(self.acc_bits), init=self.bias[g * self.pe + j],
                        name=f"logit{g * self.pe + j}") for j in range(self.pe)]
                for g in range(G)]
        with m.If(tags["valid"]):
            added = [ring[0][j] + sums[j] for j in range(self.pe)]
            with m.If(tags["turn"]):
                for g in range(G):
                    src = added if g == G - 1 else ring[g + 1]
                    m.d.sync += [ring[g][j].eq(src[j]) for j in range(self.pe)]
            with m.Else():
                m.d.sync += [ring[0][j].eq(added[j]) for j in range(self.pe)]
            with m.If(tags["end"]):
                m.d.sync += phase.eq(Phase.SCAN)
        logits = [r for group in ring for r in group]

        # Scan: `value` registers logits[scan - 1], so the multiplexer and the comparison
        # get a cycle each (scan = 0 only loads logits[0]).
        scan = Signal(range(C + 1))
        value = Signal(signed(self.acc_bits))
        best = Signal(signed(self.acc_bits))
        cls = Signal(range(max(C, 2)))
        with m.If(phase == Phase.SCAN):
            with m.Switch(scan):
                for c in range(C):
                    with m.Case(c):
                        m.d.sync += value.eq(logits[c])
            with m.If((scan == 1) | ((scan != 0) & (value > best))):
                m.d.sync += [best.eq(value), cls.eq(scan - 1)]
            m.d.sync += scan.eq(_wrap(scan, C + 1))
            with m.If(scan == C):
                m.d.sync += phase.eq(Phase.EMIT)

        m.d.comb += [self.o.valid.eq(phase == Phase.EMIT), self.o.payload.cls.eq(cls),
                     self.o.payload.logits.eq(Cat(*logits))]
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += phase.eq(Phase.ACCUM)
            m.d.sync += [r.eq(r.init) for r in logits]
        return m

    def _event_issue(self, m, rd, buf, issue, last_of_beat, end, tags, gates) -> None:
        """Event mode's issue stage: for each group, the beat's set bits lowest first; then
        the address stage (the encoder's index registered before the adder and memory)."""
        G, D = self.groups, self.in_features
        g = Signal(range(max(G, 2)), name="g")
        base = Signal(range(G * D), name="base")  # g * D: the group's first row
        fresh = Signal(init=1)  # a group's first operation: scan the beat, not `pending`
        pending = Signal(D)
        cur = Signal(D)
        m.d.comb += cur.eq(Mux(fresh, buf, pending))
        rest, idx, at_most_one = _lowest_set_bit(m, cur)
        empty = Signal()
        m.d.comb += [empty.eq(~cur.any()), last_of_beat.eq(at_most_one & ((g == G - 1) | empty))]
        with m.If(issue):
            m.d.sync += [fresh.eq(at_most_one), pending.eq(rest)]
            with m.If(last_of_beat):
                m.d.sync += [g.eq(0), base.eq(0)]
            with m.Elif(at_most_one):
                m.d.sync += [g.eq(g + 1), base.eq(base + D)]
        stage_a = {"valid": (issue, 1), "turn": (at_most_one & ~empty, 1), "end": (end, 1),
                   "gate": (~empty, 1), "base": (base, len(base)), "idx": (idx, len(idx))}
        a = {name: Signal(width, name=f"{name}_a") for name, (_, width) in stage_a.items()}
        m.d.sync += [a[name].eq(value) for name, (value, _) in stage_a.items()]
        m.d.comb += rd.addr.eq(a["base"] + a["idx"])
        m.d.sync += [tags["valid"].eq(a["valid"]), tags["turn"].eq(a["turn"]),
                     tags["end"].eq(a["end"]), gates.eq(a["gate"])]

    # -- estimates ------------------------------------------------------------
    def model(self) -> HeadModel:
        return HeadModel(self.groups * self.chunks, self.beats, self.stages, self.classes,
                         groups=self.groups if self.mode == "event" else None)

    def beat_ops(self, spike_count: int) -> int:
        """Operations of one beat with `spike_count` set bits (event mode)."""
        return self.groups * spike_count if spike_count else 1

    def cycles_per_image(self, spike_counts=None) -> int:
        """Cycles between result beats in free flow. Dense:
        ``T*N * (classes/pe) * (D/simd) + stages + classes + 2``; event: the image's
        `spike_counts` (one popcount per beat, ``T*N`` of them) give the operations
        (`beat_ops`) in place of the first term."""
        if self.mode == "dense":
            ops = self.beats * self.groups * self.chunks
        else:
            counts = [int(c) for c in (spike_counts if spike_counts is not None else [])]
            if len(counts) != self.beats or not all(0 <= c <= self.in_features for c in counts):
                raise ValueError(f"spike_counts must be {self.beats} counts in "
                                 f"[0, {self.in_features}] in event mode, not {spike_counts!r}")
            ops = sum(self.beat_ops(c) for c in counts)
        return ops + self.stages + self.classes + 2

    def cycles(self, images: int, spike_counts=None) -> int:
        """Cycle in which the last result fires when `images` images flow freely from cycle 1
        (event mode: `spike_counts` [images][T*N], each beat's popcount)."""
        check_int("images", images)
        if self.mode == "dense":
            return 1 + images * self.cycles_per_image()
        if spike_counts is None or len(spike_counts) != images:
            raise ValueError(f"spike_counts must list {images} images, not {spike_counts!r}")
        return 1 + sum(self.cycles_per_image(c) for c in spike_counts)

    def resources(self, family: str) -> Resources:
        """LUT4/FF/memory estimate for 'ice40' or 'ecp5', calibrated with Yosys 0.70.

        FF: beat buffer ``D``, logits ``classes*acc_bits``, scanned and best logit, class,
        counters, pipeline tags, tree registers. LUT: chunk multiplexer ``simd * mux(D/simd)``, gated
        adder trees (`tree_luts`), the front group's adders (and its ring multiplexer when
        ``classes/pe > 1``), the turning ring itself (Yosys puts logic before its
        flip-flops: measured about 1 LUT per logit bit on iCE40, 0.45 on ECP5), the scan
        multiplexer ``acc_bits * (mux(classes) + 2)`` with its comparator, control. The
        weight memory is a block RAM or soft logic as Yosys would choose
        (`gated_sum.rom_resources`). Event mode, in place of the operation counters and
        the chunk multiplexer: group counter and base row, the ``D``-bit pending register,
        the address stage, the priority encoder (as `SpikeLinear`'s).
        """
        depth, width = self.memory_shape()
        rom = rom_resources(depth, width, family)
        G, K, C, acc, D = self.groups, self.chunks, self.classes, self.acc_bits, self.in_features
        if self.mode == "dense":
            counters = bits_for(G * K) + bits_for(K)
            select = self.simd * mux_luts(K)
        else:
            counters = bits_for(G) + bits_for(depth)
            select = D * 3 + bits_for(D) * D // 6 + D * 5 // 6
        counters += bits_for(self.beats) + bits_for(C + 1) + 2
        tags = 3
        ff = (D + 1 + counters + tags + self.simd
              + tags * (tree_stages(self.simd, self.pipelined) + self.pipelined)
              + tree_ffs(self.pe, self.simd, self.weight_bits, self.pipelined)
              + C * acc + 2 * acc + bits_for(C))
        if self.mode == "event":  # fresh, pending; the address stage (tags, gate, base, index)
            ff += 1 + D + tags + 1 + bits_for(depth) + bits_for(D)
        ring = math.ceil(C * acc * _RING_LUTS_PER_BIT[family]) if G > 1 else 0
        lut = (select + tree_luts(self.pe, self.simd, self.weight_bits)
               + math.ceil(self.pe * acc * (1.5 if G > 1 else 1)) + ring
               + acc * (mux_luts(C) + 2) + 2 * counters + 12)
        return Resources(lut=lut, ff=ff) + rom


_RING_LUTS_PER_BIT = {"ice40": 1.0, "ecp5": 0.45}


def _wrap(counter: Signal, n: int):
    """counter + 1, back to 0 after n - 1."""
    return Mux(counter == n - 1, 0, counter + 1)


class HeadModel(LocalQuiet, BlockModel):
    """Control mirror of Head: beat buffer, operation and beat counters, the pipeline's
    end-of-image tag, the drain / scan / emit phases."""

    def __init__(self, ops_per_beat: int, beats: int, stages: int, classes: int,
                 groups: int | None = None):
        self.ops, self.beats, self.classes = ops_per_beat, beats, classes
        self.groups = groups  # event mode: a beat's operations follow its popcount
        self.beat_ops = ops_per_beat  # of the beat in the buffer
        self._offered_ops = ops_per_beat
        self.full = False
        self.op = self.beat = self.scan = 0
        self.phase = Phase.ACCUM
        self.pipe: list[bool | None] = [None] * stages  # None: empty; else the op's `end`

    def _issue(self) -> bool:
        return self.full and self.phase == Phase.ACCUM

    def valid(self, port):
        return self.phase == Phase.EMIT

    def ready(self, port):
        ready = not self.full or (self._issue() and self.op == self.beat_ops - 1)
        if ready and self.groups is not None and self.in_valid("i"):
            count = bin(self.in_word("i")).count("1")
            self._offered_ops = self.groups * count if count else 1
        return ready

    def tick(self, fired):
        phase = self.phase
        item = None
        if self._issue():
            last_of_beat = self.op == self.beat_ops - 1
            item = last_of_beat and self.beat == self.beats - 1
            self.op = 0 if last_of_beat else self.op + 1
            if last_of_beat:
                self.beat = (self.beat + 1) % self.beats
                self.full = False
            if item:
                self.phase = Phase.DRAIN
        if fired["i"]:
            self.full = True
            self.beat_ops = self._offered_ops
        if self.pipe[-1]:
            self.phase = Phase.SCAN
        if phase == Phase.SCAN:
            self.scan = (self.scan + 1) % (self.classes + 1)
            if self.scan == 0:
                self.phase = Phase.EMIT
        if phase == Phase.EMIT and fired["o"]:
            self.phase = Phase.ACCUM
        self.pipe = [item] + self.pipe[:-1]

    _state_attrs = ("full", "op", "beat", "scan", "phase", "pipe", "beat_ops")

    def quiet(self):
        if self.groups is not None:  # its ready reads the input's words: not a local handshake
            return 1 if self._active() else 1 << 30
        return LocalQuiet.quiet(self)

    def skip(self, cycles):
        if self.groups is None:
            LocalQuiet.skip(self, cycles)

    def _active(self) -> bool:
        return (self.phase in (Phase.DRAIN, Phase.SCAN) or self._issue()
                or any(p is not None for p in self.pipe))
