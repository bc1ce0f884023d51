"""Sparsity-driven plans (issue 14): what the automatic event-driven choice buys, per target.

For each (model, board): the plan with `--event-driven none` (every layer dense, the
previous default) and with `auto` (the planner's choice from measured spike rates):
predicted interval and images/s at the board clock, utilisation of the device, the
bottleneck and its compute utilisation. With `--sim N`, the auto plan of the bundled
model is also simulated on N test images back to back (`hwgen sim`), giving the measured
interval, images/s and accuracy, and the wall time. Prints Markdown.

Usage: .venv/bin/python bench/bench_sparsity.py [--sim 360] [--cifar]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hwgen.compiler.loader import resolve_model  # noqa: E402
from hwgen.compiler.planner import plan_model  # noqa: E402
from hwgen.compiler.target import Target  # noqa: E402
from hwgen.reports.utilisation import layer_utilisation  # noqa: E402
from hwgen.targets.boards import get_board  # noqa: E402


def plan_row(model, board_name: str, event: str) -> list[str]:
    board = get_board(board_name)
    start = time.monotonic()
    plan = plan_model(model, Target.for_board(board), event=event)
    seconds = time.monotonic() - start
    tot = plan.totals()
    dev = board.device
    use = (f"LC {100 * tot['lc'] / dev.lut:.0f}%" if "lc" in tot
           else f"LUT {100 * tot['lut'] / dev.lut:.0f}%")
    util = {r["block"]: r["utilisation"] for r in layer_utilisation(plan, model)}
    b = plan.bottleneck.node
    events = sorted(k for k, f in plan.foldings.items() if f.mode == "event")
    return [model.config.name, board_name, event, ", ".join(events) or "-",
            f"{plan.interval_cycles:,} ({plan.interval_basis})",
            f"{board.clock_mhz * 1e6 / plan.interval_cycles:,.0f}", use, b,
            f"{100 * util[b]:.0f}%" if b in util else "- (not a spike linear)",
            f"{seconds:.1f}"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sim", type=int, default=0, metavar="N",
                    help="also simulate the bundled model's auto iCEBreaker plan on N images")
    ap.add_argument("--cifar", action="store_true", help="also plan cifar-mid on the ULX3S-85F")
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore")
    cases = [(resolve_model(), "icebreaker"), (resolve_model(), "ulx3s-85f")]
    if args.cifar:
        cases.append((resolve_model(config="cifar-mid"), "ulx3s-85f"))
    print("| model | board | --event-driven | event-driven layers | interval cycles | "
          "images/s at board clock | device use | bottleneck | its utilisation | plan s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for model, board in cases:
        for event in ("none", "auto"):
            print("| " + " | ".join(plan_row(model, board, event)) + " |", flush=True)
    if args.sim:
        exe = Path(sys.executable).parent / "hwgen"
        cmd = [str(exe), "sim", "--images", str(args.sim)]
        print(f"\n`{' '.join(cmd[1:])}` (load average {os.getloadavg()[0]:.1f}):\n")
        start = time.monotonic()
        out = subprocess.run(cmd, capture_output=True, text=True, check=False)
        print("```\n" + out.stdout.strip() + "\n```")
        print(f"\nwall {time.monotonic() - start:.1f} s, exit {out.returncode}")
        return out.returncode
    return 0


if __name__ == "__main__":
    sys.exit(main())
