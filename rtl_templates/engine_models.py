"""Cycle models of the external-weight engine blocks (`linear_engine.LinearEngine`,
`engine_sequence.EngineSequence`): their control, never their data; kept apart from the
blocks only to keep each file short.

Their memory side is the initiator of a `memport.MemPortSignature`: ``req`` and ``w`` out
(``w`` is never valid: the engines only read), ``r`` in; next to a memory's model
(`memport.MemPortRAMModel`, or the testbench responder's in sim/memory_sim.py) they give
the cycle count with memory time included."""

from __future__ import annotations

from rtl_templates.timing import BlockModel, run_single


class EngineSequenceModel(BlockModel):
    """Control mirror of EngineSequence (LinearEngineModel's, per layer, plus the written
    flags between layers and the output side's layer counter)."""

    outputs = ("o", "req", "w")

    def __init__(self, e):  # an EngineSequence
        self.inputs = ("i", "r") + (("u",) if e.residual_bits is not None and not e.u_memory
                                    else ())
        self.u_memory, self.token_major = e.u_memory, e.token_major
        # token-major U: a LIF pass (one word a cycle over U) before layer 0; an output pass
        # (a word a cycle while o is ready) after the last layer
        self.n_u = e.ins[0] // e.pe * e.positions
        self.lif_at = None
        self.out_go, self.ov_a, self.ov, self.out_r = False, False, False, 0
        self.P, self.L, self.Ks, self.Gs, self.BR = e.positions, len(e.layers), e.chunks, e.groups, e.row_beats
        self.P_in = e.input_beats
        self.n_req = [len(e.tile_requests(x)) for x in range(self.L)]
        self.loaded, self.n_in = False, 0
        self.ahead = self.c_req = self.l_req = self.g_req = 0
        self.b_f = self.k_f = self.f_sel = self.l_f = self.g_f = 0
        self.full = [False, False]
        self.c_sel = self.lay = self.g = self.p = self.k = 0
        self.written = [False] * max(1, self.L - 1)
        self.pipe: list[bool | None] = [None] * e.stages
        self.acc_valid = False
        self.l_o = self.g_o = self.p_o = 0
        # With SASA at boundary b: layer b + 1 starts in the cycle `passed_at`, a fixed
        # time after the cycle the boundary's last spike was written (the pass reads the
        # Q|K words back to back from two cycles after the flag is seen, SASA's own model
        # gives the last Y's cycle, the flag is set the cycle after it is written).
        self.pass_cycles = {b: run_single(block.model(), {"i": self.P}, {"o": self.P})["o"][-1] + 2
                            for b, block in e.sasa.items()}
        self.passed_at: dict[int, int | None] = dict.fromkeys(e.sasa)
        # With a DWC pass over layer x's input: layer x starts `dwc_cycles[x]` after its
        # input is complete (the same kind of pass, one more cycle for U's read-modify-write).
        self.dwc_cycles = {x: run_single(block.model(), {"i": self.P}, {"o": self.n_u})["o"][-1] + 3
                           for x, block in e.dwc.items()}
        self.dwc_at: dict[int, int | None] = dict.fromkeys(e.dwc)

    def _src(self, layer: int) -> bool:
        lif = self.lif_at if layer == 0 and self.token_major else 0
        for at in (self.dwc_at.get(layer, 0), self.passed_at.get(layer - 1, 0), lif):
            if at is None or self.cycle < at:
                return False
        return self.loaded if layer == 0 else self.written[layer - 1]

    def _start(self, layer: int) -> None:
        """Layer `layer`'s input flag is set (seen from the next cycle): its passes start."""
        seen = self.cycle + 1
        if layer == 0 and self.token_major:  # the LIF pass: N reads, one more to write
            seen = self.lif_at = seen + self.n_u + 1
        if layer - 1 in self.passed_at:
            self.passed_at[layer - 1] = seen + self.pass_cycles[layer - 1]
        if layer in self.dwc_at:
            self.dwc_at[layer] = seen + self.dwc_cycles[layer]

    def _clear(self, layer: int) -> None:
        """Layer `layer` has read all its input: its flags and passes are reset."""
        if layer - 1 in self.passed_at:
            self.passed_at[layer - 1] = None
        if layer in self.dwc_at and (layer or not self.loaded):
            self.dwc_at[layer] = None
        if layer == 0 and not self.loaded:
            self.lif_at = None

    def _waiting(self) -> bool:
        return self.acc_valid and self.l_o == self.L - 1

    def valid(self, port):
        if port == "req":
            return self.ahead != 2
        if port == "w":
            return False
        if self.token_major:
            return self.ov
        return self._waiting() and ("u" not in self.inputs or self.in_valid("u"))

    def ready(self, port):
        if port == "u":
            return self._waiting() and self.out_ready("o")
        if port == "i":  # with U in block RAM, the last layer's outputs must be out first
            return not self.loaded and not (self.u_memory and self.l_o == self.L - 1) \
                and not self.out_go
        return True

    def tick(self, fired):
        final_layer = self.l_o == self.L - 1
        sink_ready = fired["o"] if final_layer and not self.token_major else True
        if self.token_major:  # the output pass (read, register), on the cycle's starting state
            adv = not self.ov or fired["o"]
            adv_a = not self.ov_a or adv
            issue = adv_a and self.out_go and self.out_r != self.n_u
            if self.out_go and self.out_r == self.n_u and not self.ov_a and adv:
                self.out_go, self.out_r = False, 0
            if adv:
                self.ov = self.ov_a
            if adv_a:
                self.ov_a = issue
            if issue:
                self.out_r += 1
        last = self.pipe[-1]
        advance = not (last is not None and self.acc_valid and not sink_ready)
        taken = self.acc_valid and sink_ready
        consumed = requested = False
        if advance:  # compute, on the cycle's starting state
            item = None
            if self._src(self.lay) and self.full[self.c_sel]:
                K = self.Ks[self.lay]
                item = self.k == K - 1
                self.k = (self.k + 1) % K
                if item:
                    self.p = (self.p + 1) % self.P
                    if self.p == 0:
                        consumed = True
                        self.full[self.c_sel] = False
                        self.c_sel ^= 1
                        self.g += 1
                        if self.g == self.Gs[self.lay]:
                            self.g = 0
                            if self.lay:
                                self.written[self.lay - 1] = False
                            self._clear(self.lay)
                            self.lay += 1
                            if self.lay == self.L:
                                self.lay, self.loaded = 0, False
                                self._clear(0)
            self.pipe = [item] + self.pipe[:-1]
        if advance and last is not None:
            self.acc_valid = last
        elif sink_ready:
            self.acc_valid = False
        if taken:
            self.p_o = (self.p_o + 1) % self.P
            if self.p_o == 0:
                self.g_o += 1
                if self.g_o == self.Gs[self.l_o]:
                    self.g_o = 0
                    if not final_layer:
                        self.written[self.l_o] = True  # seen from the next cycle on
                        self._start(self.l_o + 1)
                    elif self.token_major:
                        self.out_go = True
                    self.l_o = 0 if final_layer else self.l_o + 1
        if fired["i"]:
            self.n_in += 1
            if self.n_in == self.P_in:
                self.n_in, self.loaded = 0, True
                self._start(0)
        if fired["req"]:
            self.c_req += 1
            if self.c_req == self.n_req[self.l_req]:
                self.c_req, requested = 0, True
                self.g_req += 1
                if self.g_req == self.Gs[self.l_req]:
                    self.g_req, self.l_req = 0, (self.l_req + 1) % self.L
        if fired["r"]:
            self.b_f = (self.b_f + 1) % self.BR
            if self.b_f == 0:
                self.k_f += 1
                if self.k_f == self.Ks[self.l_f]:
                    self.k_f = 0
                    self.full[self.f_sel] = True
                    self.f_sel ^= 1
                    self.g_f += 1
                    if self.g_f == self.Gs[self.l_f]:
                        self.g_f, self.l_f = 0, (self.l_f + 1) % self.L
        self.ahead += requested - consumed


class LinearEngineModel(BlockModel):
    """Control mirror of LinearEngine: load counter, request window, fill counters, the
    buffers' full flags, the compute counters, the pipeline's tags and the output register."""

    inputs = ("i", "r")
    outputs = ("o", "req", "w")

    def __init__(self, e):  # a LinearEngine
        self.P, self.K, self.G = e.positions, e.chunks, e.groups
        self.BR, self.n_req = e.row_beats, len(e.tile_requests())
        self.loaded, self.n_in = False, 0
        self.ahead = self.c_req = 0
        self.b_f = self.k_f = self.f_sel = 0
        self.full = [False, False]
        self.c_sel = self.g = self.p = self.k = 0
        self.pipe: list[bool | None] = [None] * e.stages
        self.out_valid = False
        self.event = e.mode == "event"
        self.ops = [self.K] * self.P  # operations of each position (event: its popcount)
        self._offered = 0

    def valid(self, port):
        if port == "w":
            return False
        return self.out_valid if port == "o" else self.ahead != 2

    def ready(self, port):
        if port != "i":
            return True
        if self.event and not self.loaded and self.in_valid("i"):
            self._offered = max(1, bin(self.in_word("i")).count("1"))
        return not self.loaded

    def tick(self, fired):
        final = self.pipe[-1]
        advance = not (final is not None and self.out_valid and not fired["o"])
        if advance and final is not None:
            self.out_valid = final
        elif fired["o"]:
            self.out_valid = False
        consumed = requested = False
        if advance:
            item = None
            if self.loaded and self.full[self.c_sel]:
                item = self.k == self.ops[self.p] - 1
                self.k = 0 if item else self.k + 1
                if item:
                    self.p = (self.p + 1) % self.P
                    if self.p == 0:
                        consumed = True
                        self.full[self.c_sel] = False
                        self.c_sel ^= 1
                        self.g = (self.g + 1) % self.G
                        if self.g == 0:
                            self.loaded = False
            self.pipe = [item] + self.pipe[:-1]
        if fired["i"]:
            if self.event:
                self.ops[self.n_in] = self._offered
            self.n_in += 1
            if self.n_in == self.P:
                self.n_in, self.loaded = 0, True
        if fired["req"]:
            self.c_req = (self.c_req + 1) % self.n_req
            requested = self.c_req == 0
        if fired["r"]:
            self.b_f = (self.b_f + 1) % self.BR
            if self.b_f == 0:
                self.k_f = (self.k_f + 1) % self.K
                if self.k_f == 0:
                    self.full[self.f_sel] = True
                    self.f_sel ^= 1
        self.ahead += requested - consumed
