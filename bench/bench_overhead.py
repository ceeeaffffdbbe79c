"""Where a DAG's wall time goes: each job's start-up (interpreter, imports), useful work and
MLflow syncing, from the timing line every `dagzoo` job prints at its end (dagzoo.timing), and
the DAG's wall time against the ideal schedule of its useful work.

    python bench/bench_overhead.py results [--cores 2] [--wall SECONDS]

ideal = sum over jobs of useful seconds x threads / cores: the wall time if the cores did nothing
but useful work. The ratio wall / ideal is 1 for a perfect schedule without overhead. --wall is
the DAG's measured wall time (default: first job start to last job end, from the same lines).
"""

from __future__ import annotations

import argparse
import re
from collections import defaultdict
from pathlib import Path

from dagzoo.docgen.bench import note, record, save

LINE = re.compile(
    r"\[dagzoo\] timing: command=(\S+) start=([\d.]+) end=([\d.]+) threads=(\d+) "
    r"startup_s=([-\d.]+) useful_s=([\d.]+) sync_s=([\d.]+)"
)


def job_timings(results: Path) -> list[dict]:
    jobs = []
    for log in sorted((results / "logs").rglob("*.log")):
        previous_end = 0.0
        for match in LINE.finditer(log.read_text(errors="replace")):
            command, start, end, threads, startup, useful, sync = match.groups()
            # commands of one job run one after another; the last one of a `(a && b)` shell is
            # exec'd by bash and keeps the shell's start time: it started when the previous ended
            start_s = max(float(start), previous_end)
            startup_s = float(startup) - (start_s - float(start))
            previous_end = float(end)
            jobs.append(
                {
                    "log": str(log.relative_to(results / "logs")),
                    "command": command,
                    "start": start_s,
                    "end": float(end),
                    "threads": int(threads),
                    "startup": startup_s,
                    "useful": float(useful),
                    "sync": float(sync),
                }
            )
    return jobs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results", type=Path)
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--wall", type=float, default=None, help="the DAG's wall time in seconds (if measured)")
    a = ap.parse_args()
    jobs = job_timings(a.results)
    if not jobs:
        raise SystemExit(
            f"no timing lines under {a.results / 'logs'}: every `dagzoo` job prints one at its end "
            "(dagzoo.timing); run the DAG to write them"
        )
    by_command = defaultdict(lambda: defaultdict(float))
    for j in jobs:
        row = by_command[j["command"]]
        row["jobs"] += 1
        for key in ("startup", "useful", "sync"):
            row[key] += j[key]
        row["wall"] += j["end"] - j["start"]
    header = ["command", "jobs", "job wall s", "start-up s", "useful s", "MLflow s", "overhead share"]
    rows = [
        [
            command,
            f"{r['jobs']:.0f}",
            f"{r['wall']:.1f}",
            f"{r['startup']:.1f}",
            f"{r['useful']:.1f}",
            f"{r['sync']:.1f}",
            f"{1 - r['useful'] / max(r['wall'], 1e-9):.0%}",
        ]
        for command, r in sorted(by_command.items(), key=lambda kv: -kv[1]["wall"])
    ]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")
    record(f"Job time per command ({a.results})", header, rows)
    total = {k: sum(j[k] for j in jobs) for k in ("startup", "useful", "sync")}
    ideal = sum(j["useful"] * min(j["threads"], a.cores) for j in jobs) / a.cores
    wall = a.wall if a.wall is not None else max(j["end"] for j in jobs) - min(j["start"] for j in jobs)
    note(
        f"\n{len(jobs)} jobs: start-up {total['startup']:.0f} s, useful {total['useful']:.0f} s, "
        f"MLflow {total['sync']:.0f} s (job-seconds)"
    )
    note(f"DAG wall time {wall:.0f} s = {wall / total['useful']:.3f} x the sum of the jobs' useful work")
    note(
        f"ideal schedule of the useful work on {a.cores} cores: {ideal:.0f} s; ratio wall / ideal = {wall / ideal:.3f}"
    )
    note(
        f"cores left idle between the first job's start and the last job's end: "
        f"{idle_core_seconds(jobs, a.cores):.0f} core-seconds (no job ready, or Snakemake's turn-around between jobs)"
    )
    save(__file__)


def idle_core_seconds(jobs: list[dict], cores: int) -> float:
    """Core-seconds during which fewer than `cores` threads were running a job."""
    events = sorted(
        [(j["start"], min(j["threads"], cores)) for j in jobs] + [(j["end"], -min(j["threads"], cores)) for j in jobs]
    )
    idle, busy, last = 0.0, 0, events[0][0]
    for t, change in events:
        idle += max(cores - busy, 0) * (t - last)
        busy, last = busy + change, t
    return idle


if __name__ == "__main__":
    main()
