"""The cocotb harness and the cycle-model kernel: plumbing blocks pass data under gaps and
backpressure, their models predict every output beat's cycle, and a wrong expectation or a
wrong model is reported (so block tests can fail)."""

import random

import pytest

from rtl_templates.plumbing import FIFOModel, Fork, StreamFIFO
from rtl_templates.timing import BlockModel, Network, Sink, Source, run_single
from sim.block_sim import check_cycle_model, simulate_block, verify_block
from sim.runner import SimulationFailed, _runtime_objects, build_simulator, verilog_of


@pytest.mark.sim
@pytest.mark.parametrize("depth", [2, 4, 5])
def test_fifo_under_gaps_and_backpressure(simulator, depth):
    rng = random.Random(depth)
    data = [rng.randrange(1 << 12) for _ in range(300)]
    run = verify_block(StreamFIFO(12, depth), {"i": data}, {"o": data}, simulator=simulator,
                       seed=7, gap=0.4, backpressure=0.4, tag="fifo")
    assert run.sim.data["outputs"]["o"] == data


@pytest.mark.sim
def test_fifo_full_rate(verilator):
    data = list(range(50))
    run = verify_block(StreamFIFO(8, 3), {"i": data}, {"o": data}, simulator=verilator, tag="fifo")
    # Two cycles of latency, then one beat per cycle.
    assert run.out_cycles["o"] == list(range(3, 53))


@pytest.mark.sim
@pytest.mark.parametrize("depth", [pytest.param(2, marks=pytest.mark.slow), 5])
def test_fifo_with_output_register(verilator, depth):
    """out_reg (ECP5 block RAM FIFOs): one more cycle of latency, still one beat per cycle,
    depth + 2 beats held, the model exact under gaps and backpressure (verify_block checks
    every output beat's cycle against it)."""
    data = list(range(50))
    run = verify_block(StreamFIFO(8, depth, out_reg=True), {"i": data}, {"o": data},
                       simulator=verilator, tag="fifo-reg")
    assert run.out_cycles["o"] == list(range(4, 54))
    rng = random.Random(depth)
    data = [rng.randrange(1 << 8) for _ in range(300)]
    verify_block(StreamFIFO(8, depth, out_reg=True), {"i": data}, {"o": data},
                 simulator=verilator, seed=depth, gap=0.4, backpressure=0.6, tag="fifo-reg")


@pytest.mark.sim
@pytest.mark.parametrize("depth,bank_depth", [(10, 4), (8, 2)])
def test_banked_fifo(verilator, depth, bank_depth):
    """bank_depth (ECP5 FIFOs deeper than a block RAM): the memory split into banks, each read
    into its own register before the multiplexer: one more cycle of latency than out_reg,
    still one beat per cycle, the model exact under gaps and backpressure, through every
    bank and across the wrap (a last bank smaller than the others included)."""
    fifo = StreamFIFO(8, depth, out_reg=True, bank_depth=bank_depth)
    assert fifo.banks == -(-depth // bank_depth) and fifo.stages == 3
    data = list(range(50))
    run = verify_block(fifo, {"i": data}, {"o": data}, simulator=verilator, tag="fifo-bank")
    assert run.out_cycles["o"] == list(range(5, 55))
    rng = random.Random(depth)
    data = [rng.randrange(1 << 8) for _ in range(400)]
    verify_block(StreamFIFO(8, depth, out_reg=True, bank_depth=bank_depth), {"i": data},
                 {"o": data}, simulator=verilator, seed=depth, gap=0.3, backpressure=0.7,
                 tag="fifo-bank")


def test_banked_fifo_refuses_bad_bank_depth():
    for bad in ({"bank_depth": 3, "out_reg": True}, {"bank_depth": 8, "out_reg": True},
                {"bank_depth": 4}):
        with pytest.raises(ValueError, match="bank_depth"):
            StreamFIFO(8, 8, **bad)


@pytest.mark.sim
def test_designs_share_the_verilator_runtime(verilator):
    """Two designs link the same once-compiled run-time objects (sim.runner._reuse_runtime)."""
    data = list(range(8))
    dirs = [simulate_block(StreamFIFO(8, depth), {"i": data}, {"o": data}, tag="fifo").sim.build_dir
            for depth in (3, 4)]
    assert dirs[0] != dirs[1]
    objs = _runtime_objects(dirs[0])
    assert "verilated.o" in objs
    for obj in objs:
        copies = {(d / obj).read_bytes() for d in dirs}
        cached = {p.read_bytes() for p in dirs[0].parent.glob(f"_verilated-*/{obj}")}
        assert len(copies) == 1 and copies <= cached


@pytest.mark.sim
def test_finished_build_is_not_rerun_unless_flags_or_tools_differ(verilator):
    text = verilog_of(StreamFIFO(7, 3))
    first = build_simulator(text, simulator=verilator, tag="stamp")
    log, stamp = first.build_dir / "build.log", first.build_dir / ".built"
    assert stamp.exists() and (first.build_dir / "top").exists()
    written = log.stat().st_mtime_ns
    again = build_simulator(text, simulator=verilator, tag="stamp")
    assert again.build_dir == first.build_dir and log.stat().st_mtime_ns == written
    key = stamp.read_text()
    stamp.write_text(key.replace('"make": "', '"make": "OTHER '))  # as if built otherwise
    build_simulator(text, simulator=verilator, tag="stamp")
    assert log.stat().st_mtime_ns != written and stamp.read_text() == key


@pytest.mark.sim
def test_fork_under_gaps_and_backpressure(simulator):
    rng = random.Random(3)
    data = [rng.randrange(1 << 9) for _ in range(200)]
    verify_block(Fork(9, 3), {"i": data}, {"o0": data, "o1": data, "o2": data},
                 simulator=simulator, seed=11, gap=0.3, backpressure=0.5, tag="fork")


@pytest.mark.sim
def test_mismatch_is_reported(verilator):
    data = list(range(20))
    wrong = data[:5] + [99] + data[6:]
    with pytest.raises(SimulationFailed, match="mismatch at beat 5"):
        simulate_block(StreamFIFO(8, 4), {"i": data}, {"o": wrong}, tag="fifo")


class _LateFIFO(BlockModel):
    """A deliberately wrong model: claims one cycle more latency than the FIFO has."""

    def __init__(self):
        self.inner = FIFOModel(4)
        self.delay = False

    def valid(self, port):
        return self.inner.valid("o") and self.delay

    def ready(self, port):
        return self.inner.ready(port)

    def tick(self, fired):
        self.delay = self.inner.valid("o") and not fired["o"]
        self.inner.tick(fired)


@pytest.mark.sim
def test_wrong_cycle_model_is_reported(verilator):
    data = list(range(20))
    fifo = StreamFIFO(8, 4)
    run = simulate_block(fifo, {"i": data}, {"o": data}, tag="fifo")
    fifo.model = _LateFIFO
    with pytest.raises(AssertionError, match="cycle model differs"):
        check_cycle_model(fifo, run)


def test_kernel_chain_of_fifos_skips_idle_stretches():
    net = Network()
    net.add("src", Source(10, idle=[0] * 5 + [1] * 95))
    net.add("a", FIFOModel(2))
    net.add("b", FIFOModel(2))
    sink = net.add("sink", Sink())
    net.connect(("src", "o"), ("a", "i"))
    net.connect(("a", "o"), ("b", "i"))
    net.connect(("b", "o"), ("sink", "i"))
    last = net.run(lambda: sink.received == 10, 10_000)
    # 5 beats per 100-cycle period; each beat needs 2 + 2 cycles through the FIFOs.
    assert sink.cycles == [5, 6, 7, 8, 9, 105, 106, 107, 108, 109]
    assert last == 109


def test_kernel_reports_deadlock():
    model = FIFOModel(2)
    with pytest.raises(RuntimeError, match="did not finish"):
        run_single(model, {"i": 3}, {"o": 4}, max_cycles=1000)
