import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path):
    """Tests never log into the developer's MLflow store or inherit a DAG's invocation."""
    for var in ("MLFLOW_TRACKING_URI", "DAGZOO_TRACKING_URI", "DAGZOO_INVOCATION_ID", "DAGZOO_MLFLOW_PREFIX"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("DAGZOO_DEVICE", "cpu")
    monkeypatch.setenv("PATH", f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")


@pytest.fixture
def one_torch_thread():
    """Torch on one thread for the test (tests of tiny tensors: faster, and immune to a busy
    machine's oversubscription)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def small_corpus(path: Path, lines: int = 400, seed: int = 0) -> Path:
    """A deterministic text with real structure (a few repeated phrases) for fast pipeline tests."""
    import random

    rng = random.Random(seed)
    words = ["and", "the", "lord", "said", "unto", "moses", "behold", "i", "will", "send", "you", "bread"]
    text = (
        "\n".join(
            " ".join(rng.choice(words) for _ in range(rng.randint(4, 12))).capitalize() + "." for _ in range(lines)
        )
        + "\n"
    )
    if not path.exists() or path.read_text(encoding="utf-8") != text:  # as is: a DAG's input keeps its mtime
        path.write_text(text, encoding="utf-8")
    return path


def prepare_text_runs(tmp_path: Path, experiments: dict, window: int = 32, seeds=(0,), **eval_overrides):
    """Prepare a small corpus + char tokens and write one spec.json per run; returns
    (data_dir, {experiment: run_dir}, results_dir)."""
    from dagzoo.config import experiment_specs, validate_config
    from dagzoo.io import atomic_write_json
    from dagzoo.text.data import prepare_corpus, prepare_tokens

    corpus = small_corpus(tmp_path / "corpus.txt")
    results = tmp_path / "results"
    data = results / "data" / "c"
    prepare_corpus(f"file:{corpus}", data, val=0.1, test=0.1)
    prepare_tokens(data, data / "char", {"kind": "char"})
    ev = {"window": window, "val_tokens": 512, "samples": 2, "sample_length": min(window, 40), **eval_overrides}
    cfg = validate_config(
        {"seeds": list(seeds), "text": {"corpus": f"file:{corpus}", "eval": ev, "experiments": experiments}}
    )
    runs = {}
    for spec in experiment_specs(cfg):
        run_dir = results / "text" / spec["experiment"] / str(spec["seed"])
        atomic_write_json(run_dir / "spec.json", spec)
        runs[(spec["experiment"], spec["seed"]) if len(seeds) > 1 else spec["experiment"]] = run_dir
    return data / "char", runs, results


def dagzoo(*args, check=True, **kw):
    r = subprocess.run([str(BIN / "dagzoo"), *map(str, args)], capture_output=True, text=True, **kw)
    if check and r.returncode != 0:
        raise AssertionError(f"dagzoo {' '.join(map(str, args))} failed:\n{r.stdout}\n{r.stderr}")
    return r


# ---------------------------------------------------------------------------------- the DAG
def snakemake(workdir, cfg_path, *extra):
    """`snakemake` on the project's Snakefile in `workdir` with one config; a later option (`--cores 16`) wins."""
    cmd = [
        str(BIN / "snakemake"),
        "-s",
        str(ROOT / "Snakefile"),
        "--directory",
        str(workdir),
        "--cores",
        "2",
        "--configfile",
        str(cfg_path),
        *map(str, extra),
    ]
    return subprocess.run(cmd, capture_output=True, text=True)


def planned_jobs(dry_run_output: str) -> list[tuple[str, str]]:
    """(rule, wildcards) of every job a dry run lists."""
    jobs, rule = [], None
    for line in dry_run_output.splitlines():
        line = line.strip()
        if line.startswith("rule ") and line.endswith(":"):
            rule = line[5:-1]
            jobs.append((rule, ""))
        elif line.startswith("wildcards:") and jobs:
            jobs[-1] = (jobs[-1][0], line[len("wildcards:") :].strip())
    return jobs


# ---------------------------------------------------------------------------------- services
@pytest.fixture
def mlflow_server(tmp_path):
    """A real MLflow tracking server on 127.0.0.1 (one worker, no job execution: starts in seconds)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            f"sqlite:///{tmp_path / 'server.db'}",
            "--default-artifact-root",
            str(tmp_path / "server-artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"{url}/health", timeout=2)
            break
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(proc.stderr.read().decode()[-2000:]) from None
            time.sleep(0.5)
    else:
        proc.kill()
        raise RuntimeError("the MLflow server did not come up in 120 s")
    yield url
    proc.terminate()
    proc.wait(timeout=30)


def slurm_unavailable() -> str | None:
    if not shutil.which("sinfo") or not shutil.which("sbatch"):
        return "SLURM is not installed (run `scripts/slurm_local.sh start` as root, as .ci/run does)"
    r = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True)
    if r.returncode != 0:
        return f"no SLURM controller answers: {r.stderr.strip()[:200]}"
    if not any(s.startswith(("idle", "mixed", "allocated")) for s in r.stdout.split()):
        return f"no SLURM node is up (states: {r.stdout.split()})"
    return None


# a real cluster's profile asks for 8 CPUs and 16 GB per training job; this node is smaller
SMALL_NODE = [
    "--set-threads",
    "train=1",
    "text_evaluate=1",
    "--set-resources",
    "train:cpus_per_task=1",
    "text_evaluate:cpus_per_task=1",
    "train:mem_mb=2000",
    "text_evaluate:mem_mb=2000",
    "text_sample:mem_mb=2000",
    "text_genppl:mem_mb=2000",
    "--default-resources",
    "mem_mb=1000",
    "runtime=10",
    "slurm_partition=debug",
    "--slurm-init-seconds-before-status-checks",
    "5",
    # one run's sampling and evaluations per group job (the profile merges 20 runs' into one, which
    # then waits for the slowest of their trainings): still grouped, and the runs stay independent
    "--group-components",
    "small=1",
    "features=1",
    # the test cluster keeps finished jobs visible 600 s (MinJobAge): polling every 2 s
    # instead of the default 10 s ends each job's wait sooner
    "--seconds-between-status-checks",
    "2",
]


# ---------------------------------------------------------------------------------- the probe set
def pytest_terminal_summary(terminalreporter):
    """One line counting the hardening probes (tests marked `probe`) this run of pytest ran, by outcome."""
    outcomes = {}
    for outcome in ("passed", "failed", "error", "skipped"):
        for report in terminalreporter.stats.get(outcome, []):
            if "probe" in getattr(report, "keywords", {}) and report.when in ("call", "setup"):
                if outcome == "passed" and report.when == "setup":
                    continue  # a passed setup is followed by its call's report
                outcomes[outcome] = outcomes.get(outcome, 0) + 1
    if outcomes:
        total = sum(outcomes.values())
        parts = ", ".join(f"{n} {outcome}" for outcome, n in outcomes.items())
        terminalreporter.write_line(f"hardening probe set: {total} probes, {parts}")


def generated_shapes(tmp_path: Path, points: int, train_per_class: int, test_per_class: int, val_fraction: float = 0.2):
    """The generated point-cloud shapes prepared into tmp_path/data, as the DAG's points_prepare
    makes them (PointData of them)."""
    from dagzoo.points.data import PointData, prepare_points

    shapes = {"train_per_class": train_per_class, "test_per_class": test_per_class}
    config = {"source": "shapes", "points": points, "val_fraction": val_fraction, "shapes": shapes}
    prepare_points(config, tmp_path / "data", cache=tmp_path / "cache")
    return PointData(tmp_path / "data")
