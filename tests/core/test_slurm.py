"""The DAG on a live SLURM cluster through the project's profile: same metrics as a local run.

.ci/run starts a single-node cluster with scripts/slurm_local.sh; elsewhere start one the same
way (as root), or the test is skipped with the reason.
"""

import json
import os
import subprocess

import pytest
import yaml

from conftest import BIN, ROOT, SMALL_NODE, slurm_unavailable, small_corpus

REASON = slurm_unavailable()
pytestmark = pytest.mark.skipif(REASON is not None, reason=REASON or "")


def _run(workdir, cfg, *extra, env=None):
    cmd = [
        str(BIN / "snakemake"),
        "-s",
        str(ROOT / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(cfg),
        *extra,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=1500, env=env)


def test_dag_through_slurm_equals_local_run(tmp_path, mlflow_server):
    """The SLURM jobs log to a live MLflow server; the local run to its default SQLite store."""
    corpus = small_corpus(tmp_path / "corpus.txt", lines=500)
    paths = {}
    for where in ("local", "slurm"):
        cfg = {
            "results": str(tmp_path / where / "results"),
            "seeds": [0],
            "threads": 1,
            "text": {
                "corpus": f"file:{corpus}",
                "split": {"val": 0.1, "test": 0.1},
                "eval": {"window": 32, "val_tokens": 512, "samples": 2, "sample_length": 32},
                "experiments": {
                    "kn3": {"model": "ngram", "order": 3},
                    "tiny": {
                        "model": "transformer",
                        "n_layer": 1,
                        "n_head": 2,
                        "d_model": 32,
                        "steps": 20,
                        "batch_size": 8,
                        "eval_every": 10,
                    },
                },
            },
        }
        paths[where] = tmp_path / f"{where}.yaml"
        paths[where].write_text(yaml.safe_dump(cfg))
        (tmp_path / where).mkdir()
    # the local reference runs beside the SLURM run (whose jobs mostly wait for the scheduler)
    local = subprocess.Popen(
        [
            str(BIN / "snakemake"),
            "-s",
            str(ROOT / "Snakefile"),
            "--directory",
            str(tmp_path / "local"),
            "--configfile",
            str(paths["local"]),
            "--cores",
            "1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_server}
    r = _run(
        tmp_path / "slurm",
        paths["slurm"],
        "--profile",
        str(ROOT / "workflow" / "profiles" / "slurm"),
        *SMALL_NODE,
        env=env,
    )
    local_out = local.communicate(timeout=1500)[0]
    assert local.returncode == 0, local_out[-4000:]
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    assert "has been submitted with SLURM jobid" in r.stdout + r.stderr
    assert "Group job small" in r.stdout + r.stderr, "the profile groups the small jobs"
    prov = json.loads((tmp_path / "slurm" / "results" / "text" / "tiny" / "0" / "provenance-train.json").read_text())
    assert prov["slurm_job_id"], "the training job ran inside a SLURM allocation"
    metrics = {
        where: {
            exp: json.loads((tmp_path / where / "results" / "text" / exp / "0" / "metrics.json").read_text())["metrics"]
            for exp in ("kn3", "tiny")
        }
        for where in ("local", "slurm")
    }
    for exp in ("kn3", "tiny"):
        for key in ("test/bpc", "test/nll", "train/tokens"):
            assert metrics["slurm"][exp][key] == pytest.approx(metrics["local"][exp][key], rel=1e-9), (exp, key)

    # the jobs on the SLURM node logged to the server, grouped by one invocation id
    from mlflow.tracking import MlflowClient

    client = MlflowClient(mlflow_server)
    every = client.search_runs([client.get_experiment_by_name("dagzoo-text").experiment_id])
    runs = [r for r in every if r.data.tags.get("dagzoo.level") == "seed"]
    assert sorted(r.info.run_name for r in runs) == ["kn3/0", "tiny/0"]
    # the report on the login node made the experiments' parents
    assert sorted(r.info.run_name for r in every if r.data.tags.get("dagzoo.level") == "experiment") == ["kn3", "tiny"]
    assert {r.info.status for r in runs} == {"FINISHED"}
    assert len({r.data.tags["dagzoo.invocation_id"] for r in runs}) == 1
    for r in runs:
        exp = r.info.run_name.split("/")[0]
        assert r.data.metrics["test/bpc"] == pytest.approx(metrics["slurm"][exp]["test/bpc"], rel=1e-12)
