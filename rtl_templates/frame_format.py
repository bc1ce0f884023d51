"""The byte format both ends of the board's UART link share, in hardware (docs/protocol.md):
sync bytes, commands, status codes, the CRC-8 as an XOR network and the control-reply
layout. `request_parser` (receive side) and `response_builder` (send side) use it; the
constants mirror `hwgen.host.protocol`, the host side (a test keeps them equal).
"""

from __future__ import annotations

from amaranth import Cat, Value
from amaranth.hdl import unsigned
from amaranth.lib import data

SYNC_REQUEST = 0xA5
SYNC_RESPONSE = 0x5A
CLASSIFY, SELFTEST, PING = 0x43, 0x53, 0x50
LOAD_WEIGHTS = 0x57  # "W": words into external memory (rtl_templates.weight_loader)
READ_WEIGHTS = 0x52  # "R": words back from external memory (rtl_templates.weight_loader)
OK, ERR_SYNC, ERR_COMMAND, ERR_LENGTH, ERR_CHECKSUM, ERR_TIMEOUT, ERR_UART, ERR_RANGE = range(8)
CRC8_POLY = 0x07



def _crc8_step(x: int) -> int:
    for _ in range(8):
        x = ((x << 1) ^ CRC8_POLY if x & 0x80 else x << 1) & 0xFF
    return x


# CRC-8 is linear over GF(2): output bit i is the XOR of the bits j of (crc ^ byte) whose
# unit vector sets bit i.
_CRC8_TAPS = [[j for j in range(8) if _crc8_step(1 << j) >> i & 1] for i in range(8)]


def crc8_next(crc: Value, byte: Value) -> Value:
    """CRC-8/SMBUS (poly 0x07, MSB first) after one more byte: an XOR network, no state."""
    x = Value.cast(crc ^ byte)[:8]
    return Cat(*(Cat(*(x[j] for j in taps)).xor() for taps in _CRC8_TAPS))


def control_layout() -> data.StructLayout:
    """A reply without a result: the command it answers and a status (OK only for PING)."""
    return data.StructLayout({"cmd": unsigned(8), "status": unsigned(8)})
