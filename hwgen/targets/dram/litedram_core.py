"""Generate a standalone LiteDRAM controller's Verilog at build time, offline, and read what it wrote.

`generate` runs LiteDRAM's own generator (`litedram.gen`, the `litedram_gen` script) on
a config made from an `SDRAMConfig`, in a cache folder keyed by the config and the
package versions; the outputs used later are the Verilog, `sdram_phy.h` (the init
sequence) and `csr.csv` (the control registers' addresses).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path

from hwgen.errors import HwgenError

# The SDR SDRAM chips fitted to the ULX3S: geometry as LiteDRAM's modules.py has it.
MODULES = {
    "MT48LC16M16": {"banks": 4, "rows": 8192, "cols": 512},   # 32 MB, ULX3S-85F (most revisions)
    "AS4C32M16": {"banks": 4, "rows": 8192, "cols": 1024},    # 64 MB, later ULX3S revisions
}
CORE_NAME = "litedram_core"


class LiteDRAMMissing(HwgenError):
    """LiteDRAM (litedram, litex, migen) is not installed."""


class LiteDRAMFailed(HwgenError):
    """LiteDRAM's generator failed; the message has the tail of its log."""


@dataclass(frozen=True)
class SDRAMConfig:
    """What the generator is asked for. Defaults: the ULX3S-85F's 16-bit SDR SDRAM.

    ``module_nb`` is 2 because LiteDRAM counts 8-bit modules (with 1 the bus came out 8
    bits wide); ``cl`` 2 is the CAS latency an MT48LC16M16-75 allows up to 100 MHz.
    """

    module: str = "MT48LC16M16"
    module_nb: int = 2
    device: str = "LFE5U-85F-6BG381C"
    sys_clk_freq: float = 50e6
    cl: int = 2
    cmd_latency: int = 1
    port_width: int = 16

    def __post_init__(self):
        if self.module not in MODULES:
            raise ValueError(f"module must be one of {', '.join(MODULES)}, not {self.module!r}")
        if self.cl not in (2, 3):
            raise ValueError(f"cl must be 2 or 3, not {self.cl!r}")
        if not 10e6 <= self.sys_clk_freq <= 133e6:
            raise ValueError(f"sys_clk_freq must be 10e6 .. 133e6 Hz, not {self.sys_clk_freq!r}")

    @property
    def data_width(self) -> int:
        return 8 * self.module_nb

    @property
    def words(self) -> int:
        g = MODULES[self.module]
        return g["banks"] * g["rows"] * g["cols"]

    @property
    def addr_width(self) -> int:
        return (self.words - 1).bit_length()

    def core_config(self) -> dict:
        """The generator's YAML config (as a dict; JSON is YAML)."""
        return {
            "cpu": "None",  # no soft CPU: hwgen's CSRInit runs the init sequence
            "device": self.device,
            "memtype": "SDR",
            "sdram_module": self.module,
            "sdram_module_nb": self.module_nb,
            "sdram_rank_nb": 1,
            "sdram_phy": "GENSDRPHY",
            "sys_clk_freq": self.sys_clk_freq,
            "cmd_latency": self.cmd_latency,
            "sdram_cl": self.cl,
            "user_ports": {"native_0": {"type": "native", "data_width": self.port_width}},
        }


@dataclass(frozen=True)
class Generated:
    """The generator's outputs that hwgen uses, and how long generating took (0 if cached)."""

    folder: Path
    config: SDRAMConfig
    seconds: float

    @property
    def verilog_path(self) -> Path:
        return self.folder / "gateware" / f"{CORE_NAME}.v"

    @property
    def verilog(self) -> str:
        return self.verilog_path.read_text()

    @property
    def phy_header(self) -> str:
        return (self.folder / "software" / "include" / "generated" / "sdram_phy.h").read_text()

    @property
    def csr_csv(self) -> str:
        return (self.folder / "csr.csv").read_text()


def versions() -> dict[str, str]:
    out = {}
    for package in ("litedram", "litex", "migen"):
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            raise LiteDRAMMissing(f"{package} is not installed (pip install litedram==2024.12 "
                                  f"litex==2024.12 migen==0.10.0 pyyaml)") from None
    return out


def missing_reason() -> str | None:
    """None when LiteDRAM can generate here, else a one-line reason."""
    try:
        versions()
    except LiteDRAMMissing as e:
        return str(e)
    return None


def generate(config: SDRAMConfig = SDRAMConfig(), cache_root: Path | str | None = None
             ) -> Generated:
    """Run LiteDRAM's generator for `config` (or reuse a cached run) and tidy its Verilog."""
    key = json.dumps({"config": asdict(config), "versions": versions()}, sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    root = Path(cache_root) if cache_root else Path.cwd() / "build" / "litedram"
    folder = root / f"{config.module.lower()}-{digest}"
    stamp = folder / "hwgen.json"
    if stamp.exists() and json.loads(stamp.read_text()).get("key") == key:
        return Generated(folder, config, 0.0)
    folder.mkdir(parents=True, exist_ok=True)
    yml = folder / "config.yml"
    yml.write_text(json.dumps(config.core_config(), indent=2))
    start = time.monotonic()
    # Run outside any git work tree (LiteX stamps the Verilog with the sha1 of the cwd's
    # repo) and with a fixed hash seed (for any set-ordered output).
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    with tempfile.TemporaryDirectory() as cwd:
        proc = subprocess.run(
            [sys.executable, "-m", "litedram.gen", str(yml), "--name", CORE_NAME,
             "--output-dir", str(folder)], cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.monotonic() - start
    (folder / "generate.log").write_text(proc.stdout + proc.stderr)
    generated = Generated(folder, config, seconds)
    if proc.returncode or not generated.verilog_path.exists():
        tail = (proc.stdout + proc.stderr)[-1500:]
        raise LiteDRAMFailed(f"litedram_gen failed (exit {proc.returncode}): {tail}")
    generated.verilog_path.write_text(tidy_verilog(generated.verilog_path.read_text()))
    stamp.write_text(json.dumps({"key": key, "seconds": round(seconds, 3)}))
    return generated


_STAMPS = re.compile(r"^//.*(LiteX sha1|Date +:|Auto-Generated by LiteX on).*\n", re.M)
# LiteX's comment drawing the module hierarchy lists the primitives in a different order
# on every run.
_HIERARCHY = re.compile(r"^/\*\n(?:(?!\*/).*\n)*?.*\u2514\u2500\u2500\u2500(?:(?!\*/).*\n)*\*/\n", re.M)


def tidy_verilog(text: str) -> str:
    """Make the generated Verilog usable from Amaranth and deterministic.

    - ``sdram_dq`` is declared ``input`` at the top although it reaches the pins through
      bidirectional ``TRELLIS_IO`` buffers: declared ``inout`` so an Instance can connect
      it to an IO port (and a simulator can see both drivers).
    - The date and git stamps and the module-hierarchy comment go, so the same config
      gives byte-identical Verilog.
    """
    text, n = re.subn(r"\binput(\s+wire\s+\[\d+:0\]\s+sdram_dq\b)", r"inout\1", text)
    if n != 1:
        raise LiteDRAMFailed("generated Verilog has no `input ... sdram_dq` port to make inout")
    return _HIERARCHY.sub("", _STAMPS.sub("", text))


def top_ports(verilog: str, module: str = CORE_NAME) -> dict[str, tuple[str, int]]:
    """{port: (direction, width)} of `module`'s header in `verilog`."""
    m = re.search(rf"^module {module}\s*\((.*?)\);", verilog, re.S | re.M)
    if not m:
        raise LiteDRAMFailed(f"no module {module} in the generated Verilog")
    ports = {}
    for d, hi, name in re.findall(r"(input|output|inout)\s+wire\s+(?:\[(\d+):0\]\s+)?(\w+)",
                                  m.group(1)):
        ports[name] = (d, int(hi) + 1 if hi else 1)
    return ports
