"""Resumable benchmark runs: a JSON-lines cache of finished groups of runs, `--resume` and
`--time-limit`, shared by every suite that runs in chunks (MNIST-1D, the MiniLM text run).

A suite lists its groups (one or more training runs that belong together) in order and gives a
function that runs one group and returns its rows. `run_groups` skips the groups already in the
cache under the same config, appends each finished group's rows as soon as it ends (an interrupted
chunk loses at most the group it was running), stops starting new groups once `time_limit`
seconds have passed (the shared machine runs heavy jobs in short locked chunks) and writes a
partial report then, or the full report once every group is in.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Hashable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["load_cache", "run_groups"]

Row = dict[str, Any]


def load_cache(path: Path) -> list[Row]:
    """The rows of a JSON-lines cache (empty when the file does not exist)."""
    path = Path(path)
    if not path.is_file():
        return []
    rows = []
    for i, line in enumerate(path.read_text().splitlines()):
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}, line {i + 1}: not JSON ({err})") from err
    return rows


def run_groups(
    cache: Path,
    config: dict[str, Any],
    groups: Sequence[Hashable],
    key: Callable[[Row], Hashable],
    run_group: Callable[[Any, list[Row]], list[Row] | None],
    write: Callable[[list[Row], int], None],
    *,
    resume: bool = False,
    time_limit: float | None = None,
    warmup: Callable[[], Any] | None = None,
    progress: bool = True,
) -> bool:
    """Run the `groups` not yet in `cache`; True when all are in (the full report is written).

    `key(row)` names the group a cached row belongs to; only rows whose `config` equals `config`
    count. `run_group(group, rows)` runs one group, given the rows cached so far (a later group may
    depend on earlier ones), and returns its rows; each is stored with `config` added. A group that
    runs past the chunk's time may stop itself and return None (it resumes in the next chunk from
    its own checkpoint): the chunk then ends as at the time limit.
    `write(rows, partial)` writes the report from the cached rows, `partial` = groups not in yet.
    Without `resume` an existing cache is deleted first. `warmup()` runs once, untimed, before the
    first group (first-run costs: lazy imports, the allocator), only when there is a group to run.
    """
    cache = Path(cache)
    if time_limit is not None and not time_limit > 0:
        raise ValueError(f"time_limit must be a number of seconds > 0 or None, got {time_limit!r}")
    if not resume and cache.exists():
        cache.unlink()

    def cached() -> list[Row]:
        return [r for r in load_cache(cache) if r.get("config") == config]

    done = {key(r) for r in cached()}
    todo = [g for g in groups if g not in done]
    if todo and warmup is not None:
        warmup()
    start = time.perf_counter()
    for i, group in enumerate(todo):
        if time_limit is not None and time.perf_counter() - start > time_limit:
            print(f"time limit reached: {len(todo) - i} groups left; rerun with --resume")
            rows = cached()
            if rows:  # a partial report: the tables' n columns say how many seeds are in
                write(rows, len(todo) - i)
            return False
        t0 = time.perf_counter()
        new = run_group(group, cached())
        if new is None:  # the group stopped itself (out of time) and resumes in the next chunk
            print(f"out of time inside a group: {len(todo) - i} groups left; rerun with --resume")
            rows = cached()
            if rows:
                write(rows, len(todo) - i)
            return False
        cache.parent.mkdir(parents=True, exist_ok=True)
        with cache.open("a") as fh:
            for r in new:
                fh.write(json.dumps({**r, "config": config}) + "\n")
        if progress:
            print(f"[{i + 1}/{len(todo)}] {' '.join(map(str, _flat(group)))}: "
                  f"{time.perf_counter() - t0:.0f} s", flush=True)  # fmt: skip
    write(cached(), 0)
    return True


def _flat(group: Any) -> tuple[Any, ...]:
    return tuple(group) if isinstance(group, tuple) else (group,)
