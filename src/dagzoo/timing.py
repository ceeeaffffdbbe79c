"""Where a job's time goes: process start-up (interpreter, imports), useful work, and MLflow
syncing. `dagzoo` prints one line per job at its end (see cli.main); bench/bench_overhead.py
reads those lines from a DAG's logs and sets the DAG's wall time against the useful work."""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import os
import sys
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


class _FirstImportTimer(importlib.abc.MetaPathFinder):
    """Finds nothing itself: times the first import of each of `names` as start-up."""

    def __init__(self, names):
        self.pending = set(names)

    def find_spec(self, fullname, path, target=None):
        if fullname not in self.pending:
            return None
        self.pending.discard(fullname)
        spec = importlib.machinery.PathFinder.find_spec(fullname, path, target)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return None  # left to the other finders, untimed
        run = spec.loader.exec_module

        def exec_module(module):
            with importing():
                run(module)

        spec.loader.exec_module = exec_module
        return spec


def count_first_import_as_startup(*names: str) -> None:
    """The first import of each of `names` (torch, wherever a stage happens to import it) counts
    as start-up, like the model modules the registry imports."""
    missing = [n for n in names if n not in sys.modules]
    if missing:
        sys.meta_path.insert(0, _FirstImportTimer(missing))


def process_start() -> float:
    """When this process started (Unix time), from /proc; now where /proc is not there.

    The process's age is the system's uptime less its start time, both counted from boot on the
    same clock (/proc/uptime, and field 22 of /proc/self/stat in clock ticks). The boot time of
    /proc/stat is not used: it is whole seconds, and the wall clock drifts from the boot clock
    (here it put every process 0.8 s earlier than it started)."""
    try:
        with open("/proc/self/stat") as f:
            ticks = int(f.read().rsplit(")", 1)[1].split()[19])  # field 22: start time in clock ticks
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        return time.time() - max(uptime - ticks / os.sysconf("SC_CLK_TCK"), 0.0)
    except (OSError, ValueError, IndexError):
        return time.time()


def timing_line(command: str, ready: float, end: float) -> str:
    """One line: the command, when its process started and ended, its start-up (until `ready`:
    interpreter, imports), useful work and MLflow seconds, and the threads its work used."""
    import sys

    torch = sys.modules.get("torch")
    threads = torch.get_num_threads() if torch is not None else 1
    start = process_start()
    return (
        f"[dagzoo] timing: command={command} start={start:.2f} end={end:.2f} threads={threads} "
        f"startup_s={ready - start + import_seconds:.2f} "
        f"useful_s={max(end - ready - sync_seconds - import_seconds, 0.0):.2f} sync_s={sync_seconds:.2f}"
    )
