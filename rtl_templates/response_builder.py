"""Response frames of the board's UART link, in hardware (docs/protocol.md): the send side.

`ResponseBuilder` turns results and status replies into response frames. The receive
side is `request_parser`; the shared byte format is `frame_format`.
"""

from __future__ import annotations

from amaranth import Array, Const, Module, Mux, Signal
from amaranth.hdl import signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from rtl_templates.common import check_int
from rtl_templates.frame_format import OK, SYNC_RESPONSE, control_layout, crc8_next
from rtl_templates.head import result_layout


def result_reply_layout(classes: int, acc_bits: int) -> data.StructLayout:
    """A result to send: the command it answers (CLASSIFY or SELFTEST) and the head's beat."""
    return data.StructLayout({"cmd": unsigned(8), "result": result_layout(classes, acc_bits)})


class ResponseBuilder(wiring.Component):
    """Response frames from result beats and control replies, as bytes for a UartTx.

    Parameters: ``classes``, ``acc_bits`` (the head's result beat), ``ping_payload``
    (the constant bytes a PING is answered with).

    Ports: sink ``result`` (`result_reply_layout`); sink ``ctrl`` (`control_layout`:
    status OK is answered with ``ping_payload``, an error code with an empty payload);
    source ``o`` (bytes).

    Frame: SYNC_RESPONSE, cmd, status, length (16-bit little-endian), payload, CRC-8 of
    every byte before it. A result's payload is the class (one byte) and each logit,
    sign-extended to ``ceil(acc_bits / 8)`` bytes, little-endian.

    Latency and backpressure: when idle, a valid input is taken up (``result`` first);
    its first byte is offered the next cycle, the rest one per cycle that ``o`` is
    ready. The input beat is held (its payload is read in place, not copied) and
    accepted in the cycle its frame's last byte leaves, so ``ready`` of the inputs is
    ``o.ready`` in that cycle and low otherwise.
    """

    def __init__(self, *, classes: int, acc_bits: int, ping_payload: bytes):
        self.classes = check_int("classes", classes)
        if classes > 256:
            raise ValueError(f"classes must be at most 256, not {classes!r}")
        self.acc_bits = check_int("acc_bits", acc_bits)
        if not isinstance(ping_payload, (bytes, bytearray)) or len(ping_payload) > 0xFFFF:
            raise TypeError(f"ping_payload must be bytes (at most 65535), not {ping_payload!r}")
        self.ping_payload = bytes(ping_payload)
        self.logit_bytes = -(-acc_bits // 8)
        super().__init__({
            "result": In(stream.Signature(result_reply_layout(classes, acc_bits))),
            "ctrl": In(stream.Signature(control_layout())),
            "o": Out(stream.Signature(unsigned(8))),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        res, ctrl = self.result.payload, self.ctrl.payload
        nb, classes = self.logit_bytes, self.classes
        ping = self.ping_payload

        active = Signal()
        kind = Signal(2)  # 0 result, 1 PING reply, 2 error
        k = Signal(range(max(5, len(ping), 1)))  # byte of the header / PING payload
        j = Signal(range(classes))  # logit
        b = Signal(range(nb))  # byte of the logit
        crc = Signal(8)
        byte = Signal(8)
        fire = Signal()
        done = Signal()  # the CRC byte leaves

        is_result = kind == 0
        cmd = Signal(8)
        status = Signal(8)
        m.d.comb += [
            cmd.eq(Mux(is_result, res.cmd, ctrl.cmd)),
            status.eq(Mux(is_result, OK, ctrl.status)),
        ]
        lengths = [1 + classes * nb, len(ping), 0]
        length = Signal(16)
        with m.Switch(kind):
            for idx, n in enumerate(lengths):
                with m.Case(idx):
                    m.d.comb += length.eq(n)

        # The logit bytes: a mux picks logit j, then byte b of it sign-extended.
        logit = Signal(signed(8 * nb))
        m.d.comb += logit.eq(Array(res.result.logits[i] for i in range(classes))[j])

        m.d.comb += [
            self.o.valid.eq(active), self.o.payload.eq(byte),
            fire.eq(self.o.valid & self.o.ready),
            self.result.ready.eq(fire & done & is_result),
            self.ctrl.ready.eq(fire & done & ~is_result),
        ]
        with m.If(fire):
            m.d.sync += crc.eq(crc8_next(crc, byte))

        with m.FSM(init="IDLE"):
            with m.State("IDLE"):
                m.d.sync += [k.eq(0), j.eq(0), b.eq(0), crc.eq(0)]
                with m.If(self.result.valid):
                    m.d.sync += [active.eq(1), kind.eq(0)]
                    m.next = "HEADER"
                with m.Elif(self.ctrl.valid):
                    m.d.sync += [active.eq(1), kind.eq(Mux(ctrl.status == OK, 1, 2))]
                    m.next = "HEADER"
            with m.State("HEADER"):
                with m.Switch(k):
                    for pos, value in enumerate([Const(SYNC_RESPONSE, 8), cmd, status,
                                                 length[:8], length[8:]]):
                        with m.Case(pos):
                            m.d.comb += byte.eq(value)
                with m.If(fire):
                    m.d.sync += k.eq(k + 1)
                    with m.If(k == 4):
                        m.d.sync += k.eq(0)
                        with m.If(is_result):
                            m.next = "CLASS"
                        with m.Elif((kind == 1) & (len(ping) > 0)):
                            m.next = "PING"
                        with m.Else():
                            m.next = "CRC"
            with m.State("CLASS"):
                m.d.comb += byte.eq(res.result.cls)
                with m.If(fire):
                    m.next = "LOGITS"
            with m.State("LOGITS"):
                m.d.comb += byte.eq(logit.word_select(b, 8) if nb > 1 else logit)
                with m.If(fire):
                    m.d.sync += b.eq(b + 1)
                    with m.If(b == nb - 1):
                        m.d.sync += [b.eq(0), j.eq(j + 1)]
                        with m.If(j == classes - 1):
                            m.next = "CRC"
            with m.State("PING"):
                with m.Switch(k):
                    for pos, value in enumerate(ping):
                        with m.Case(pos):
                            m.d.comb += byte.eq(value)
                with m.If(fire):
                    m.d.sync += k.eq(k + 1)
                    with m.If(k == len(ping) - 1):
                        m.next = "CRC"
            with m.State("CRC"):
                m.d.comb += [byte.eq(crc), done.eq(1)]
                with m.If(fire):
                    m.d.sync += active.eq(0)
                    m.next = "IDLE"
        return m
