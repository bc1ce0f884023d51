"""SPRAMFIFO: the single-port-RAM FIFO, on the real SB_SPRAM256KA (Yosys' simulation model) and
on the generic memory, under gaps and backpressure, with its cycle model checked beat by beat."""

import random

import pytest

from rtl_templates.spram_fifo import SPRAMFIFO, spram_sim_model, spram_slices
from sim.block_sim import verify_block
from sim.runner import verilog_of


@pytest.mark.sim
@pytest.mark.parametrize("spram,width,depth", [(True, 14, 40), (True, 20, 9), (False, 12, 7)])
def test_spram_fifo_under_gaps_and_backpressure(verilator, spram, width, depth):
    rng = random.Random(width)
    data = [rng.randrange(1 << width) for _ in range(400)]
    fifo = SPRAMFIFO(width, depth, spram=spram)
    run = verify_block(fifo, {"i": data}, {"o": data}, simulator=verilator, seed=depth,
                       gap=0.3, backpressure=0.5, tag="spfifo")
    assert run.sim.data["outputs"]["o"] == data


@pytest.mark.sim
def test_spram_fifo_icarus_full_rate(simulator):
    data = list(range(60))
    run = verify_block(SPRAMFIFO(8, 16), {"i": data}, {"o": data}, simulator=simulator,
                       tag="spfifo")
    # A read waits for the output register to empty (no ready chain): a beat leaves every
    # third cycle at best.
    gaps = [b - a for a, b in zip(run.out_cycles["o"], run.out_cycles["o"][1:], strict=False)]
    assert min(gaps) == 3


def test_spram_is_instantiated_and_its_model_appended():
    text = verilog_of(SPRAMFIFO(20, 100))
    assert text.count("SB_SPRAM256KA ") >= spram_slices(20) == 2
    assert "module SB_SPRAM256KA" in text
    assert "module SB_SPRAM256KA" in spram_sim_model()
    assert "SB_SPRAM256KA" not in verilog_of(SPRAMFIFO(20, 100, spram=False))


def test_spram_fifo_rejects_bad_parameters():
    with pytest.raises(ValueError, match="depth must be <= 16384"):
        SPRAMFIFO(8, 20000)
    with pytest.raises(TypeError, match="depth must be an integer"):
        SPRAMFIFO(8, 1)
