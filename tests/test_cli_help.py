"""`hwgen --help` and the quant subcommands' help: helpful, and fast (no torch import)."""

import subprocess
import sys

import pytest

from hwgen.cli.main import build_parser


def test_help_imports_no_torch():
    code = "import sys, hwgen.cli.main; print(sorted(m for m in ('torch', 'sklearn', 'amaranth') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(("command", "words"), [
    ("train", ["--epochs", "--seed", "checkpoint"]),
    ("quantize", ["--bits", "-o OUTPUT", "docs/arithmetic.md"]),
    ("inspect", ["--no-accuracy", "UP5K", "golden model"]),
    ("demo", ["bundled", "float vs integer", "--board", "--skip-build", "bitstream"]),
])
def test_subcommand_help(capsys, command, words):
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args([command, "--help"])
    assert exit_.value.code == 0
    out = " ".join(capsys.readouterr().out.split())  # undo argparse's line wrapping
    for w in words:
        assert w in out, (command, w)


def test_top_level_help_lists_quant_commands(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--help"])
    out = capsys.readouterr().out
    for command in ("train", "quantize", "inspect", "demo"):
        assert command in out
