"""Data-parallel training: 2 processes (gloo, CPU) equal 1 process on the same global batch."""

import json
import os
import subprocess

import pytest
import torch

from dagzoo.io import read_json, read_jsonl

from conftest import BIN, dagzoo, prepare_text_runs

BACKBONE = {
    "n_layer": 2,
    "n_head": 2,
    "d_model": 32,
    "batch_size": 8,
    "lr": 3e-3,
    "warmup_steps": 5,
    "steps": 24,
    "log_every": 4,
    "eval_every": 12,
    "checkpoint_every": 12,
}


@pytest.mark.parametrize("model", ["transformer", "mdlm"])
def test_two_process_ddp_equals_single_process(tmp_path, model):
    exp = {
        "model": model,
        **BACKBONE,
        **({"nelbo_samples": 1, "val_nelbo_samples": 1} if model != "transformer" else {}),
    }
    data, runs, results = prepare_text_runs(tmp_path, {"single": exp, "ddp": exp})
    spec = read_json(runs["single"] / "spec.json")
    (runs["ddp"] / "spec.json").write_text(json.dumps({**spec}))  # same config hash, same seed
    args = ["--data", data, "--results", results, "--threads", "1"]
    dagzoo("train", "--spec", runs["single"] / "spec.json", "--run-dir", runs["single"], *args)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run(
        [
            str(BIN / "torchrun"),
            "--standalone",
            "--nproc_per_node",
            "2",
            str(BIN / "dagzoo"),
            "train",
            "--spec",
            str(runs["ddp"] / "spec.json"),
            "--run-dir",
            str(runs["ddp"]),
            *map(str, args),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    a = torch.load(runs["single"] / "model.pt", weights_only=True)["state_dict"]
    b = torch.load(runs["ddp"] / "model.pt", weights_only=True)["state_dict"]
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=2e-4, atol=2e-5, msg=k)
    la = [x["train/loss"] for x in read_jsonl(runs["single"] / "history.jsonl") if "train/loss" in x]
    lb = [x["train/loss"] for x in read_jsonl(runs["ddp"] / "history.jsonl") if "train/loss" in x]
    assert len(la) == len(lb) == 6
    torch.testing.assert_close(torch.tensor(la), torch.tensor(lb), rtol=1e-4, atol=1e-5)
    # rank 0 alone wrote: one history line per logged step, one provenance file
    assert len(list(runs["ddp"].glob("provenance-*.json"))) == 1


def test_processes_start_ranks_only_for_a_model_every_rank_trains(tmp_path):
    """processes: 2 launches torchrun for the transformer; an n-gram, fitted by one process, is
    started as it is (torchrun would import torch and start a second process only to exit)."""
    import yaml

    from conftest import small_corpus, snakemake

    cfg = {
        "processes": 2,
        "text": {
            "corpus": f"file:{small_corpus(tmp_path / 'c.txt')}",
            "experiments": {"kn2": {"model": "ngram", "order": 2}, "tf": {"model": "transformer", **BACKBONE}},
        },
    }
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    r = snakemake(tmp_path, path, "-n", "-p")
    assert r.returncode == 0, r.stderr[-2000:]
    commands = [
        line.strip().removeprefix("Shell command: ")
        for line in (r.stdout + r.stderr).splitlines()
        if " train --spec " in line
    ]
    launcher = {next(w for w in ("kn2", "tf") if f"/text/{w}/0" in c): c.split()[0] for c in commands}
    assert launcher == {"kn2": "dagzoo", "tf": "torchrun"}, commands


def test_dagzoo_device_keeps_ranks_off_the_gpus(monkeypatch):
    # ranks chose NCCL and cuda:LOCAL_RANK whenever torch saw a GPU, whatever DAGZOO_DEVICE said
    from dagzoo import distributed

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setenv("DAGZOO_DEVICE", "cpu")
    assert not distributed._on_cuda()
    monkeypatch.setenv("DAGZOO_DEVICE", "cuda")
    assert distributed._on_cuda()
    monkeypatch.delenv("DAGZOO_DEVICE")
    assert distributed._on_cuda()
