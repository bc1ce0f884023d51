"""The layering is a checked contract: import-linter's contracts (pyproject.toml,
[tool.importlinter]) hold for the whole tree, and
ruff's lint is clean."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_import_contracts_are_kept():
    exe = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
    if not Path(exe).exists():
        pytest.fail("lint-imports (import-linter) is not installed: pip install -e '.[dev]'")
    proc = subprocess.run([exe, "--no-cache"], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    broken = [ln for ln in proc.stdout.splitlines() if "BROKEN" in ln]
    assert proc.returncode == 0, "\n".join(broken) or proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "Contracts: 6 kept, 0 broken." in proc.stdout


def test_lint_is_clean():
    """`make lint` (ruff, pinned in pyproject.toml) passes: the default test run checks it."""
    exe = Path(sys.executable).parent / "ruff"
    if not exe.exists():
        pytest.fail("ruff is not installed: pip install -e '.[dev]'")
    proc = subprocess.run([str(exe), "check", "hwgen", "rtl_templates", "sim", "quant", "tests",
                           "bench"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
