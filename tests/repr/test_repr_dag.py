"""The representations family end to end through the DAG on digits (tiny encoders, few steps),
the reruns an evaluation setting causes, and the references trained in-process."""

import json
import os

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from conftest import dagzoo, planned_jobs, snakemake

TINY = {"widths": [8, 16], "strides": [1, 2], "batch_size": 64, "eval_every": 15, "checkpoint_every": 30}


def _config(tmp_path, **eval_overrides):
    cfg = {
        "results": str(tmp_path / "results"),
        "seeds": [0],
        "threads": 1,
        "repr": {
            "data": {"source": "digits"},
            "eval": {"probe_grid": [0.1, 1.0], "smooth_epochs": 50, "mi_batch": 64, "erf_images": 8, **eval_overrides},
            "experiments": {
                "simclr": {
                    "model": "simclr",
                    "steps": 30,
                    "crop_scale": [0.6, 1.0],
                    "translate": 0.1,
                    "proj_hidden": 32,
                    "proj_dim": 16,
                    **TINY,
                }
            },
        },
        "claims": [
            {
                "name": "better than chance",
                "source": "test",
                "lhs": "repr/simclr/test/linear_acc",
                "op": ">=",
                "rhs": 0.5,
            }
        ],
    }
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_the_repr_dag_runs_end_to_end_and_an_evaluation_setting_reruns_only_its_stage(tmp_path):
    cfg = _config(tmp_path)
    r = snakemake(tmp_path, cfg)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    results = tmp_path / "results"
    run = pd.read_parquet(results / "summary.parquet").set_index("experiment").loc["simclr"]
    assert run["test/linear_acc"] > 0.5 and run["test/knn_acc"] > 0.5  # 10 classes: chance 0.1
    assert run["test/linear_acc_se"] > 0 and run["model/feature_dim"] == 16
    assert 0 < run["test/mi_bound"] <= run["test/mi_log_n"]  # under its cap
    assert 0 < run["test/linear_acc_projector"] and run["train/images"] == 30 * 64
    assert 0 < run["test/macro_f1_softf1"] and 0 < run["test/linear_acc_nobias"] and 0 < run["test/linear_acc_raw"]
    assert 0 < run["test/soft_acc_ce_imbalanced"] <= 1 and 0 < run["test/soft_acc_softf1_imbalanced"] <= 1
    assert 0 < run["test/macro_f1_reinforce"] and 0 < run["test/acc_reinforce_imbalanced"] <= 1
    manifest = json.loads(next((results / "data" / "repr").glob("*/manifest.json")).read_text())
    assert manifest["validation"]["rule"].startswith("stratified") and manifest["validation"]["n"] > 100
    history = [json.loads(x) for x in (results / "repr" / "simclr" / "0" / "history.jsonl").read_text().splitlines()]
    assert len([h for h in history if "val/online_acc" in h]) >= 3
    report = (results / "report" / "report.md").read_text()
    assert "## Representations" in report and "repr_erf_simclr.png" in report
    assert (results / "report" / "repr_online_probe.png").exists()
    assert json.loads((results / "claims.json").read_text())["claims"][0]["verdict"] == "held"
    # a kNN setting reruns kNN and what collects it; a soft-F1 setting its own stage
    for key, value, stage in (("knn_k", 5, "repr_knn"), ("imbalance_ratio", 4.0, "repr_smoothed")):
        r = snakemake(tmp_path, _config(tmp_path, **{key: value}), "-n")
        assert r.returncode == 0, r.stderr[-2000:]
        assert sorted({rule for rule, _ in planned_jobs(r.stdout)}) == sorted({stage, "repr_evaluate", "report", "all"})


def _data(tmp_path):
    from dagzoo.repr.data import ReprData, prepare_repr_data

    prepare_repr_data("digits", tmp_path / "d", None, None, 0.1, 0)
    return ReprData(tmp_path / "d")


def test_supervised_learns_and_random_is_its_initialisation(tmp_path):
    from dagzoo.lifecycle import RunContext
    from dagzoo.registry import get_model, validate_params

    data = _data(tmp_path)
    assert len(set(data.labels("val"))) == 10
    val_idx = np.load(tmp_path / "d" / "val_index.npy")
    assert len(data.images("train")) + len(val_idx) == data.manifest["splits"]["train"]["n"]
    spec = {"seed": 0, "config_hash": "h"}
    cls = get_model("repr", "supervised")
    model = cls(
        validate_params(cls.Params, {**TINY, "steps": 80, "lr": 0.01, "crop_scale": None}, "x"),
        data,
        torch.device("cpu"),
    )
    ctx = RunContext(tmp_path / "sup", spec, torch.device("cpu"), "images", lambda: None)
    ctx.run_dir.mkdir()
    model.fit(ctx)
    online = [
        json.loads(x)["val/online_acc"]
        for x in (ctx.run_dir / "history.jsonl").read_text().splitlines()
        if "val/online_acc" in x
    ]
    assert online[0] < 0.3 and online[-1] > online[0] + 0.3, online  # the monitor learns too
    with torch.no_grad():  # the classifier trained with the encoder
        logits = model.net.head(model.encode(data.images("val")))
    assert (logits.argmax(1).numpy() == data.labels("val")).mean() > 0.6  # chance: 0.1
    rnd = get_model("repr", "random")
    params = validate_params(rnd.Params, TINY, "x")
    ctx = RunContext(tmp_path / "rnd", spec, torch.device("cpu"), "images", lambda: None)
    ctx.run_dir.mkdir()
    rnd(params, data, torch.device("cpu")).fit(ctx)
    saved = rnd.load(params, data, ctx.run_dir, torch.device("cpu"), seed=0)
    fresh = rnd.load(params, data, None, torch.device("cpu"), seed=0)
    x = data.images("test")[:16]
    assert torch.equal(saved.encode(x), fresh.encode(x))


@pytest.mark.probe
def test_a_split_and_a_source_without_labels_are_refused(tmp_path):
    from PIL import Image

    from dagzoo.errors import DataError
    from dagzoo.repr.data import prepare_repr_data

    for split in ("train", "test"):
        (tmp_path / "f" / split).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(np.full((8, 8), i * 40, np.uint8)).save(tmp_path / "f" / split / f"{i}.png")
    with pytest.raises(DataError, match="unlabelled images in its train split"):
        prepare_repr_data(f"folder:{tmp_path / 'f'}", tmp_path / "out", None, None, 0.2, 0)
    assert not (tmp_path / "out" / "manifest.json").exists(), "nothing that looks finished is left"


def test_cpc_encodes_its_patch_grid_and_bounds_its_mutual_information(tmp_path):
    from dagzoo.io import atomic_write_json
    from dagzoo.repr.stages import encode
    from dagzoo.stages import train

    data_dir = tmp_path / "d"
    _data(tmp_path)
    run = tmp_path / "run"
    spec = {
        "family": "repr",
        "experiment": "cpc",
        "model": "cpc",
        "seed": 0,
        "config_hash": "h",
        "params": {"steps": 4, "patch": 4, "patch_stride": 2, "predict": [2], **TINY},
    }
    run.mkdir()
    atomic_write_json(run / "spec.json", spec)
    train(run / "spec.json", data_dir, run, tmp_path / "results")
    out = encode(run / "spec.json", data_dir, run, None, mi_batch=32, erf_images=4)
    features = np.load(run / "features.npz")
    assert features["test_x"].shape == (len(features["test_y"]), 16 * 3 * 3)  # 3x3 grid of 16-d embeddings
    assert set(out["mi"]) == {"k2"}  # k = 1: 4-px patches every 2 px would overlap the context
    # InfoNCE over ~32 candidates: every patch of 32 // 9 = 3 images, 3 x 3 each
    assert out["mi"]["k2"]["bound"] <= out["mi"]["k2"]["log_m"] == pytest.approx(np.log(3 * 3 * 3))
    table = json.loads((run / "encode.json").read_text())["receptive_field"]
    assert table[-1] == {
        "layer": "patch (pooled)",
        "kernel": 4,
        "stride": 2,
        "dilation": 1,
        "receptive_field": 4,
        "jump": 2,
    }
    assert (run / "erf.png").exists() and (run / "embedding.png").exists()


def test_raw_pixels_are_features_without_training(tmp_path):
    from dagzoo.io import atomic_write_json
    from dagzoo.repr.stages import encode
    from dagzoo.stages import train

    _data(tmp_path)
    run = tmp_path / "run"
    run.mkdir()
    atomic_write_json(
        run / "spec.json",
        {"family": "repr", "experiment": "raw", "model": "raw", "seed": 0, "config_hash": "h", "params": {}},
    )
    metrics = train(run / "spec.json", tmp_path / "d", run, tmp_path / "results")
    assert metrics["train/images"] == 0 and not (run / "model.pt").exists()
    out = encode(run / "spec.json", tmp_path / "d", run, None, mi_batch=32, erf_images=4)
    features = np.load(run / "features.npz")
    assert "mi" not in out and out["feature_dim"] == 64
    assert np.allclose(features["test_x"], np.load(tmp_path / "d" / "test_x.npy").reshape(-1, 64) / 255.0, atol=1e-7)
    assert out["effective_receptive_field"]["trained"]["side_90"] == 1  # a pixel sees itself


@pytest.mark.probe
@pytest.mark.parametrize(
    "device, needle",
    [
        ("gpu", "DAGZOO_DEVICE: 'gpu' is not a device; allowed: cpu, cuda, cuda:<n>, mps"),
        ("cuda:7", "DAGZOO_DEVICE: 'cuda:7', but torch sees"),
    ],
)
def test_a_bad_dagzoo_device_is_one_line_and_touches_no_run_directory(tmp_path, device, needle):
    from dagzoo.io import atomic_write_json

    if device == "cuda:7" and torch.cuda.device_count() > 7:
        pytest.skip("this machine has an eighth GPU")
    _data(tmp_path)
    spec = tmp_path / "spec.json"
    atomic_write_json(
        spec, {"family": "repr", "experiment": "random", "model": "random", "seed": 0, "config_hash": "h", "params": {}}
    )
    run = tmp_path / "run"
    for stage in ("train", "repr-encode"):
        r = dagzoo(
            stage,
            "--spec",
            spec,
            "--data",
            tmp_path / "d",
            "--run-dir",
            run,
            "--results",
            tmp_path / "res",
            check=False,
            env={**os.environ, "DAGZOO_DEVICE": device},
        )
        assert r.returncode == 1 and "Traceback" not in r.stderr and needle in r.stderr, r.stderr[-2000:]
        assert not run.exists()
