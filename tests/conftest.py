import os
import sys
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


def small_corpus(path: Path, lines: int = 400, seed: int = 0) -> Path:
    """A deterministic text with real structure (a few repeated phrases) for fast pipeline tests."""
    import random

    rng = random.Random(seed)
    words = ["and", "the", "lord", "said", "unto", "moses", "behold", "i", "will", "send", "you", "bread"]
    text = "\n".join(" ".join(rng.choice(words) for _ in range(rng.randint(4, 12))).capitalize() + "."
                     for _ in range(lines)) + "\n"
    path.write_text(text, encoding="utf-8")
    return path


def prepare_text_runs(tmp_path: Path, experiments: dict, window: int = 32, seeds=(0,), **eval_overrides):
    """Prepare a small corpus + char tokens and write one spec.json per run; returns
    (data_dir, {experiment: run_dir}, results_dir)."""
    from dagzoo.config import experiment_specs, validate_config
    from dagzoo.data.text import prepare_corpus
    from dagzoo.data.tokenize import prepare_tokens
    from dagzoo.io import atomic_write_json

    corpus = small_corpus(tmp_path / "corpus.txt")
    results = tmp_path / "results"
    data = results / "data" / "c"
    prepare_corpus(f"file:{corpus}", data, val=0.1, test=0.1)
    prepare_tokens(data, data / "char", {"kind": "char"})
    ev = {"window": window, "val_tokens": 512, "samples": 2, "sample_length": min(window, 40), **eval_overrides}
    cfg = validate_config({"seeds": list(seeds), "text": {"corpus": f"file:{corpus}", "eval": ev,
                                                          "experiments": experiments}})
    runs = {}
    for spec in experiment_specs(cfg):
        run_dir = results / "text" / spec["experiment"] / str(spec["seed"])
        atomic_write_json(run_dir / "spec.json", spec)
        runs[(spec["experiment"], spec["seed"]) if len(seeds) > 1 else spec["experiment"]] = run_dir
    return data / "char", runs, results


def dagzoo(*args, check=True, **kw):
    import subprocess

    r = subprocess.run([str(BIN / "dagzoo"), *map(str, args)], capture_output=True, text=True, **kw)
    if check and r.returncode != 0:
        raise AssertionError(f"dagzoo {' '.join(map(str, args))} failed:\n{r.stdout}\n{r.stderr}")
    return r
