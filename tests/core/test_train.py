"""The shared training loop: resume after SIGKILL, divergence, corrupt checkpoints, learning."""

import json
import math
import os
import signal
import subprocess
import time

import numpy as np
import pytest
import torch

from dagzoo.errors import TrainingError
from dagzoo.io import read_json, read_jsonl
from dagzoo.train import Trainer, TrainParams, lr_at

from conftest import BIN, dagzoo, prepare_text_runs

TINY = {
    "model": "transformer",
    "n_layer": 2,
    "n_head": 2,
    "d_model": 32,
    "batch_size": 8,
    "lr": 3e-3,
    "warmup_steps": 10,
    "log_every": 5,
    "eval_every": 50,
    "checkpoint_every": 10,
}


def train_args(data, run, results):
    return [
        "train",
        "--spec",
        run / "spec.json",
        "--data",
        data,
        "--run-dir",
        run,
        "--results",
        results,
        "--threads",
        "1",
    ]


@pytest.mark.probe
def test_sigkill_then_rerun_resumes_from_checkpoint(tmp_path):
    # checkpoints every 50 steps, losses every 5: the kill lands between two checkpoints
    long = {**TINY, "steps": 600, "checkpoint_every": 50}
    data, runs, results = prepare_text_runs(tmp_path, {"a": long, "b": long})
    run = runs["a"]
    proc = subprocess.Popen(
        [str(BIN / "dagzoo"), *map(str, train_args(data, run, results))],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    ckpt = run / "checkpoints" / "last.pt"
    deadline = time.time() + 120
    step = 0
    while time.time() < deadline and proc.poll() is None:
        if ckpt.exists():
            step = torch.load(ckpt, weights_only=True)["step"]
            logged = [rec["step"] for rec in read_jsonl(run / "history.jsonl") if "train/loss" in rec]
            if step >= 30 and logged and logged[-1] > step:  # steps after the checkpoint are on disk
                break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    step = torch.load(ckpt, weights_only=True)["step"]
    assert 30 <= step < 600, f"the job must be killed half way (checkpoint step {step})"
    assert not (run / "train.json").exists(), "a killed job leaves no output that looks complete"
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{results / 'mlflow.db'}")

    def mirror():
        exp = client.get_experiment_by_name("dagzoo-text")
        [run_a] = [r for r in client.search_runs([exp.experiment_id]) if r.info.run_name == "a/0"]
        return run_a

    def mirrored_loss_steps():
        return [m.step for m in client.get_metric_history(mirror().info.run_id, "train/loss")]

    dagzoo("mlflow-sync", "--results", results)  # mirror what the killed job left, past its checkpoint
    before = mirrored_loss_steps()
    assert max(before) > step, "points after the checkpoint are mirrored (a resume logs those steps again)"

    r = dagzoo(*train_args(data, run, results))
    resumed = int(r.stderr.split("from step ")[1].split()[0])
    assert resumed >= step
    losses = [rec["step"] for rec in read_jsonl(run / "history.jsonl") if "train/loss" in rec]
    assert losses == list(range(5, 601, 5)), "the step counter continues; no step is logged twice"
    summary = read_json(run / "train.json")["summary"]
    assert summary["resumed_from"] == resumed and summary["steps"] == 600
    # a resumed job shorter than a minute leaves MLflow to the run's next sync (its evaluation;
    # here mlflow-sync), which closes the run; still one point per step
    dagzoo("mlflow-sync", "--results", results)
    assert mirror().info.status == "FINISHED"
    assert sorted(mirrored_loss_steps()) == list(range(5, 601, 5)), "no MLflow point is logged twice"

    # the resumed run equals a run that was never interrupted (same seed, same config)
    spec_b = read_json(runs["b"] / "spec.json")
    spec_b.update(experiment="a", config_hash=read_json(run / "spec.json")["config_hash"])
    (runs["b"] / "spec.json").write_text(json.dumps(spec_b))
    dagzoo(*train_args(data, runs["b"], results))
    a = torch.load(run / "model.pt", weights_only=True)["state_dict"]
    b = torch.load(runs["b"] / "model.pt", weights_only=True)["state_dict"]
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6)


@pytest.mark.probe
def test_corrupt_checkpoint_is_a_clear_error(tmp_path):
    data, runs, results = prepare_text_runs(tmp_path, {"a": {**TINY, "steps": 20}})
    ckpt = runs["a"] / "checkpoints" / "last.pt"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"this is not a checkpoint")
    r = dagzoo(*train_args(data, runs["a"], results), check=False)
    assert r.returncode == 1
    assert "checkpoint" in r.stderr and "corrupt or unreadable" in r.stderr and "Traceback" not in r.stderr
    assert ckpt.read_bytes() == b"this is not a checkpoint", "nothing is overwritten"
    assert not (runs["a"] / "train.json").exists()


def _toy_trainer(tmp_path, loss_at, steps=20, **kw):
    model = torch.nn.Linear(4, 1)
    params = TrainParams(steps=steps, lr=0.01, warmup_steps=0, checkpoint_every=5, eval_every=100, log_every=1, **kw)
    x = torch.randn(32, 4)

    def loss_fn(m, step):
        return loss_at(step) * m(x).pow(2).mean()

    return Trainer(
        model, params, tmp_path, seed=0, config_hash="h", loss_fn=loss_fn, units_per_step=32, device=torch.device("cpu")
    )


@pytest.mark.probe
def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    trainer = _toy_trainer(tmp_path, lambda s: float("nan") if s == 12 else 1.0)
    with pytest.raises(TrainingError, match="diverged at step 12: loss is nan") as e:
        trainer.fit()
    assert "last good checkpoint" in str(e.value)
    assert torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=True)["step"] == 10


@pytest.mark.probe
def test_checkpoint_of_another_config_is_set_aside(tmp_path):
    _toy_trainer(tmp_path, lambda s: 1.0, steps=10).fit()
    t = _toy_trainer(tmp_path, lambda s: 1.0, steps=10)
    t.config_hash = "other"
    t.fit()
    assert t.resumed_from is None
    assert (tmp_path / "checkpoints" / "stale-h.pt").exists()


@pytest.mark.probe
def test_checkpoint_of_other_prepared_data_is_set_aside(tmp_path):
    """Same config, data prepared anew from an edited corpus: the checkpoint is not resumed (a
    checkpoint without a digest, written before they were recorded, still is)."""
    first = _toy_trainer(tmp_path, lambda s: 1.0, steps=10)
    first.data_digest = "aaa"
    first.fit()
    t = _toy_trainer(tmp_path, lambda s: 1.0, steps=20)
    t.data_digest = "aaa"
    t.fit()
    assert t.resumed_from == 10
    t = _toy_trainer(tmp_path, lambda s: 1.0, steps=30)
    t.data_digest = "bbb"
    t.fit()
    assert t.resumed_from is None and (tmp_path / "checkpoints" / "stale-h.pt").exists()
    t = _toy_trainer(tmp_path, lambda s: 1.0, steps=40)  # no digest known: the checkpoint is trusted
    t.fit()
    assert t.resumed_from == 30


def test_a_training_records_its_data_digest_and_its_mlflow_run_is_keyed_by_it(tmp_path):
    from dagzoo.data.integrity import data_digest
    from dagzoo.tracking import run_key

    data, runs, results = prepare_text_runs(tmp_path, {"kn2": {"model": "ngram", "order": 2}})
    dagzoo(*train_args(data, runs["kn2"], results))
    spec = read_json(runs["kn2"] / "spec.json")
    assert spec["data_digest"] == data_digest(data) and data_digest(data)
    assert run_key(spec).endswith(f"/{spec['config_hash']}/{spec['data_digest'][:16]}")


def test_lr_schedule():
    p = TrainParams(steps=110, lr=1.0, warmup_steps=10, min_lr_ratio=0.1)
    assert lr_at(0, p) == pytest.approx(0.1)
    assert lr_at(9, p) == pytest.approx(1.0)
    assert lr_at(10, p) == pytest.approx(1.0)
    assert lr_at(60, p) == pytest.approx(0.55)
    assert lr_at(110, p) == pytest.approx(0.1)


def test_transformer_learns_and_scores_windows(tmp_path):
    """A tiny transformer must get far below the unigram entropy of the corpus; its log-probs
    respect the window protocol (scoring a stream = scoring each window alone)."""
    data, runs, results = prepare_text_runs(tmp_path, {"t": {**TINY, "steps": 150, "eval_every": 150}})
    dagzoo(*train_args(data, runs["t"], results))
    from dagzoo.text.data import TokenData
    from dagzoo.text.models.transformer import TransformerLM

    d = TokenData(data)
    spec = read_json(runs["t"] / "spec.json")
    m = TransformerLM.load(TransformerLM.Params(**spec["params"]), d, runs["t"], torch.device("cpu"))
    test = d.tokens("test")
    lp = m.log_probs(test, 32)
    counts = np.bincount(d.tokens("train"), minlength=d.vocab_size) + 1e-9
    unigram_bits = -(counts / counts.sum() * np.log2(counts / counts.sum())).sum()
    bits = -lp.mean() / math.log(2)
    assert bits < 0.75 * unigram_bits, (bits, unigram_bits)
    whole = m.log_probs(test[:70], 32)
    parts = np.concatenate([m.log_probs(test[:70][i : i + 32], 32) for i in (0, 32, 64)])
    np.testing.assert_allclose(whole, parts, rtol=1e-5, atol=1e-5)


@pytest.mark.probe
def test_sigterm_saves_a_checkpoint_and_stops(tmp_path):
    """scancel / pre-emption sends SIGTERM: the job checkpoints its current step and exits non-zero."""
    data, runs, results = prepare_text_runs(tmp_path, {"a": {**TINY, "steps": 2000, "checkpoint_every": 1000}})
    run = runs["a"]
    proc = subprocess.Popen(
        [str(BIN / "dagzoo"), *map(str, train_args(data, run, results))],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 120
    while time.time() < deadline and not any(
        "train/loss" in r and r["step"] >= 20 for r in read_jsonl(run / "history.jsonl")
    ):
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert "stopped by SIGTERM" in err
    step = torch.load(run / "checkpoints" / "last.pt", weights_only=True)["step"]
    assert 20 <= step < 1000, "the checkpoint is the step at which the signal came, not the periodic one"
    assert not (run / "train.json").exists()


def test_scancel_of_the_whole_job_still_writes_the_sigterm_checkpoint(tmp_path):
    """SLURM signals every process of a job: the job shell dies at once and the training, now an
    orphan, must still write the checkpoint of the step at which the signal came (and no output)."""
    import shlex

    data, runs, results = prepare_text_runs(tmp_path, {"a": {**TINY, "steps": 2000, "checkpoint_every": 1000}})
    run, log = runs["a"], tmp_path / "job.log"
    command = " ".join(shlex.quote(str(x)) for x in [BIN / "dagzoo", *train_args(data, run, results)])
    shell = subprocess.Popen(
        ["bash", "-c", f"set -euo pipefail; {command} > {shlex.quote(str(log))} 2>&1"],
        env={**os.environ, "DAGZOO_INVOCATION_ID": "test"},
        start_new_session=True,
    )
    deadline = time.time() + 120
    while time.time() < deadline and not any(
        "train/loss" in r and r["step"] >= 20 for r in read_jsonl(run / "history.jsonl")
    ):
        time.sleep(0.05)
    os.killpg(shell.pid, signal.SIGTERM)  # as scancel does: the shell and the training together
    shell.wait()
    while time.time() < deadline and "stopped by SIGTERM" not in log.read_text() and "is gone" not in log.read_text():
        time.sleep(0.1)
    time.sleep(0.5)  # the log's last line, then the process's exit
    assert "stopped by SIGTERM" in log.read_text(), log.read_text()[-2000:]
    step = torch.load(run / "checkpoints" / "last.pt", weights_only=True)["step"]
    assert 20 <= step < 1000, "the checkpoint is the step at which the signal came, not the periodic one"
    assert not (run / "train.json").exists()


@pytest.mark.probe
def test_a_second_training_of_a_running_run_stops_and_writes_nothing_there(tmp_path):
    """A Snakemake restarted while its cluster jobs still run resubmits them: the second training
    of a run directory must not race the first on its history and checkpoints."""
    data, runs, results = prepare_text_runs(tmp_path, {"a": {**TINY, "steps": 2000, "checkpoint_every": 1000}})
    run = runs["a"]
    leftover = run / "checkpoints" / ".last.pt.k1ll3d.tmp"  # a checkpoint write killed mid-way
    leftover.parent.mkdir(parents=True)
    leftover.write_bytes(b"half a checkpoint")
    first = subprocess.Popen(
        [str(BIN / "dagzoo"), *map(str, train_args(data, run, results))],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 120
    while time.time() < deadline and not (run / "history.jsonl").exists():
        time.sleep(0.05)
    assert not leftover.exists(), "the training that holds the run's lock removes leftovers"
    history = (run / "history.jsonl").read_text()
    second = dagzoo(*train_args(data, run, results), check=False)
    lines = second.stderr.strip().splitlines()
    assert second.returncode == 1 and len(lines) == 1, second.stderr
    assert f"{run} is being trained by pid {first.pid}" in lines[0] and "writes nothing there" in lines[0]
    assert (run / "history.jsonl").read_text().startswith(history)
    first.send_signal(signal.SIGTERM)
    first.communicate(timeout=60)
    import fcntl

    with open(run / ".train.lock") as lock:  # released with its process
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)


@pytest.mark.probe
def test_a_job_whose_shell_was_killed_writes_no_output_and_the_rerun_resumes(tmp_path):
    """Snakemake records a job as failed when its shell dies; the Python child lives on (an
    orphan). It must not write train.json later (the next run would skip a job it never saw
    finish): it stops at its next write of any file, and the rerun resumes from its checkpoint."""
    import shlex

    data, runs, results = prepare_text_runs(tmp_path, {"a": {**TINY, "steps": 300, "checkpoint_every": 50}})
    run, log = runs["a"], tmp_path / "job.log"
    command = " ".join(shlex.quote(str(x)) for x in [BIN / "dagzoo", *train_args(data, run, results)])
    shell = subprocess.Popen(
        ["bash", "-c", f"set -euo pipefail; {command} > {shlex.quote(str(log))} 2>&1"],
        env={**os.environ, "DAGZOO_INVOCATION_ID": "test"},
    )  # a DAG's job
    deadline = time.time() + 120
    while time.time() < deadline and not (run / "checkpoints" / "last.pt").exists():
        time.sleep(0.05)
    shell.kill()  # the shell only, as when a job's wrapper is killed
    shell.wait()
    while time.time() < deadline and "is gone" not in log.read_text():
        time.sleep(0.1)
    assert "is not written, so the DAG reruns this stage" in log.read_text() and "Traceback" not in log.read_text()
    assert not (run / "train.json").exists()
    r = dagzoo(*train_args(data, run, results))
    assert "from step" in r.stderr and read_json(run / "train.json")["summary"]["steps"] == 300


@pytest.mark.probe
def test_every_file_writer_refuses_once_the_job_shell_is_gone(tmp_path, monkeypatch):
    """The guard sits in the file writers every stage uses (outputs of sampling, FID, encoding,
    figures, checkpoints, history lines), so no stage's output can appear after its job failed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from dagzoo import io
    from dagzoo.io import OrphanedJobError, append_jsonl, atomic_save_npy, atomic_write_json
    from dagzoo.plotting import save_figure

    writers = {
        "fid.json": lambda p: atomic_write_json(p, {"fid_80": 1.0}),
        "images.npy": lambda p: atomic_save_npy(p, np.zeros((2, 1, 4, 4), np.uint8)),
        "history.jsonl": lambda p: append_jsonl(p, {"step": 1}),
        "curve.png": lambda p: save_figure(plt.figure(), p),
    }
    monkeypatch.setattr(io, "_JOB_SHELL_PID", os.getppid())  # the job shell is alive: writes go through
    for name, write in writers.items():
        write(tmp_path / "alive" / name)
    assert sorted(p.name for p in (tmp_path / "alive").iterdir()) == sorted(writers)
    monkeypatch.setattr(io, "_JOB_SHELL_PID", -1)  # this process's parent is no longer the job shell
    (tmp_path / "orphan").mkdir()
    for name, write in writers.items():
        with pytest.raises(OrphanedJobError, match=f"{name} is not written"):
            write(tmp_path / "orphan" / name)
    assert list((tmp_path / "orphan").iterdir()) == [], "not even a temporary file stays"
