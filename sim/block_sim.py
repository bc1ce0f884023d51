"""Simulate one stream block under cocotb against expected payloads, and check its cycle model.

`simulate_block` drives the inputs with seeded per-cycle gap patterns, collects
every output under seeded stall patterns and raises SimulationFailed at the
first beat that differs (nothing lost, duplicated or reordered).
`check_cycle_model` then runs the block's `model()` in the very same
environment and raises if any output beat fires in another cycle.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from rtl_templates.timing import run_single
from sim.runner import SimResult, run_cocotb, verilog_of

PATTERN_LENGTH = 997  # prime, so gap and stall patterns do not line up with block periods


def make_pattern(rng: random.Random, probability: float, length: int = PATTERN_LENGTH) -> list[int]:
    """Per-cycle bits, each 1 with `probability` (an empty list means never)."""
    if probability <= 0:
        return []
    return [int(rng.random() < probability) for _ in range(length)]


@dataclass
class BlockRun:
    """What the RTL did: output words and fire cycles per port, and the environment it ran in."""

    sim: SimResult
    inputs: dict[str, list[int]]
    idle: dict[str, list[int]]
    stall: dict[str, list[int]]

    @property
    def out_cycles(self) -> dict[str, list[int]]:
        return self.sim.data["out_cycles"]

    @property
    def cycles(self) -> int:
        return self.sim.data["cycles"]


def simulate_block(component, inputs: dict[str, Sequence[int]], expected: dict[str, Sequence[int]],
                   *, simulator: str = "verilator", seed: int = 0, gap: float = 0.0,
                   backpressure: float = 0.0, timeout: int = 500_000, tag: str = "block",
                   constants: dict[str, int] | None = None, waves: bool = False) -> BlockRun:
    rng = random.Random(seed)
    idle = {k: make_pattern(rng, gap) for k in sorted(inputs)}
    stall = {k: make_pattern(rng, backpressure) for k in sorted(expected)}
    ins = {k: [int(x) for x in v] for k, v in inputs.items()}
    stimulus = {"seed": seed, "timeout": timeout, "inputs": ins,
                "outputs": {k: [int(x) for x in v] for k, v in expected.items()},
                "idle": idle, "stall": stall, "constants": constants or {}}
    sim = run_cocotb(verilog_of(component), "sim.cocotb_tests.stream_block", stimulus,
                     simulator=simulator, tag=tag, waves=waves)
    return BlockRun(sim, ins, idle, stall)


def check_cycle_model(component, run: BlockRun, *, words: bool = False) -> dict[str, list[int]]:
    """Run `component.model()` in `run`'s environment; raise AssertionError on any cycle difference.

    With `words`, the model sees the input payloads (data-dependent timing).
    Returns the model's output fire cycles per port.
    """
    model = component.model()
    in_counts = {p: len(run.inputs[p]) for p in model.inputs}
    out_counts = {p: len(run.out_cycles[p]) for p in model.outputs}
    predicted = run_single(model, in_counts, out_counts, in_words=run.inputs if words else None,
                           idle=run.idle, stall=run.stall)
    for port, got in run.out_cycles.items():
        want = predicted[port]
        if want != got:
            k = next((i for i, (a, b) in enumerate(zip(want, got, strict=False)) if a != b),
                     min(len(want), len(got)))
            raise AssertionError(
                f"{type(component).__name__}.{port}: cycle model differs from simulation at "
                f"beat {k}: model {want[k] if k < len(want) else 'none'}, "
                f"simulation {got[k] if k < len(got) else 'none'}")
    return predicted


def verify_block(component, inputs: dict[str, Sequence[int]],
                 expected: dict[str, Sequence[int]], *, words: bool = False,
                 **kwargs) -> BlockRun:
    """simulate_block, then check_cycle_model in the same environment; returns the run."""
    run = simulate_block(component, inputs, expected, **kwargs)
    check_cycle_model(component, run, words=words)
    return run
