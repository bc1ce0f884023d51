"""A sweep from grid to report: name every trial by its key, skip those OUT/results.jsonl
already holds, run the rest on Ray or local processes with a progress bar (ETA), append
each record as it finishes, then write OUT/report.md over the grid's records.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from hwgen.errors import HwgenError
from hwgen.sweep.executors import RayOptions, Task, ray_available, run_processes, run_ray
from hwgen.sweep.grid import Grid, GridError
from hwgen.sweep.report import write_report
from hwgen.sweep.results import ResultsFile, done_keys, read_records
from hwgen.sweep.trial import failure_record, trial_key

EXECUTORS = ("auto", "ray", "processes")
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_bytes(text) -> int:
    """'512M', '2G', '1.5g' or a number of bytes -> bytes."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        return int(text)
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kKmMgGtT]?)i?[bB]?\s*", str(text))
    if not m or float(m[1]) <= 0:
        raise GridError(f"memory: must be a size like 512M or 2G, not {text!r}")
    return int(float(m[1]) * _UNITS[m[2].lower()])


@dataclass
class SweepResult:
    out_dir: Path
    records: list[dict]  # the grid's records, in grid order
    ran: int = 0  # trials run by this call
    cached: int = 0  # trials found in results.jsonl
    seconds: float = 0.0
    executor: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def report(self) -> Path:
        return self.out_dir / "report.md"

    def summary(self) -> str:
        counts = Counter(r["status"] for r in self.records)
        return (f"{len(self.records)} trials ({self.cached} cached, {self.ran} run on "
                f"{self.executor or 'nothing'} in {self.seconds:.1f} s): "
                + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
                + f"\nresults: {self.out_dir / 'results.jsonl'}\nreport: {self.report}")


def _spec_hash(spec) -> str:
    return hashlib.sha256(json.dumps(spec.to_dict(), sort_keys=True).encode()).hexdigest()[:16]


def keyed_tasks(grid: Grid) -> tuple[list[Task], list[dict]]:
    """(tasks, records of trials refused before they could be named): each trial's key is
    computed here, in the driver; trials with equal keys (e.g. an explicit ceiling equal
    to the board's default) run once."""
    tasks, refused, seen = [], [], set()
    for spec in grid.trials():
        try:
            key = trial_key(spec)
        except Exception as e:  # noqa: BLE001 - e.g. a checkpoint that does not load
            key = "spec-" + _spec_hash(spec)
            status = "refused" if isinstance(e, HwgenError) else "error"
            text = str(e).strip().splitlines()
            why = text[0] if text else ""
            record = failure_record(spec, key, status, why if status == "refused"
                                    else f"{type(e).__name__}: {why}", 0.0)
            if key not in seen:
                refused.append(record)
            seen.add(key)
            continue
        if key not in seen:
            tasks.append(Task(spec, key))
            seen.add(key)
    return tasks, refused


def run_sweep(grid: Grid, out_dir: Path | str, *, executor: str = "auto",
              address: str | None = None, jobs: int | None = None, cpus: float = 1.0,
              memory: int | None = None, timeout: float | None = None,
              retry_failed: bool = False, progress: bool = True) -> SweepResult:
    """Run the grid's trials not yet in OUT/results.jsonl and write OUT/report.md.

    `executor` "auto" is Ray when installed, else local processes; `address` (Ray only)
    joins a cluster instead of starting a local instance. `jobs` caps concurrent trials
    (default: Ray fills the cluster; local processes run 1). `cpus` and `memory` (bytes)
    are each trial's Ray resource request; `timeout` (seconds) ends a trial as "timeout".
    """
    if executor not in EXECUTORS:
        raise HwgenError(f"executor must be one of {', '.join(EXECUTORS)}, not {executor!r}")
    if jobs is not None and jobs < 1:
        raise HwgenError(f"--jobs must be >= 1, not {jobs}")
    if timeout is not None and timeout <= 0:
        raise HwgenError(f"--trial-timeout must be positive, not {timeout:g}")
    if executor == "auto":
        executor = "ray" if ray_available() or address else "processes"
    if address and executor != "ray":
        raise HwgenError("--address joins a Ray cluster: it cannot be used with --no-ray")
    out_dir = Path(out_dir).resolve()
    start = time.monotonic()
    tasks, refused = keyed_tasks(grid)
    existing = read_records(out_dir)
    done = done_keys(existing, retry_failed=retry_failed)
    todo = [t for t in tasks if t.key not in done]
    new_refused = [r for r in refused if r["key"] not in done]
    result = SweepResult(out_dir, [], executor=executor if todo else "")
    result.cached = len(tasks) + len(refused) - len(todo) - len(new_refused)
    if executor == "processes" and not ray_available() and todo:
        result.notes.append("Ray is not installed (pip install 'hwgen[sweep]'): trials ran "
                            "in local processes")
    out_dir.mkdir(parents=True, exist_ok=True)
    with ResultsFile(out_dir) as results, tqdm(total=len(todo), desc="trials", unit="trial",
                                                file=sys.stderr, disable=not progress,
                                                dynamic_ncols=True) as bar:
        for record in new_refused:
            results.append(record)

        def on_record(record: dict) -> None:
            record["run"]["executor"] = executor
            results.append(record)
            result.ran += 1
            bar.set_postfix_str(f"{record['status']}: {record['label']}", refresh=False)
            bar.update(1)

        if todo:
            if executor == "ray":
                run_ray(todo, str(out_dir), on_record,
                        RayOptions(address=address, jobs=jobs, cpus=cpus, memory=memory),
                        timeout=timeout,
                        say=(lambda m: bar.write(m, file=sys.stderr)) if progress else None)
            else:
                run_processes(todo, str(out_dir), on_record, jobs=jobs or 1, timeout=timeout)
    by_key = {r["key"]: r for r in read_records(out_dir)}
    order = [t.key for t in tasks] + [r["key"] for r in refused]
    result.records = [by_key[k] for k in order if k in by_key]
    write_report(out_dir, result.records)
    result.seconds = time.monotonic() - start
    return result
