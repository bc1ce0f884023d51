"""Shared fixtures: simulators that are absent skip the test with a reason, never pass it."""

import os

import pytest

from sim.runner import simulator_missing_reason

# Tests simulate for seconds but compile for tens of seconds: build Verilator models at -O0.
os.environ.setdefault("HWGEN_SIM_QUICK", "1")


def require(simulator: str) -> str:
    reason = simulator_missing_reason(simulator)
    if reason:
        pytest.skip(reason)
    return simulator


@pytest.fixture
def verilator() -> str:
    return require("verilator")


@pytest.fixture(params=["verilator", "icarus"])
def simulator(request) -> str:
    """Both simulators, for the representative subset of block tests run on Icarus too."""
    return require(request.param)


@pytest.fixture(scope="session")
def generated(tmp_path_factory):
    """The LiteDRAM core for the ULX3S SDRAM, generated once per run (skips without
    LiteDRAM)."""
    from hwgen.targets.dram.litedram_core import generate, missing_reason

    reason = missing_reason()
    if reason:
        pytest.skip(reason)
    return generate(cache_root=tmp_path_factory.mktemp("litedram"))
