"""Simulate one stream block under cocotb against expected payloads (the per-block harness)."""

from __future__ import annotations

from sim.runner import SimResult, run_cocotb, verilog_of


def simulate_block(component, inputs: dict[str, list[int]], expected: dict[str, list[int]], *,
                   simulator: str = "verilator", seed: int = 0, gap: float = 0.0,
                   backpressure: float = 0.0, timeout: int = 200_000, tag: str = "block",
                   constants: dict[str, int] | None = None, waves: bool = False) -> SimResult:
    """Drive `inputs` into the block's stream sinks with random gaps, collect every
    stream source under random backpressure, and raise SimulationFailed at the first
    beat that differs from `expected` (nothing lost, duplicated or reordered)."""
    stimulus = {"seed": seed, "gap": gap, "backpressure": backpressure, "timeout": timeout,
                "inputs": {k: [int(x) for x in v] for k, v in inputs.items()},
                "outputs": {k: [int(x) for x in v] for k, v in expected.items()},
                "constants": constants or {}}
    return run_cocotb(verilog_of(component), "sim.cocotb_tests.stream_block", stimulus,
                      simulator=simulator, tag=tag, waves=waves)
