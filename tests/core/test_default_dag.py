"""The README's main job end to end: the default config (KJV text, digits images, digits
representations, generated point clouds) and the full Inception FID protocol on real data (slow:
run with `make test-slow`)."""

import json
import subprocess

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import BIN, ROOT

UNIGRAM_BITS = 4.35  # entropy of the KJV train split's character unigram distribution


@pytest.mark.slow
def test_default_dag_reports_every_model_and_says_who_wins(tmp_path):
    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    cfg["results"] = str(tmp_path / "results")
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    r = subprocess.run(
        [
            str(BIN / "snakemake"),
            "-s",
            str(ROOT / "Snakefile"),
            "--directory",
            str(tmp_path),
            "--profile",
            str(ROOT / "workflow" / "profiles" / "local"),
            "--cores",
            "2",
            "--configfile",
            str(tmp_path / "cfg.yaml"),
        ],
        capture_output=True,
        text=True,
        timeout=3600,
    )
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    df = pd.read_parquet(tmp_path / "results" / "summary.parquet")
    assert set(zip(df.family, df.experiment)) == {
        (f, e) for f in ("text", "image", "repr", "points") for e in cfg[f]["experiments"]
    }
    bpc = df[df.family == "text"].set_index("experiment")["test/bpc"]
    assert bpc["kn9"] < bpc["kn7"] < bpc["kn5"] < bpc["kn3"]
    # every neural model learned (uniform over the 64 characters: 6.0 bits; the train split's unigram
    # entropy: 4.35 bits, the best a context-free model can do), at a demonstration budget; the
    # diffusion LMs report bounds with an SE
    assert 1.6 < bpc["kn9"] < 1.85 and bpc["transformer"] < UNIGRAM_BITS
    text = df[df.family == "text"].set_index("experiment")
    diffusion = [e for e, x in cfg["text"]["experiments"].items() if x["model"] not in ("transformer", "ngram")]
    assert {"mdlm", "sedd", "bd3lm4", "bd3lm16"} <= set(diffusion)
    assert (text.loc[diffusion, "likelihood"] == "bound").all() and (text.loc[diffusion, "test/bpc_se"] > 0).all()
    assert (bpc[diffusion] < UNIGRAM_BITS).all()  # measured 3.56-4.04: their bounds use context
    assert text.loc[diffusion + ["transformer"], "samples/gen_ppl"].notna().all()
    report = (tmp_path / "results" / "report" / "report.md").read_text()
    assert f"Best test BPC: **{bpc.idxmin()}**" in report
    assert "≤ (NELBO)" in report and "Neural models from best to worst test BPC" in report
    assert "the samples scored by kn9" in report
    # images: real vs real near 0 and below every model; every model below its untrained network
    n = cfg["image"]["eval"]["samples"]
    images = df[df.family == "image"].set_index("experiment")
    real = json.loads((tmp_path / "results" / "image" / "real_vs_real.json").read_text())
    assert real[f"kid_{cfg['image']['eval']['real_samples']}"] < images[f"kid_{n}"].min()
    base = cfg["image"]["eval"]["baseline_samples"]
    assert (images[f"kid_{n}"] < images[f"untrained/kid_{base}"]).all()
    assert "## Images" in report
    # the config's claims: every one evaluated (none missing), the table first in the report
    claims = json.loads((tmp_path / "results" / "claims.json").read_text())["claims"]
    assert len(claims) == len(cfg["claims"]) and all(
        c["verdict"] in ("held", "failed", "inconclusive") for c in claims
    ), claims
    assert report.index("## Claims") < report.index("## Text")
    # representations: every learned encoder and the references probed; the supervised one learns
    rep = df[df.family == "repr"].set_index("experiment")
    assert rep["test/linear_acc"].between(0.5, 1).all() and rep["test/knn_acc"].between(0.5, 1).all()
    assert rep.loc["supervised", "test/linear_acc"] > rep.loc["random", "test/linear_acc"]
    assert (rep.loc[["simclr", "cpc"], "test/mi_bound"] <= rep.loc[["simclr", "cpc"], "test/mi_log_n"]).all()
    # point clouds: every model far above chance (10 classes)
    pts = df[df.family == "points"].set_index("experiment")
    assert (pts["test/oa"] > 0.4).all() and pts["test/oa_so3"].notna().all()
    assert "## Representations" in report and "## Point clouds" in report
    # MLflow: one child run per (experiment, seed), each lasting as long as its training, under
    # one parent per experiment whose means are the report's
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'results' / 'mlflow.db'}")
    runs = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id], max_results=1000)]
    assert all(r.info.end_time >= r.info.start_time for r in runs)
    children = [r for r in runs if r.data.tags.get("dagzoo.level") == "seed"]
    parents = {r.info.run_id: r for r in runs if r.data.tags.get("dagzoo.level") == "experiment"}
    assert len(children) == len(df) and len(parents) == df.groupby(["family", "experiment"]).ngroups
    assert all(r.data.tags["mlflow.parentRunId"] in parents for r in children)
    by_exp = pd.read_parquet(tmp_path / "results" / "summary_by_experiment.parquet").set_index("experiment")
    for p in parents.values():
        exp = p.data.tags["dagzoo.experiment"]
        for key, value in p.data.metrics.items():
            if key.endswith("_mean"):
                assert value == pytest.approx(by_exp.loc[exp, key], rel=1e-12), (exp, key)
    # the DAG's record of itself, the header of a results page
    dag = json.loads((tmp_path / "results" / "dag.json").read_text())
    assert dag["jobs"] > 100 and dag["wall_s"] > 0 and dag["cores"] == 2


@pytest.mark.slow
def test_full_inception_protocol_on_real_digits(tmp_path):
    """Every train image in the reference, every test image scored: real vs real is ~0, while the
    test images blurred by an 8x down/up-sampling are far from the data."""
    from dagzoo.data.images import prepare_images, resize_uint8
    from dagzoo.eval.fid import InceptionFeatures, fid_kid
    from dagzoo.image.stages import load_reference, reference

    prepare_images("digits", tmp_path / "d", resize=16)
    reference(tmp_path / "d", "train", tmp_path / "train.npz")
    reference(tmp_path / "d", "test", tmp_path / "test.npz")
    ref, test = load_reference(tmp_path / "train.npz"), load_reference(tmp_path / "test.npz")
    real = fid_kid(test["features"], ref)
    n = test["n"]
    blurred = resize_uint8(resize_uint8(np.load(tmp_path / "d" / "test_x.npy"), 4), 16)
    fake = fid_kid(InceptionFeatures()(blurred), ref)
    assert abs(real[f"kid_{n}"]) < 3 * real[f"kid_{n}_std"] + 0.01
    assert fake[f"kid_{n}"] > 10 * max(real[f"kid_{n}"], 0.005) and fake[f"fid_{n}"] > 3 * real[f"fid_{n}"]
