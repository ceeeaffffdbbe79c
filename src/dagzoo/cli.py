"""`dagzoo <stage> ...`: the one command line every Snakemake rule calls (and people call by hand)."""

from __future__ import annotations

import argparse
import gc
import json
import os
import re
import sys
import time
from pathlib import Path

from dagzoo.argtypes import OneLineParser, positive_int
from dagzoo.errors import DagzooError


def _start_stage(threads: int | None) -> None:
    """A stage's threads: torch, imported later by the stage's model (if it uses torch at all),
    and OpenMP read them from the environment, as Snakemake sets it for a job. Importing torch
    counts as the job's start-up, wherever it happens."""
    from dagzoo import timing

    timing.count_first_import_as_startup("torch")
    if threads:
        # torchrun's ranks on one node share the job's threads (each would otherwise take them all)
        threads = max(1, threads // int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1))
        os.environ["OMP_NUM_THREADS"] = str(threads)
        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(threads)


def cmd_validate_config(a) -> int:
    from dagzoo.config import experiment_specs, load_config, validate_config

    raw = load_config(a.config)
    if a.cache:  # where the Snakefile looks (.snakemake/dagzoo): the run that follows validates no more
        from dagzoo.config_cache import validated_config

        # the file's path as Snakemake records a --configfile (absolute, not resolved): part of the key
        specs = validated_config(raw, [Path(a.config).absolute()], Path(a.cache))[1]
    else:
        specs = experiment_specs(validate_config(raw))
    print(f"{a.config}: valid ({len(specs)} experiment x seed runs)")
    return 0


def cmd_sweep_show(a) -> int:
    """Each sweep of a config and the experiments it expands into (after validating them all)."""
    from dagzoo.config import load_config, validate_config
    from dagzoo.family import families
    from dagzoo.sweep import expand_config, parse_name

    raw = load_config(a.config)
    cfg = validate_config(raw)  # every expanded experiment valid, or one line naming its sweep key
    _, origins = expand_config(raw, families())
    if not origins:
        print(f"{a.config}: no sweeps")
        return 0
    by_sweep: dict[tuple[str, str], list[str]] = {}
    for (family, name), point in origins.items():
        by_sweep.setdefault((family, point.base), []).append(name)
    for (family, base), names in by_sweep.items():
        point = origins[(family, names[0])]
        swept = ", ".join(f"{kind} {key}" for kind, key, _ in point.values)
        print(f"{family}.experiments.{base}: {len(names)} experiments x {len(cfg['seeds'])} seeds ({swept})")
        for name in names:
            values = ", ".join(f"{k} = {v!r}" for k, v in parse_name(name)[1].items())
            print(f"  {name}    {values}")
    return 0


def cmd_train(a) -> int:
    from dagzoo.stages import train

    out = train(a.spec, Path(a.data), Path(a.run_dir), Path(a.results), rule=a.rule)
    print(json.dumps(out, indent=1, default=str))
    return 0


def cmd_models(a) -> int:
    import dataclasses

    from dagzoo import registry
    from dagzoo.family import families

    for family in families():
        for key, cls in sorted(registry.models(family).items()):
            doc = (cls.__doc__ or cls.__module__).strip().splitlines()[0]
            print(f"{family}/{key}: {doc}")
            for paper in cls.papers:
                print(f"    paper: {paper.cite()}")
            if not cls.papers:
                print("    paper: none (a reference model)")
            for f in dataclasses.fields(cls.Params):
                default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
                limits = ", ".join(f"{k} {v}" for k, v in f.metadata.items() if k != "help")
                print(
                    f"    {f.name:<18} = {default!r:<10} {f.metadata.get('help', '')}"
                    + (f" ({limits})" if limits else "")
                )
    return 0


def cmd_docs(a) -> int:
    from dagzoo.docgen.config_reference import write_config_reference

    docs = Path(a.docs)
    written = [docs / "config-reference.md"] if write_config_reference(docs / "config-reference.md") else []
    if a.results is not None:
        from dagzoo.docgen.headline import headline_markdown, update_readme
        from dagzoo.docgen.results import write_results_page

        # the default config's results root (`results`) makes the page `default`; a study's
        # (results/<study>) the page named after it
        folder = Path(a.results).resolve().name
        name = a.name or ("default" if folder == "results" else folder)
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name) or ".." in name:
            raise DagzooError(
                f"--name {name!r}: a page name is letters, digits, '_', '.' and '-' (docs/results/<name>.md)"
            )
        page = docs / "results" / f"{name}.md"
        written.append(write_results_page(Path(a.results), page, figures=a.figures))
        readme = Path(a.readme)
        # the README's headline is the default config's: a study's page leaves it alone
        if (
            name == "default"
            and readme.is_file()
            and update_readme(readme, headline_markdown(Path(a.results), page.as_posix()))
        ):
            written.append(readme)
    if a.bench is not None:
        from dagzoo.docgen.bench import write_bench_page

        written.append(write_bench_page(Path(a.bench), docs / "benchmarks.md"))
    for path in written:
        print(f"wrote {path}")
    if not written:
        print(f"{docs}: up to date")
    return 0


def cmd_report(a) -> int:
    from dagzoo.report import write_report
    from dagzoo.tracking import find_run_dirs, live_sync, resolve_uri

    if a.runs is not None and a.runs_file is not None:
        raise DagzooError("--runs and --runs-file: give the runs one way")
    option = "--runs-file" if a.runs_file is not None else "--runs"
    listed = _read_lines(a.runs_file) if a.runs_file is not None else a.runs
    runs = [Path(r) for r in listed] if listed is not None else find_run_dirs(Path(a.results))
    missing = [str(r) for r in runs if not (r / "metrics.json").is_file()]
    if listed is not None and missing:  # the DAG lists finished runs; a mistyped one would vanish from the report
        raise DagzooError(
            f"{option}: {missing[0]} has no metrics.json (not a finished run)"
            + (f", and {len(missing) - 1} more" if len(missing) > 1 else "")
        )
    seen = set()
    for run in runs:  # a run given twice would count as two seeds of its experiment, with a spread of zero
        if run.resolve() in seen:
            raise DagzooError(f"{option}: {run} is given twice")
        seen.add(run.resolve())
    claims = _claims_arg(a.claims)
    tables = a.tables or a.out or a.results
    paths = write_report(
        Path(a.results), Path(a.out) if a.out else None, runs, claims, Path(tables), listed=listed is not None
    )
    # MLflow mirrors every reported run here (the short sampling jobs do not sync themselves),
    # then each experiment as a parent of its seeds; best effort: an unreachable store costs one
    # warning, the data wait on disk
    reachable = True
    for run in runs:
        if (run / "metrics.json").exists() and not live_sync(run, Path(a.results))(force=True):
            reachable = False
            break
    if reachable:
        _sync_parents(Path(a.results), Path(tables), resolve_uri(Path(a.results)))
    for p in paths:
        print(p)
    return 0


def cmd_mlflow_sync(a) -> int:
    from dagzoo.tracking import redact_uri, resolve_uri, sync_results

    if not Path(a.results).is_dir():  # a mistyped path would otherwise "sync 0 runs" and succeed
        raise DagzooError(f"--results: {a.results} is not a directory (the results root of a DAG run)")
    uri = resolve_uri(a.results, a.uri)
    ids = sync_results(Path(a.results), uri, prefix=a.prefix)
    parents = _sync_parents(Path(a.results), Path(a.results), uri, prefix=a.prefix, warn=False)
    print(f"synced {len(ids)} runs and {len(parents)} experiments to {redact_uri(uri)}")
    return 0


def _sync_parents(results: Path, tables: Path, uri: str, prefix: str | None = None, warn: bool = True) -> list[str]:
    """The report's experiments as MLflow parent runs (from its summary.parquet and claims.json,
    when a report was made); `warn`: an MLflow failure is a warning, not an error."""
    from dagzoo.errors import TrackingError
    from dagzoo.tracking import sync_experiments

    if not (tables / "summary.parquet").is_file():
        return []
    try:
        return sync_experiments(results, tables / "summary.parquet", tables / "claims.json", uri, prefix=prefix)
    except TrackingError as e:
        if not warn:
            raise
        print(f"[dagzoo] warning: {e}. Run `dagzoo mlflow-sync` once MLflow is reachable.", file=sys.stderr)
        return []


def _read_lines(path: str) -> list[str]:
    """The non-empty lines of a text file (--runs-file: one run directory per line)."""
    try:
        return [line for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as e:
        raise DagzooError(f"--runs-file: cannot read {path} ({getattr(e, 'strerror', None) or e})") from None


def _claims_arg(value: str | None) -> list[dict]:
    """--claims: a JSON list, or a config file whose `claims` the report evaluates."""
    import jsonschema

    from dagzoo.claims import CLAIM_SCHEMA
    from dagzoo.config import Validator, load_config

    if not value:
        return []
    if value.lstrip().startswith("["):
        try:
            claims = json.loads(value)
        except json.JSONDecodeError as e:
            raise DagzooError(f"--claims: not a JSON list ({e})") from None
    else:
        claims = load_config(value).get("claims", [])
    error = jsonschema.exceptions.best_match(Validator(CLAIM_SCHEMA).iter_errors(claims))
    if error is not None:
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
        raise DagzooError(f"--claims{where}: {error.message}")
    return claims


def _run_stage_arguments(s: argparse.ArgumentParser) -> None:
    """The arguments of every stage that works on one run."""
    s.add_argument(
        "--spec", required=True, help="the stage's spec: a JSON string (as the DAG passes it) or a spec file"
    )
    s.add_argument("--data", required=True, help="the family's prepared data directory")
    s.add_argument("--run-dir", required=True)
    s.add_argument("--results", default="results", help="results root (for the default MLflow store)")
    s.add_argument("--threads", type=positive_int, default=None)
    s.add_argument("--rule", default=None, help="name of the calling Snakemake rule (an MLflow tag)")


def build_parser() -> argparse.ArgumentParser:
    from dagzoo import __version__

    p = OneLineParser(prog="dagzoo", description=__doc__)
    p.add_argument("--version", action="version", version=f"dagzoo {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("validate-config", help="check a config file against the schema and the model registry")
    s.add_argument("config")
    s.add_argument(
        "--cache",
        metavar="DIR",
        help="keep the validated config in DIR, where the Snakefile reads it "
        "(.snakemake/dagzoo of the directory snakemake runs in; the Makefile passes it)",
    )
    s.set_defaults(fn=cmd_validate_config)

    s = sub.add_parser("sweep", help="sweeps: `dagzoo sweep show CONFIG` prints what each expands into")
    sweep_sub = s.add_subparsers(dest="sweep_command", required=True)
    s = sweep_sub.add_parser("show", help="validate CONFIG and print each sweep's experiments")
    s.add_argument("config")
    s.set_defaults(fn=cmd_sweep_show)

    s = sub.add_parser("models", help="list the registered models and their hyper-parameters")
    s.set_defaults(fn=cmd_models)

    s = sub.add_parser("train", help="train one experiment x seed of any family (resumes from its checkpoint)")
    _run_stage_arguments(s)
    s.set_defaults(fn=cmd_train)

    from dagzoo.family import families

    for fam in families().values():
        fam.add_commands(sub, _run_stage_arguments)

    s = sub.add_parser(
        "docs",
        help="regenerate the documentation made from the code (docs/config-reference.md) "
        "and, with --results, a results page; with --bench, docs/benchmarks.md",
    )
    s.add_argument("--docs", default="docs", help="the docs folder (default: docs)")
    s.add_argument("--results", default=None, help="a finished results tree to write a results page from")
    s.add_argument(
        "--name",
        default=None,
        help="the results page's name: docs/results/<name>.md (default: the results folder's name; `default` for "
        "the default config's folder, results)",
    )
    s.add_argument("--bench", default=None, help="the bench scripts' output folder (bench/out) for docs/benchmarks.md")
    s.add_argument(
        "--figures",
        action="store_true",
        help="with --results: copy the report's figures beside the page and link them (docs/results/<name>/*.png)",
    )
    s.add_argument(
        "--readme",
        default="README.md",
        help="with --results and --name default: the README whose headline tables to fill (default: README.md, "
        "if there is one)",
    )
    s.set_defaults(fn=cmd_docs)

    s = sub.add_parser("report", help="summary.parquet + report.md with tables and plots")
    s.add_argument("--results", default="results")
    s.add_argument("--out", default=None, help="report directory (default: <results>/report)")
    s.add_argument(
        "--tables",
        default=None,
        help="directory of summary.parquet, summary_by_experiment.parquet and "
        "claims.json (default: --results, or --out when --out is given, so a report made elsewhere "
        "leaves the DAG's tables alone)",
    )
    s.add_argument("--runs", nargs="*", default=None, help="run directories to report (default: all under results)")
    s.add_argument(
        "--runs-file",
        default=None,
        help="a file listing the run directories, one per line (what the "
        "DAG passes: a shell command holds at most 128 KiB, some 2,000 run paths)",
    )
    s.add_argument("--claims", default=None, help="the claims to evaluate: a JSON list or a config file")
    s.set_defaults(fn=cmd_report)

    s = sub.add_parser("mlflow-sync", help="(re)log every run under results/ into MLflow, idempotently")
    s.add_argument("--results", default="results")
    s.add_argument(
        "--uri",
        default=None,
        help="tracking URI (default: $DAGZOO_TRACKING_URI, else $MLFLOW_TRACKING_URI, else sqlite under results/)",
    )
    s.add_argument("--prefix", default=None, help="experiment name prefix (default: $DAGZOO_MLFLOW_PREFIX or dagzoo-)")
    s.set_defaults(fn=cmd_mlflow_sync)
    return p


def main(argv: list[str] | None = None) -> int:
    status = _main(argv)
    if argv is None:  # the `dagzoo` program itself, about to exit
        # Interpreter exit ends with garbage-collector passes over every object left, torch's
        # included: 0.3 s of each job that imported torch. Frozen objects are skipped; exit
        # handlers still run and every file is closed as before.
        gc.freeze()
    return status


def _main(argv: list[str] | None) -> int:
    from dagzoo import timing

    args = build_parser().parse_args(argv)
    ready = time.time()
    try:
        if hasattr(args, "threads"):  # a stage
            if "DAGZOO_INVOCATION_ID" in os.environ:  # ... started by the DAG (the Snakefile sets it)
                from dagzoo.io import watch_job_shell

                watch_job_shell()
            _start_stage(args.threads)
            ready = time.time()
        status = args.fn(args)
    except DagzooError as e:
        print(f"dagzoo: error: {e}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # the reader of our output left (`dagzoo models | head`): not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as e:  # a file or folder a user named that is missing, unreadable, or a full disk
        where = f"{e.filename}: " if e.filename else ""
        print(f"dagzoo: error: {where}{e.strerror or e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("dagzoo: interrupted", file=sys.stderr)
        return 130
    if status == 0:  # a finished job's last line: where its time went (bench/bench_overhead.py)
        print(timing.timing_line(args.command, ready, time.time()), file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
