"""docs/usage.md's tested blocks run as written, in order, in an empty folder: Python
blocks in one namespace, and every `hwgen ...` line of a shell block through the CLI."""

import re
import shlex
from pathlib import Path

import torch

from hwgen.cli.main import main
from quant import golden
from quant.model_file import load_model

DOC = Path(__file__).resolve().parent.parent / "docs" / "usage.md"
BLOCK = re.compile(r"<!-- tested -->\n```(\w+)\n(.*?)```", re.S)


def doc_blocks() -> list[tuple[str, str]]:
    return BLOCK.findall(DOC.read_text())


def test_doc_has_tested_python_and_cli_blocks():
    kinds = [k for k, _ in doc_blocks()]
    assert kinds.count("python") >= 3 and "sh" in kinds


def test_usage_doc_runs(tmp_path, monkeypatch, capsys):
    torch.set_num_threads(1)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for kind, code in doc_blocks():
        if kind == "python":
            exec(compile(code, str(DOC), "exec"), namespace)  # noqa: S102 - the doc's own code
        else:
            for line in code.splitlines():
                if line.startswith("hwgen "):
                    assert main(shlex.split(line)[1:]) == 0, line
    out = capsys.readouterr().out
    assert 'name = "digits-tiny"' in out  # config show
    assert "float accuracy" in out and "integer accuracy" in out
    for name in ("my.pt", "my.hwq", "my-cli.hwq", "my-4bit.hwq"):
        assert (tmp_path / name).is_file(), name
    # the Python and the CLI quantisation of the same checkpoint and data are the same model
    py, cli = load_model(tmp_path / "my.hwq"), load_model(tmp_path / "my-cli.hwq")
    x = namespace["data"].test_pixels
    assert torch.equal(golden.run(py, x, taps=False)["logits"],
                       golden.run(cli, x, taps=False)["logits"])
    assert "integer 4-bit QAT" in out
