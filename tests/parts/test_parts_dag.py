"""The part-segmentation family through the DAG: generated part-labelled shapes -> prepare ->
train (PointNet-seg and the height prior) -> evaluate -> report and claims; the network learns
past the height prior."""

import json

import pandas as pd
import yaml

from conftest import snakemake


def test_the_dag_segments_generated_parts_past_the_height_prior(tmp_path):
    cfg = {
        "results": str(tmp_path / "results"),
        "seeds": [0],
        "threads": 1,
        "parts": {
            "data": {
                "source": "shapes",
                "points": 64,
                "shapes": {
                    "train_per_category": 20,
                    "val_per_category": 1,
                    "test_per_category": 10,
                    "points_per_shape": 256,
                },
            },
            "experiments": {
                "prior": {"model": "height_prior", "bins": 8},
                "pointnet_seg": {
                    "model": "pointnet_seg",
                    "epochs": 60,
                    "batch_size": 10,
                    "lr": 0.003,
                    "mlp1": [32, 64],
                    "mlp2": [64, 128],
                    "seg_head": [64],
                    "tnets": False,
                    "eval_every": 30,
                    "checkpoint_every": 60,
                    "log_every": 20,
                },
            },
        },
        "claims": [
            {
                "name": "a network adds to the height prior",
                "lhs": "parts/pointnet_seg/test/instance_miou",
                "op": ">",
                "rhs": "parts/prior/test/instance_miou",
            }
        ],
    }
    path = tmp_path / "parts.yaml"
    path.write_text(yaml.safe_dump(cfg))
    r = snakemake(tmp_path, path)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    results = tmp_path / "results"
    m = json.loads((results / "parts" / "pointnet_seg" / "0" / "metrics.json").read_text())["metrics"]
    prior = json.loads((results / "parts" / "prior" / "0" / "metrics.json").read_text())["metrics"]
    assert m["test/n"] == 50 and m["train/epochs"] == 60 and prior["train/epochs"] == 1
    assert {f"test/miou/{c}" for c in ("Airplane", "Chair", "Lamp", "Mug", "Table")} <= set(m)
    claims = json.loads((results / "claims.json").read_text())
    assert [c["verdict"] for c in claims["claims"]] == ["held"], claims
    report = (results / "report" / "report.md").read_text()
    assert "## Part segmentation" in report and "| pointnet_seg | pointnet_seg | 1 |" in report
    assert (results / "report" / "parts_segmentation.png").read_bytes()[:4] == b"\x89PNG"
    summary = pd.read_parquet(results / "summary.parquet")
    assert set(summary[summary.family == "parts"].experiment) == {"prior", "pointnet_seg"}
