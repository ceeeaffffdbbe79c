"""Data-parallel image training: for every image model, 2 processes (gloo, CPU) equal 1 process on
the same global batch. The networks run through DDP's forward (gradients all-reduced), and every
rank uses its own shard of the step's noise levels and noise (else rank 1 would reuse rank 0's)."""

import os
import subprocess

import pytest
import torch

from dagzoo.io import atomic_write_json, read_jsonl

from conftest import BIN

pytestmark = pytest.mark.probe

UNET = {
    "channels": 8,
    "channel_mult": [1, 2],
    "num_res_blocks": 1,
    "attn_resolutions": [4],
    # dropout masks are drawn inside the network, per rank: off, to compare bit for bit
    "dropout": 0.0,
}
VAE = {"channels": 4, "hidden": 16}
MODELS = {
    "ddpm": {"model": "ddpm", "T": 20, **UNET},
    "edm": {"model": "edm", **UNET},
    "flow": {"model": "flow", **UNET},
    "vae": {"model": "vae", "latent_dim": 4, **VAE},
    "gumbel_vae": {"model": "gumbel_vae", "n_latents": 4, "n_classes": 3, "hard": True, **VAE},
}
TRAIN = {
    "steps": 4,
    "batch_size": 8,
    "lr": 1e-3,
    "warmup_steps": 0,
    "log_every": 2,
    "checkpoint_every": 2,
    "ema_halflife_kimg": 0.01,
}


@pytest.fixture(scope="module")
def image_data(tmp_path_factory):
    from dagzoo.data.images import prepare_images

    data = tmp_path_factory.mktemp("images") / "digits-8"
    prepare_images("digits", data, resize=8)
    return data


def _spec(model: str) -> dict:
    from dagzoo.config import experiment_specs, validate_config

    cfg = validate_config(
        {
            "seeds": [0],
            "image": {"data": {"source": "digits", "resize": 8}, "experiments": {model: {**MODELS[model], **TRAIN}}},
        }
    )
    (spec,) = experiment_specs(cfg)
    return spec


@pytest.mark.parametrize("model", list(MODELS))
def test_two_process_image_ddp_equals_single_process(tmp_path, image_data, model):
    from dagzoo.stages import train

    spec, results = _spec(model), tmp_path / "results"
    runs = {name: tmp_path / name for name in ("single", "ddp")}
    for run in runs.values():
        atomic_write_json(run / "spec.json", spec)  # same config hash, same seed
    # the single process in this one (no interpreter start-up); the two ranks under torchrun
    train(runs["single"] / "spec.json", image_data, runs["single"], results)
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
            "--data",
            str(image_data),
            "--run-dir",
            str(runs["ddp"]),
            "--results",
            str(results),
            "--threads",
            "1",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    a = torch.load(runs["single"] / "model.pt", weights_only=True)["state_dict"]
    b = torch.load(runs["ddp"] / "model.pt", weights_only=True)["state_dict"]
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=2e-4, atol=2e-5, msg=k)
    la = [x["train/loss"] for x in read_jsonl(runs["single"] / "history.jsonl") if "train/loss" in x]
    lb = [x["train/loss"] for x in read_jsonl(runs["ddp"] / "history.jsonl") if "train/loss" in x]
    assert len(la) == len(lb) == 2
    torch.testing.assert_close(torch.tensor(la), torch.tensor(lb), rtol=1e-4, atol=1e-5)
