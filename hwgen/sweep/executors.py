"""Where trials run: Ray tasks (a local instance or a cluster) or local worker processes.

Both call hwgen.sweep.trial.run_trial with the same arguments, so they give the same
records; both hand each record to `on_record` in the driver as soon as it exists, and
turn a trial that outlives `timeout` seconds or whose process dies into a record
("timeout", "crashed") while the other trials go on.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from collections import deque
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.connection import wait as wait_for

from hwgen.errors import HwgenError
from hwgen.sweep.grid import TrialSpec
from hwgen.sweep.trial import failure_record, run_trial

OnRecord = Callable[[dict], None]


@dataclass(frozen=True)
class Task:
    spec: TrialSpec
    key: str


def ray_available() -> bool:
    try:
        import ray  # noqa: F401 - optional extra hwgen[sweep]
    except ImportError:
        return False
    return True


def _import_ray():
    # Lazy: Ray is the optional extra hwgen[sweep]; hwgen works without it.
    try:
        import ray
    except ImportError:
        raise HwgenError("Ray is not installed: pip install 'hwgen[sweep]', or run the "
                         "trials in local processes (--no-ray)") from None
    return ray


# ------------------------------------------------------------------------ local processes

def _worker_main(conn) -> None:
    """A worker process: run the trials it is sent until it is sent None."""
    while True:
        msg = conn.recv()
        if msg is None:
            return
        conn.send(run_trial(*msg))


class _Worker:
    def __init__(self, ctx):
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker_main, args=(child,), daemon=True)
        self.proc.start()
        child.close()
        self.task: Task | None = None
        self.start = 0.0

    def give(self, task: Task, work_dir: str) -> None:
        self.task, self.start = task, time.monotonic()
        try:
            self.conn.send((task.spec.to_dict(), task.key, work_dir))
        except OSError:
            pass  # the worker died: the loop records the trial as crashed

    def stop(self, kill: bool = False) -> None:
        if kill:
            self.proc.kill()
        else:
            try:
                self.conn.send(None)
            except OSError:
                pass
        self.proc.join(5)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join()
        self.conn.close()


def run_processes(tasks: list[Task], work_dir: str, on_record: OnRecord, *, jobs: int = 1,
                  timeout: float | None = None) -> None:
    """Run `tasks` in up to `jobs` local worker processes (spawned: a clean interpreter
    each, kept for the next trial; replaced when one is killed for its timeout)."""
    ctx = mp.get_context("spawn")
    pending = deque(tasks)
    workers: list[_Worker] = []
    try:
        while pending or any(w.task for w in workers):
            for w in workers:
                if w.task is None and pending:
                    w.give(pending.popleft(), work_dir)
            while pending and len(workers) < jobs:
                workers.append(w := _Worker(ctx))
                w.give(pending.popleft(), work_dir)
            busy = [w for w in workers if w.task]
            now = time.monotonic()
            wait = 1.0 if timeout is None else max(0.0, min(
                w.start + timeout - now for w in busy))
            wait_for([w.conn for w in busy] + [w.proc.sentinel for w in busy], wait)
            for w in busy:
                task, seconds = w.task, time.monotonic() - w.start
                if w.conn.poll():
                    try:
                        record = w.conn.recv()
                    except (EOFError, OSError):  # the worker died (reset, closed pipe)
                        record = None
                    if record is not None:
                        w.task = None
                        on_record(record)
                        continue
                if not w.proc.is_alive():
                    record = failure_record(task.spec, task.key, "crashed",
                                            f"the worker process died (exit code "
                                            f"{w.proc.exitcode})", seconds)
                elif timeout is not None and seconds > timeout:
                    record = failure_record(task.spec, task.key, "timeout",
                                            f"timed out after {timeout:g} s", seconds)
                else:
                    continue
                w.stop(kill=True)
                workers.remove(w)
                on_record(record)
    finally:
        for w in workers:
            w.stop(kill=w.task is not None)


# ------------------------------------------------------------------------ Ray

def _ray_trial(spec_dict: dict, key: str, work_dir: str) -> dict:
    return run_trial(spec_dict, key, work_dir)


@dataclass
class RayOptions:
    """`address`: None starts a local instance (stopped afterwards), "auto" or
    "ray://HOST:PORT" joins a running cluster. `cpus` and `memory` (bytes) are each
    trial's resource request; `jobs` caps the trials in flight."""

    address: str | None = None
    jobs: int | None = None
    cpus: float = 1.0
    memory: int | None = None


def run_ray(tasks: list[Task], work_dir: str, on_record: OnRecord, opts: RayOptions, *,
            timeout: float | None = None, say=None) -> None:
    """Run `tasks` as Ray tasks. No more trials are in flight than the cluster can run at
    once (its CPUs and memory over each trial's request, and `jobs`), so a trial's
    timeout runs from when it starts, not from a wait in Ray's queue."""
    with ray_session(opts.address, num_cpus=opts.jobs) as ray:
        res = ray.cluster_resources()
        capacity = int(res.get("CPU", 1) // opts.cpus) if opts.cpus else len(tasks)
        if opts.memory:
            capacity = min(capacity, int(res.get("memory", 0) // opts.memory))
        if capacity < 1:
            raise HwgenError(f"the Ray cluster cannot run one trial: each asks for "
                             f"{opts.cpus:g} CPUs and {opts.memory or 0:,} bytes, it has "
                             f"{res.get('CPU', 0):g} CPUs and {res.get('memory', 0):,.0f} bytes")
        limit = min(capacity, opts.jobs or capacity)
        if say:
            where = opts.address or "a local Ray instance"
            say(f"Ray: {where}, {res.get('CPU', 0):g} CPUs; up to {limit} trials at once")
        task_opts = {"num_cpus": opts.cpus, "max_retries": 0}
        if opts.memory:
            task_opts["memory"] = opts.memory
        remote = ray.remote(_ray_trial).options(**task_opts)
        pending = deque(tasks)
        in_flight: dict = {}
        while pending or in_flight:
            while pending and len(in_flight) < limit:
                task = pending.popleft()
                ref = remote.remote(task.spec.to_dict(), task.key, work_dir)
                in_flight[ref] = (task, time.monotonic())
            now = time.monotonic()
            wait = 1.0 if timeout is None else max(0.0, min(
                start + timeout - now for _, start in in_flight.values()))
            ready, _ = ray.wait(list(in_flight), num_returns=1, timeout=wait)
            for ref in ready:
                task, start = in_flight.pop(ref)
                try:
                    record = ray.get(ref)
                except ray.exceptions.RayError as e:
                    text = str(e).strip().splitlines()
                    record = failure_record(task.spec, task.key, "crashed",
                                            f"{type(e).__name__}: {text[0] if text else ''}",
                                            time.monotonic() - start)
                on_record(record)
            if timeout is not None:
                for ref, (task, start) in list(in_flight.items()):
                    if time.monotonic() - start > timeout:
                        ray.cancel(ref, force=True)
                        del in_flight[ref]
                        on_record(failure_record(task.spec, task.key, "timeout",
                                                 f"timed out after {timeout:g} s",
                                                 time.monotonic() - start))


@contextmanager
def ray_session(address: str | None = None, *, num_cpus: int | None = None):
    """Ray, connected: to the cluster at `address` ("auto", "ray://HOST:PORT"), or to a
    local instance started here (with `num_cpus`, default one per core; `address`
    None or "local") and stopped on leaving. An already connected Ray is used as is."""
    ray = _import_ray()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no network: never phone home
    own = not ray.is_initialized()
    if own:
        if address and address != "local":
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(num_cpus=num_cpus or os.cpu_count() or 1, include_dashboard=False,
                     log_to_driver=False)
    try:
        yield ray
    finally:
        if own:
            ray.shutdown()


@contextmanager
def ray_chunk_map(address: str | None = None, *, cpus: float = 1.0):
    """A `map_chunks(fn, items)` for sim.e2e.simulate_accelerator: each item a Ray task of
    `cpus` CPUs (a chunk of images simulated on whichever node runs it), results in order."""
    with ray_session(address) as ray:
        def map_chunks(fn, items) -> list:
            remote = ray.remote(fn).options(num_cpus=cpus, max_retries=0)
            return ray.get([remote.remote(x) for x in items])

        yield map_chunks
