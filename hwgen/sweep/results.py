"""OUT/results.jsonl: one JSON record per finished trial, appended as trials finish.

Appends are flushed and synced line by line, so an interrupted sweep leaves every finished
trial on disk; a line cut short by a crash mid-write is skipped when the file is read and dropped
before the next append.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

RESULTS = "results.jsonl"
# Statuses that a re-run repeats only with --retry-failed: they say nothing about the design.
TRANSIENT = ("error", "timeout", "crashed")


def read_records(out_dir: Path) -> list[dict]:
    """Every complete record in OUT/results.jsonl, in file order (a later record of the
    same key replaces an earlier one)."""
    path = Path(out_dir) / RESULTS
    if not path.exists():
        return []
    by_key: dict[str, dict] = {}
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a torn last line from an interrupted write
        if isinstance(record, dict) and "key" in record:
            by_key.pop(record["key"], None)
            by_key[record["key"]] = record
    return list(by_key.values())


def done_keys(records: list[dict], *, retry_failed: bool = False) -> set[str]:
    """Keys of the trials a re-run skips."""
    return {r["key"] for r in records
            if not (retry_failed and r.get("status") in TRANSIENT)}


class ResultsFile:
    """Appends records to OUT/results.jsonl, one synced line each."""

    def __init__(self, out_dir: Path):
        self.path = Path(out_dir) / RESULTS
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._repair()
        self._file = open(self.path, "a")  # noqa: SIM115 - closed by close()

    def _repair(self) -> None:
        """Drop a torn last line (a write cut short): its trial runs again."""
        if self.path.exists() and self.path.stat().st_size:
            data = self.path.read_bytes()
            if not data.endswith(b"\n"):
                with open(self.path, "rb+") as f:
                    f.truncate(data.rfind(b"\n") + 1)

    def append(self, record: dict) -> None:
        self._file.write(json.dumps(record, sort_keys=True) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> ResultsFile:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
