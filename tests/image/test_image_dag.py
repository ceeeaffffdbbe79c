"""The image DAG end to end on the embedded digits: every stage, the report, and that changing a
sampler reruns only that sampler's jobs."""

import json

import numpy as np
import pandas as pd
import yaml
from PIL import Image

from conftest import planned_jobs, snakemake


def write_cfg(tmp_path, ddim_steps=3, elbo_samples=1):
    cfg = {
        "results": str(tmp_path / "results"),
        "seeds": [0],
        "threads": 1,
        "image": {
            "data": {"source": "digits", "resize": 8},
            "eval": {
                "samples": 6,
                "baseline_samples": 4,
                "real_samples": 6,
                "reference_images": 12,
                "kid_subsets": 5,
                "kid_subset_size": 6,
                "grid": 6,
            },
            "experiments": {
                "ddpm": {
                    "model": "ddpm",
                    "T": 20,
                    "channels": 8,
                    "channel_mult": [1, 2],
                    "num_res_blocks": 1,
                    "attn_resolutions": [4],
                    "steps": 6,
                    "batch_size": 8,
                    "log_every": 2,
                    "ema_halflife_kimg": 0.05,
                    "samplers": {
                        "anc": {"kind": "ddpm"},
                        "ddim": {"kind": "ddim", "steps": ddim_steps},
                        "heun": {"kind": "edm", "steps": 2},
                    },
                },
                "gvae": {
                    "model": "gumbel_vae",
                    "steps": 6,
                    "batch_size": 8,
                    "channels": 4,
                    "hidden": 16,
                    "n_latents": 4,
                    "n_classes": 3,
                    "log_every": 2,
                    "elbo_samples": elbo_samples,
                },
            },
        },
        "claims": [
            {
                "name": "Heun-3 matches ancestral-20",
                "source": "Karras et al. 2022",
                "lhs": "image/ddpm/samplers/heun/kid_6",
                "op": "<=",
                "rhs": "image/ddpm/samplers/anc/kid_6",
            },
            {
                "name": "a typo'd metric is reported missing",
                "lhs": "image/ddpm/samplers/heun/kid_7",
                "op": "<",
                "rhs": 1.0,
            },
        ],
    }
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_image_dag_runs_reports_and_reruns_only_the_changed_sampler(tmp_path):
    cfg = write_cfg(tmp_path)
    r = snakemake(tmp_path, cfg)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    results = tmp_path / "results"
    df = pd.read_parquet(results / "summary.parquet")
    assert sorted(df.experiment) == ["ddpm", "gvae"]
    ddpm = json.loads((results / "image" / "ddpm" / "0" / "metrics.json").read_text())
    nfe = {s["sampler"]: s["nfe"] for s in ddpm["samplers"]}
    assert nfe == {"anc": 20, "ddim": 3, "heun": 3, "untrained": 20}
    m = ddpm["metrics"]
    assert m["fid_6"] > 0 and "kid_6_std" in m and m["untrained/kid_4"] is not None and m["train/flop_per_s"] > 0
    gvae = json.loads((results / "image" / "gvae" / "0" / "metrics.json").read_text())["metrics"]
    assert 0 < gvae["test/bits_per_dim"] < 8 and gvae["test/bits_per_dim_se"] > 0
    images = np.load(results / "image" / "ddpm" / "0" / "samples" / "anc" / "images.npy")
    assert images.shape == (6, 1, 8, 8) and images.dtype == np.uint8
    assert Image.open(results / "image" / "ddpm" / "0" / "samples" / "heun" / "grid.png").size[0] > 8
    real = json.loads((results / "image" / "real_vs_real.json").read_text())
    assert real["n"] == 6 and "kid_6" in real
    report = (results / "report" / "report.md").read_text()
    assert "## Images" in report and "Real vs real" in report
    # the declared claims: evaluated from the summary, a table at the top of the report
    claims = json.loads((results / "claims.json").read_text())["claims"]
    assert [c["verdict"] for c in claims][1] == "missing" and claims[0]["verdict"] in ("held", "failed")
    assert claims[0]["lhs_value"] == ddpm["metrics"]["samplers/heun/kid_6"]
    assert report.index("## Claims") < report.index("## Images") and "Heun-3 matches ancestral-20" in report
    for png in ("image_fid_nfe.png", "image_samples.png"):
        assert (results / "report" / png).stat().st_size > 5_000
    assert "## Text" not in report

    r = snakemake(tmp_path, cfg, "-n")
    assert r.returncode == 0 and "Nothing to be done" in r.stdout + r.stderr

    # a changed sampler reruns that sampler's samples and FID, the run's evaluation and the report only
    jobs = planned_jobs(snakemake(tmp_path, write_cfg(tmp_path, ddim_steps=4), "-n").stdout)
    assert sorted(jobs) == sorted(
        [
            ("image_sample", "exp=ddpm, seed=0, sampler=ddim"),
            ("image_fid", "exp=ddpm, seed=0, name=ddim"),
            ("image_evaluate", "exp=ddpm, seed=0"),
            ("report", ""),
            ("all", ""),
        ]
    ), jobs

    # a hyper-parameter only evaluation reads (the VAE bound's latent samples) reruns that
    # run's evaluation and the report only
    jobs = planned_jobs(snakemake(tmp_path, write_cfg(tmp_path, elbo_samples=2), "-n").stdout)
    assert sorted(jobs) == [("all", ""), ("image_evaluate", "exp=gvae, seed=0"), ("report", "")], jobs
