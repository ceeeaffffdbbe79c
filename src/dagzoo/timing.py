"""Where a job's time goes: process start-up (interpreter, imports), useful work, and MLflow
syncing. `dagzoo` prints one line per job at its end (see cli.main); bench/bench_overhead.py
reads those lines from a DAG's logs and sets the DAG's wall time against the useful work."""

from __future__ import annotations

import contextlib
import os
import time

#: seconds this process spent mirroring runs into MLflow (dagzoo.tracking adds to it)
sync_seconds = 0.0
#: seconds spent importing a stage's model modules (and torch with them) after the command
#: started its work: start-up, not useful work (dagzoo.registry adds to it)
import_seconds = 0.0
_depth = 0  # importing() blocks open


@contextlib.contextmanager
def importing():
    """Count the time of the imports within as start-up (nested uses count once)."""
    global import_seconds, _depth
    _depth += 1
    started = time.perf_counter()
    try:
        yield
    finally:
        _depth -= 1
        if _depth == 0:
            import_seconds += time.perf_counter() - started


def process_start() -> float:
    """When this process started (Unix time), from /proc; now where /proc is not there."""
    try:
        with open("/proc/self/stat") as f:
            ticks = int(f.read().rsplit(")", 1)[1].split()[19])  # field 22: start time in clock ticks
        with open("/proc/stat") as f:
            boot = next(int(line.split()[1]) for line in f if line.startswith("btime"))
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return time.time()


def timing_line(command: str, ready: float, end: float) -> str:
    """One line: the command, when its process started and ended, its start-up (until `ready`:
    interpreter, imports), useful work and MLflow seconds, and the threads its work used."""
    import sys

    torch = sys.modules.get("torch")
    threads = torch.get_num_threads() if torch is not None else 1
    start = process_start()
    return (f"[dagzoo] timing: command={command} start={start:.2f} end={end:.2f} threads={threads} "
            f"startup_s={ready - start + import_seconds:.2f} "
            f"useful_s={max(end - ready - sync_seconds - import_seconds, 0.0):.2f} sync_s={sync_seconds:.2f}")
