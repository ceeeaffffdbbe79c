"""dagzoo.timing, which bench/bench_overhead.py reads from every job's log: when a process
started, and which of its seconds were start-up (interpreter, imports) rather than work."""

import subprocess
import sys
import time

import pytest

CHILD = """
import sys, time
from dagzoo import timing
start = timing.process_start()
timing.count_first_import_as_startup("json_probe_module")
ready = time.time()
import json_probe_module  # sleeps 0.3 s while it is imported
time.sleep(0.1)  # work
print(start, time.time(), timing.import_seconds)
print(timing.timing_line("probe", ready, time.time()))
"""


def test_process_start_and_a_timed_first_import(tmp_path):
    (tmp_path / "json_probe_module.py").write_text("import time\ntime.sleep(0.3)\n")
    before = time.time()
    r = subprocess.run(
        [sys.executable, "-c", CHILD],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    assert r.returncode == 0, r.stderr
    first, line = r.stdout.splitlines()
    start, now, imports = map(float, first.split())
    # the child started after `before` (to the clock tick, 10 ms) and before its 0.4 s of sleeps;
    # the boot time of /proc/stat once put it 0.8 s too early
    assert before - 0.05 <= start <= now - 0.4
    assert imports >= 0.3  # the first import, made after `ready`, is start-up
    fields = dict(f.split("=") for f in line.split()[2:])
    assert fields["command"] == "probe" and float(fields["startup_s"]) >= 0.3
    assert float(fields["useful_s"]) >= 0.1 and float(fields["useful_s"]) < float(fields["startup_s"]) + 0.1


def test_nested_import_blocks_count_once(monkeypatch):
    from dagzoo import timing

    clock = iter([10.0, 11.0, 16.0, 99.0])  # outer start, inner start, outer end (the inner end reads none)
    monkeypatch.setattr(timing.time, "perf_counter", lambda: next(clock))
    monkeypatch.setattr(timing, "import_seconds", 0.0)
    with timing.importing():
        with timing.importing():
            pass
    assert timing.import_seconds == 6.0


FREEZE_PROBE = """
import gc, sys
from dagzoo.cli import main
main(["mlflow-sync", "--results", sys.argv[1]])  # called as a library: nothing frozen
print(gc.get_freeze_count())
sys.argv = ["dagzoo", "mlflow-sync", "--results", sys.argv[1]]
main()  # the program itself, about to exit: its objects are left out of the exit's collections
print(gc.get_freeze_count())
"""


def test_only_the_program_freezes_its_objects_before_exit(tmp_path):
    r = subprocess.run([sys.executable, "-c", FREEZE_PROBE, str(tmp_path / "missing")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    library, program = map(int, r.stdout.split())
    assert library == 0 and program > 1000
    assert r.stderr.count("dagzoo: error: --results:") == 2  # both calls ran the command


def test_bench_overhead_reads_timing_lines_and_counts_idle_cores(tmp_path):
    """bench/bench_overhead.py on hand-written logs: a two-thread job from 0 to 10 s, a gap of
    0.5 s (two idle cores), then two one-thread jobs from 10.5 s, one ending at 11 s (one idle
    core until 12 s): 2 idle core-seconds."""
    import importlib.util

    from conftest import ROOT

    spec = importlib.util.spec_from_file_location("bench_overhead", ROOT / "bench" / "bench_overhead.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    logs = tmp_path / "logs"
    logs.mkdir()
    for name, start, end, threads in (("a", 100.0, 110.0, 2), ("b", 110.5, 112.0, 1), ("c", 110.5, 111.0, 1)):
        (logs / f"{name}.log").write_text(
            f"work\n[dagzoo] timing: command={name} start={start:.2f} end={end:.2f} threads={threads} "
            f"startup_s=0.10 useful_s={end - start - 0.1:.2f} sync_s=0.00\n"
        )
    jobs = bench.job_timings(tmp_path)
    assert sorted(j["command"] for j in jobs) == ["a", "b", "c"]
    assert bench.idle_core_seconds(jobs, 2) == pytest.approx(2.0)
