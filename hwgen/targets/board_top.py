"""The accelerator on a board: a UART link (docs/protocol.md), a self-test and LEDs.

`BoardCore` is all the logic with plain ports (UART pins, LEDs, a button), the
design the system test simulates; `BoardTop` wraps it for an amaranth-boards
platform, requesting the pins. Only one image is in the accelerator at a time:
the link, not the accelerator, limits the image rate.
"""

from __future__ import annotations

from amaranth import Const, Elaboratable, Module, ResetInserter, Signal
from amaranth.back import verilog
from amaranth.build.res import ResourceError
from amaranth.hdl import unsigned
from amaranth.lib import io, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out
from amaranth.vendor import SiliconBluePlatform

from hwgen.compiler.graph import Graph
from hwgen.compiler.top import Accelerator
from hwgen.host.protocol import Geometry, image_bytes, input_beats, model_geometry
from quant.data import sample_images
from rtl_templates.common import bits_for, check_int
from rtl_templates.frame_format import CLASSIFY, LOAD_WEIGHTS, OK, PING, READ_WEIGHTS, SELFTEST
from rtl_templates.frame_route import FrameDemux, MemPortShare, ReplyMux
from rtl_templates.plumbing import StreamFIFO
from rtl_templates.request_parser import RequestParser
from rtl_templates.response_builder import ResponseBuilder
from rtl_templates.uart import UartRx, UartTx, baud_divisor
from rtl_templates.weight_loader import WeightLoader

LOCAL = 0  # tag of a self-test started at power-up or by the button: no reply is sent
MIN_GAP_BYTES = 3  # the resynchronisation gap is at least this many byte times
DEFAULT_TIMEOUT_S = 0.02  # quiet line that ends a frame: far above USB-serial packet gaps


def led_pattern(cls: int | None, classes: int, leds: int) -> int:
    """What `ClassLeds` shows for class `cls` (None: no self-test has finished yet), as
    an int whose bit k is LED k. One-hot when there are at least `classes` LEDs; else
    the class in binary on LEDs 0.. (LED 0 the least significant bit), and the LED above
    them lit once a result is shown."""
    if cls is None:
        return 0
    if leds >= classes:
        return 1 << cls
    bits = bits_for(classes)
    value = cls | (1 << bits)  # the "shown" LED
    return value & ((1 << leds) - 1)


class ClassLeds(wiring.Component):
    """Shows the latest self-test class on LEDs (encoding: `led_pattern`).

    Parameters: ``classes``, ``leds`` (how many LEDs the board has), ``registered``
    (``cls`` and ``show`` registered first: the LED pins' flip-flops sit in the I/O
    cells, far from the logic that decides ``show``).
    Ports: ``cls`` and ``show`` (a strobe: latch ``cls``); ``leds`` (bit k drives LED k).
    Latency: the LEDs change the cycle after ``show`` (two cycles after with
    ``registered``); all are off until the first one.
    """

    def __init__(self, *, classes: int, leds: int, registered: bool = False):
        self.classes = check_int("classes", classes)
        self.n = check_int("leds", leds)
        self.registered = bool(registered)
        super().__init__({"cls": In(bits_for(classes)), "show": In(1), "leds": Out(leds)})

    def elaborate(self, platform) -> Module:
        m = Module()
        show, cls = self.show, self.cls
        if self.registered:
            show, cls = Signal(), Signal.like(self.cls)
            m.d.sync += [show.eq(self.show), cls.eq(self.cls)]
        with m.If(show):
            if self.n >= self.classes:
                m.d.sync += self.leds.eq((Const(1, self.n) << cls)[:self.n])
            else:
                bits = bits_for(self.classes)
                m.d.sync += self.leds.eq((cls | (1 << bits))[:self.n])
        return m


def default_selftest_image(model):
    """The built-in image: the first digits test image for digits-tiny, else a seeded
    random image (seed 0), as [C, H, W] integers."""
    return sample_images(model, 1, seed=0)[0][0]


def pixel_words(pixels, cfg) -> list[int]:
    """The accelerator's pixel beats of one image [C, H, W]: the CLASSIFY payload's bytes,
    channel c of a pixel in bits [c*pixel_bits, (c+1)*pixel_bits)."""
    data = image_bytes(pixels, cfg)
    _, c, pb = input_beats(cfg)
    return [sum(data[p * c + k] << (k * pb) for k in range(c)) for p in range(len(data) // c)]


class BoardCore(wiring.Component):
    """The board top's logic with plain ports: UART pins in and out, LEDs, a button.

    Parameters: ``graph`` (the accelerator), ``divisor`` (clock cycles per UART bit, >= 4),
    ``gap`` (cycles of quiet line that time out a frame and end a resynchronisation;
    at least 3 byte times), ``leds`` (LED count), ``selftest_image`` ([C, H, W] pixels;
    None: `default_selftest_image`), ``input_fifo`` (a two-beat FIFO between the
    request parser and the accelerator, another in front of the UART transmitter, the
    parser's release started from a register, `RequestParser` ``registered_start``, and
    the LEDs' inputs registered, `ClassLeds` ``registered``: all cut long paths on an
    ECP5; `BoardTop` leaves them out on an iCE40).

    Ports: ``rx`` (UART in, idles high), ``tx`` (UART out), ``leds`` (bit k drives LED
    k, 1 = lit), ``button`` (active high, asynchronous; a rising edge starts a self-test),
    ``busy`` (an image is in the accelerator).

    Behaviour: at power-up, and on a button press, the built-in image is classified and
    its class shown on the LEDs (`led_pattern`), with no UART reply. Requests from the
    host (docs/protocol.md): CLASSIFY replies with the class and logits; SELFTEST
    classifies the built-in image, shows it on the LEDs and replies like CLASSIFY; PING
    replies with the geometry; a bad frame is answered with an error reply and the next
    frame is parsed afresh. An image enters the accelerator only when the previous
    result has left it, so results and replies never interleave.

    External weights (an accelerator with a memory port, ``mem``): the core's ``mem`` is
    that port, for the board's memory controller, and the same UART also takes
    LOAD_WEIGHTS and READ_WEIGHTS frames (docs/protocol.md, "Loading weights"): a
    `FrameDemux` after a receive FIFO of ``rx_fifo`` bytes sends them to a `WeightLoader`
    (frames of up to ``frame_words`` words), a `ReplyMux` merges its replies with the
    classifier's, and a `MemPortShare` gives it the memory from the frame's first byte to
    its reply's last. The accelerator is held in reset from power-up and from the start
    of every weight frame until an image is asked for (CLASSIFY, SELFTEST or the button)
    after the frame's reply: no weight it fetched before a load survives it, and it reads
    nothing while the host is still loading (the memory may hold no weights yet). A
    weight frame waits until the image in flight has left; an image waits until the
    load's reply has been sent. There is no power-up self-test (the memory holds no
    weights yet); the button and SELFTEST still run one.
    """

    def __init__(self, graph: Graph, *, divisor: int, gap: int, leds: int,
                 selftest_image=None, frame_words: int = 1024, rx_fifo: int = 64,
                 input_fifo: bool = True):
        self.graph = graph
        self.input_fifo = bool(input_fifo)
        model = graph.model
        self.cfg = cfg = model.config
        self.divisor = check_int("divisor", divisor, 4)
        self.gap = check_int("gap", gap, MIN_GAP_BYTES * 10 * divisor)
        self.n_leds = check_int("leds", leds)
        self.geometry: Geometry = model_geometry(model)
        image = default_selftest_image(model) if selftest_image is None else selftest_image
        self.selftest_words = pixel_words(image, cfg)
        self.accelerator = Accelerator(graph)
        members = {"rx": In(1, init=1), "tx": Out(1, init=1), "leds": Out(leds),
                   "button": In(1), "busy": Out(1)}
        self.external = "mem" in self.accelerator.signature.members
        if self.external:
            sig = self.accelerator.mem.signature
            self.loader = WeightLoader(addr_width=sig.addr_width, data_width=sig.data_width,
                                       max_burst=sig.max_burst, frame_words=frame_words,
                                       gap=self.gap)
            self.rx_fifo = check_int("rx_fifo", rx_fifo, 2)
            members.update(mem=Out(sig), loading=Out(1))
        super().__init__(members)

    def elaborate(self, platform) -> Module:
        m = Module()
        geo = self.geometry
        acc_bits = self.graph.model.head.acc_bits
        m.submodules.uart_rx = urx = UartRx(self.divisor)
        m.submodules.uart_tx = utx = UartTx(self.divisor)
        m.submodules.parser = parser = RequestParser(
            pixels=geo.pixels, channels=geo.channels, pixel_bits=geo.pixel_bits, gap=self.gap,
            builtin=self.selftest_words, registered_start=self.input_fifo)
        m.submodules.builder = builder = ResponseBuilder(
            classes=geo.classes, acc_bits=acc_bits, ping_payload=geo.ping_payload())
        acc = self.accelerator
        m.submodules.class_leds = class_leds = ClassLeds(classes=geo.classes, leds=self.n_leds,
                                                         registered=self.input_fifo)
        m.d.comb += [urx.rx.eq(self.rx), self.tx.eq(utx.tx), self.leds.eq(class_leds.leds)]
        tx_in = utx.i
        if self.input_fifo:
            # The transmitter's readiness is its baud counter's compare; without this
            # register the path from there through the response builder and the result's
            # handshake into the LEDs spans the chip (a cifar-mid on-chip build at 69.0 MHz).
            m.submodules.tx_fifo = tx_fifo = StreamFIFO(unsigned(8), 2, style="logic")
            wiring.connect(m, tx_fifo.o, utx.i)
            tx_in = tx_fifo.i
        loading = Signal()  # external weights: the loader has the memory (and the UART)
        armed = Signal()  # external weights: the accelerator is out of reset
        if self.external:
            self._weights_path(m, urx, tx_in, parser, builder, loading, armed)
        else:
            m.submodules.accelerator = acc
            m.d.comb += [parser.frame_error.eq(urx.frame_error),
                         parser.overrun.eq(urx.overrun)]
            wiring.connect(m, urx.o, parser.i)
            wiring.connect(m, builder.o, tx_in)

        # Button: synchronised, rising edge. Bounces can only queue one more self-test.
        button = Signal()
        button_prev = Signal()
        m.submodules.button_sync = FFSynchronizer(self.button, button, stages=2)
        m.d.sync += button_prev.eq(button)
        local_pending = Signal(init=0 if self.external else 1)  # the power-up self-test
        with m.If(button & ~button_prev):
            m.d.sync += local_pending.eq(1)

        inflight = Signal()  # an image is in the accelerator
        tag = Signal(8)  # who asked: CLASSIFY, SELFTEST or LOCAL
        m.d.comb += self.busy.eq(inflight)

        # Requests: PING and errors are answered at once; CLASSIFY and SELFTEST wait until
        # the accelerator is free (a pending local self-test goes first).
        req = parser.req
        is_ctrl = Signal()
        m.d.comb += [
            is_ctrl.eq((req.payload.status != OK) | (req.payload.cmd == PING)),
            builder.ctrl.payload.eq(req.payload),
            builder.ctrl.valid.eq(req.valid & is_ctrl),
        ]
        start_req = Signal()
        runnable = armed if self.external else 1  # out of reset, not loading
        with m.If(is_ctrl):
            m.d.comb += req.ready.eq(builder.ctrl.ready)
        with m.Else():
            free = ~inflight & ~local_pending & runnable
            m.d.comb += [req.ready.eq(free), start_req.eq(req.valid & free)]
        start_local = Signal()
        m.d.comb += start_local.eq(~start_req & local_pending & ~inflight & runnable)
        if self.external:  # a weight frame waits for the image in flight, and vice versa
            m.d.comb += self.demux.b_allowed.eq(~inflight & ~start_req & ~start_local)
            with m.If(self.demux.b_frame):
                m.d.sync += armed.eq(0)
            with m.Elif(~loading & ((req.valid & ~is_ctrl) | local_pending)):
                m.d.sync += armed.eq(1)
        with m.If(start_req):
            is_selftest = req.payload.cmd == SELFTEST
            m.d.sync += [inflight.eq(1), tag.eq(req.payload.cmd)]
            m.d.comb += parser.replay.eq(is_selftest)
        with m.Elif(start_local):
            m.d.sync += [inflight.eq(1), tag.eq(LOCAL), local_pending.eq(0)]
            m.d.comb += parser.replay.eq(1)

        # The accelerator's input: the parser's verified image, or its built-in one,
        # through a two-beat FIFO with `input_fifo`: the first layer's readiness depends
        # on its line buffer's state, and without this register the path from there
        # through the parser's counter to its image memory's enable spans the chip (the
        # critical path of a cifar-mid on-chip build at 79.8 MHz).
        if self.input_fifo:
            m.submodules.image_fifo = ififo = StreamFIFO(parser.o.payload.shape(), 2,
                                                         style="logic")
            wiring.connect(m, parser.o, ififo.i)
            wiring.connect(m, ififo.o, acc.i)
        else:
            wiring.connect(m, parser.o, acc.i)

        # Results: to the host unless a local self-test asked; self-tests light the LEDs.
        res = acc.o
        to_host = Signal()
        m.d.comb += [
            to_host.eq(tag != LOCAL),
            builder.result.payload.cmd.eq(tag),
            builder.result.payload.result.eq(res.payload),
            builder.result.valid.eq(res.valid & to_host),
            res.ready.eq(builder.result.ready | ~to_host),
            class_leds.cls.eq(res.payload.cls),
        ]
        with m.If(res.valid & res.ready):
            m.d.sync += inflight.eq(0)
            m.d.comb += class_leds.show.eq(tag != CLASSIFY)
        return m

    def _weights_path(self, m: Module, urx, tx_in, parser, builder, loading: Signal,
                      armed: Signal) -> None:
        """The external-weight link: the receive FIFO, the frame demux, the weight loader (its
        replies through a two-beat FIFO), the reply mux and the memory share; the accelerator
        held in reset unless `armed` (a block held in reset may still offer a request: the
        share keeps the port from it meanwhile)."""
        m.submodules.accelerator = ResetInserter(~armed)(self.accelerator)
        m.submodules.rx_fifo = fifo = StreamFIFO(unsigned(8), self.rx_fifo)
        m.submodules.demux = demux = self.demux = FrameDemux(
            b_commands=(LOAD_WEIGHTS, READ_WEIGHTS), gap=self.gap)
        m.submodules.loader = loader = self.loader
        m.submodules.reply_mux = rmux = ReplyMux()
        sig = self.loader.port_signature
        m.submodules.share = share = MemPortShare(
            addr_width=sig.addr_width, data_width=sig.data_width, max_burst=sig.max_burst)
        wiring.connect(m, urx.o, fifo.i)
        wiring.connect(m, fifo.o, demux.i)
        wiring.connect(m, demux.a, parser.i)
        wiring.connect(m, demux.b, loader.i)
        wiring.connect(m, builder.o, rmux.a)
        # The loader's read-back bytes pass a two-beat FIFO: the reply mux's readiness
        # depends on its inputs' valid, and without this register the loop from the
        # memory controller's read buffer through the loader and the mux and back to the
        # buffer spans the chip (the critical path of a large external build).
        m.submodules.loader_out = lout = StreamFIFO(unsigned(8), 2, style="logic")
        wiring.connect(m, loader.o, lout.i)
        wiring.connect(m, lout.o, rmux.b)
        wiring.connect(m, rmux.o, tx_in)
        wiring.connect(m, self.accelerator.mem, share.a)
        wiring.connect(m, loader.mem, share.b)
        wiring.connect(m, share.mem, wiring.flipped(self.mem))
        m.d.comb += [demux.frame_error.eq(urx.frame_error), demux.overrun.eq(urx.overrun),
                     parser.frame_error.eq(demux.a_frame_error),
                     parser.overrun.eq(demux.a_overrun),
                     loader.frame_error.eq(demux.b_frame_error),
                     loader.overrun.eq(demux.b_overrun),
                     share.use_b.eq(~armed), self.loading.eq(loading)]
        with m.If(demux.b_frame):
            m.d.sync += loading.eq(1)
        with m.Elif(rmux.b_done):
            m.d.sync += loading.eq(0)


class BoardTop(Elaboratable):
    """The accelerator on an amaranth-boards platform, behind a UART.

    ``BoardTop(graph, clock_hz=None, baud=115200, selftest_image=None,
    timeout_s=0.02, pmod_leds=True)``; build it with ``platform.build(top, ...)``.
    ``clock_hz`` is the platform's default clock (None: read from the platform).

    Pins requested: ``uart`` 0 (rx, tx), every ``led`` the platform has (``led`` 0, 1,
    ...; on an iCEBreaker with ``pmod_leds`` the break-off PMOD's five LEDs are added as
    ``led`` 2..6), and ``button`` 0 if present (a press runs the self-test). The UART's
    divisor comes from `baud_divisor` (an error if the clock cannot make the baud rate
    within 1 %).
    """

    def __init__(self, graph: Graph, *, clock_hz: float | None = None, baud: int = 115200,
                 selftest_image=None, timeout_s: float = DEFAULT_TIMEOUT_S,
                 pmod_leds: bool = True):
        if not isinstance(timeout_s, (int, float)) or timeout_s <= 0:
            raise TypeError(f"timeout_s must be a positive number, not {timeout_s!r}")
        self.graph = graph
        self.baud = baud
        self.clock_hz = clock_hz
        self.timeout_s = timeout_s
        self.pmod_leds = pmod_leds
        self.selftest_image = selftest_image
        self.divisor = baud_divisor(clock_hz, baud) if clock_hz is not None else None
        self.core: BoardCore | None = None

    def elaborate(self, platform) -> Module:
        if platform is None:
            raise ValueError("BoardTop needs an amaranth-boards platform; simulate BoardCore")
        clock_hz = self.clock_hz if self.clock_hz is not None else platform.default_clk_frequency
        divisor = self.divisor or baud_divisor(clock_hz, self.baud)
        gap = max(round(self.timeout_s * clock_hz), MIN_GAP_BYTES * 10 * divisor)
        if (self.pmod_leds and hasattr(platform, "break_off_pmod")
                and ("led", 2) not in platform.resources):
            platform.add_resources(platform.break_off_pmod)

        m = Module()
        leds = request_leds(platform)
        # No input FIFO on an iCE40: its logic cells are the limit there, and its board
        # clock (12 MHz) has margin without it.
        self.core = core = BoardCore(self.graph, divisor=divisor, gap=gap, leds=len(leds),
                                     selftest_image=self.selftest_image,
                                     input_fifo=not isinstance(platform, SiliconBluePlatform))
        m.submodules.core = core
        connect_link_pins(m, platform, core, leds)
        return m


def request_leds(platform) -> list:
    """Every ``led`` resource the platform has (``led`` 0, 1, ...); an error if none."""
    leds = []
    while True:
        try:
            leds.append(platform.request("led", len(leds), dir="-"))
        except ResourceError:
            break
    if not leds:
        raise ValueError(f"platform {type(platform).__name__} has no 'led' resource")
    return leds


def connect_link_pins(m: Module, platform, core: BoardCore, leds: list) -> None:
    """`core`'s UART to ``uart`` 0, its LEDs to `leds`, its button to ``button`` 0 if the
    platform has one."""
    uart = platform.request("uart", 0, dir="-")
    m.submodules.rx_buffer = rx = io.Buffer("i", uart.rx)
    m.submodules.tx_buffer = tx = io.Buffer("o", uart.tx)
    m.d.comb += [core.rx.eq(rx.i), tx.o.eq(core.tx)]
    for k, led in enumerate(leds):
        m.submodules[f"led_buffer{k}"] = buf = io.Buffer("o", led)
        m.d.comb += buf.o.eq(core.leds[k])
    if ("button", 0) in platform.resources:
        m.submodules.button_buffer = btn = io.Buffer("i", platform.request("button", 0,
                                                                           dir="-"))
        m.d.comb += core.button.eq(btn.i)


def board_core_verilog(core: BoardCore, name: str = "top") -> str:
    return verilog.convert(core, name=name, emit_src=False)

