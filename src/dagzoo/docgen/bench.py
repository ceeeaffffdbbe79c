"""Benchmark records and the benchmarks page, so that benchmark numbers in the docs come from runs
of the bench scripts and are never copied by hand.

A bench script prints its tables with `table` (or prints them itself and `record`s them), its
other result lines with `note`, and ends with `save(__file__)`: bench/out/<script>.json then holds
its tables and lines with the facts of the machine and code that produced them (date, git commit,
CPU, cores, torch version and threads, the script's arguments). `write_bench_page` renders
docs/benchmarks.md from those files: per script, its facts, then its tables and lines in the order
the script printed them.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from dagzoo.errors import DataError
from dagzoo.io import atomic_write_json, atomic_write_text, read_json_object

#: scripts in the page's order (others follow alphabetically)
ORDER = ("bench_text", "bench_diffusion", "bench_image", "bench_repr", "bench_points", "bench_overhead", "bench_dryrun")

_items: list[dict] = []  # what this process's script recorded, in print order


# ---------------------------------------------------------------------------------- recording
def _cell(x):
    return x if x is None or isinstance(x, (str, int, float)) else str(x)


def record(title: str, header: list[str], rows: list[list]) -> None:
    """Keep a table (already printed by the script) for `save`."""
    _items.append(
        {
            "kind": "table",
            "title": title,
            "header": [str(h) for h in header],
            "rows": [[_cell(x) for x in r] for r in rows],
        }
    )


def record_text(text: str) -> None:
    """Keep a result line (already printed by the script) for `save`."""
    _items.append({"kind": "text", "text": text.strip()})


def table(title: str, header: list[str], rows: list[list]) -> None:
    """Print a Markdown table with aligned columns under its title, and keep it for `save`."""
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    print(f"\n{title}")
    print("| " + " | ".join(h.ljust(w) for h, w in zip(header, widths)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print("| " + " | ".join(str(x).ljust(w) for x, w in zip(r, widths)) + " |")
    record(title, header, rows)


def note(text: str) -> None:
    """Print a result line as it is, and keep it for `save`."""
    print(text)
    record_text(text)


def header_facts(script: Path, argv: list[str]) -> dict:
    """Where the numbers come from: date, the command, machine and code facts, torch's threads
    (and GPU) when the script used torch."""
    from dagzoo.machine import machine_facts

    facts = {"date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "argv": list(argv), **machine_facts(script.parent)}
    torch = sys.modules.get("torch")
    if torch is not None:
        facts["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            facts["gpu"] = torch.cuda.get_device_name()
    return facts


def save(script: str | Path, out_dir: Path | None = None, argv: list[str] | None = None) -> Path:
    """Write what the script recorded, with its header facts, to <out_dir>/<script name>.json
    (default out_dir: bench/out beside the script) and return the path."""
    script = Path(script).resolve()
    path = Path(out_dir or script.parent / "out") / f"{script.stem}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "script": script.name,
        "header": header_facts(script, sys.argv[1:] if argv is None else argv),
        "items": list(_items),
    }
    atomic_write_json(path, doc)
    print(f"[dagzoo] benchmark record: {path}", file=sys.stderr)  # stderr: the printed tables stay as they are
    return path


# ---------------------------------------------------------------------------------- the page
def _escape(x) -> str:
    return "—" if x is None else str(x).replace("|", "\\|").replace("\n", " ")


def _facts_lines(script: str, h: dict) -> list[str]:
    def get(key: str) -> str:
        value = h.get(key)
        return "not recorded" if value is None or value == "" else str(value)

    argv = " ".join(h["argv"]) if isinstance(h.get("argv"), list) else None
    threads = f"; torch threads: {h['torch_threads']}" if h.get("torch_threads") is not None else ""
    gpu = f"; GPU: {h['gpu']}" if h.get("gpu") else ""
    return [
        f"- command: `python bench/{script}{' ' + argv if argv else ''}`",
        f"- date: {get('date')}",
        f"- code (git commit): `{get('git_commit')}`",
        f"- CPU: {get('cpu_model')}; logical CPUs: {get('cpu_count')}{threads}{gpu}",
        (
            f"- torch: {get('torch_version')}; dagzoo: {get('dagzoo_version')}; python: {get('python')}; "
            f"host: {get('host')}"
        ),
    ]


def render_record(doc: dict) -> list[str]:
    """Markdown lines of one script's record: its facts, then its tables and lines in order."""
    md = [f"## {doc['script']}", "", *_facts_lines(doc["script"], doc["header"]), ""]
    in_list = False
    for item in doc["items"]:
        if item.get("kind") == "text":
            # "*": a list of its own after the facts' "-" list; the script's column padding collapsed
            md.append("* " + " ".join(str(item.get("text", "")).split()))
            in_list = True
            continue
        if in_list:
            md.append("")
            in_list = False
        header, rows = item.get("header", []), item.get("rows", [])
        md += [
            f"### {item.get('title', '')}",
            "",
            "| " + " | ".join(map(_escape, header)) + " |",
            "|" + "---|" * len(header),
        ]
        md += ["| " + " | ".join(map(_escape, r)) + " |" for r in rows]
        md.append("")
    if in_list:
        md.append("")
    return md


def _order(path: Path) -> tuple:
    return (ORDER.index(path.stem), "") if path.stem in ORDER else (len(ORDER), path.stem)


def write_bench_page(bench_out: Path, out: Path) -> Path:
    """Write the benchmarks page `out` from every record in `bench_out` and return its path."""
    bench_out, out = Path(bench_out), Path(out)
    if not bench_out.is_dir():
        raise DataError(
            f"{bench_out}: no such folder; a bench script writes its record there "
            "(e.g. python bench/bench_text.py --quick)"
        )
    files = sorted(bench_out.glob("*.json"), key=_order)
    if not files:
        raise DataError(f"{bench_out}: no benchmark records (*.json); run a bench script first")
    intro = (
        f"Generated by `dagzoo.docgen.bench` from the records in `{bench_out}` that the bench scripts write: "
        "every number comes from the run of the script whose facts head its section. Do not edit by hand; "
        "rerun a script and regenerate."
    )
    md = ["# Benchmarks", "", intro, ""]
    for path in files:
        doc = read_json_object(path, {"script": str, "header": dict, "items": list})
        md += render_record(doc)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, "\n".join(md).rstrip("\n") + "\n")
    return out
