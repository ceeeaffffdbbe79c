"""The point-cloud family through the DAG: a folder of real OFF meshes (ModelNet's layout, with
its fused-header quirk and polygon faces) -> prepare -> train -> evaluate -> report, learning
above chance; and the jobs a `shapes` config plans."""

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from dagzoo.points import data as D

from conftest import planned_jobs, snakemake

CLASSES = ("sphere", "cube", "torus", "cone")


def _tree(root, train=12, test=6):
    for ci, name in enumerate(CLASSES):
        for split, n in (("train", train), ("test", test)):
            (root / name / split).mkdir(parents=True)
            for i in range(n):
                v, f = D.make_shape(name, np.random.default_rng([7, ci, split == "test", i]))
                path = root / name / split / f"{name}_{i:04d}.off"
                D.write_off(path, v, f)
                if i % 2:  # ModelNet's quirk: "OFF<nv> <nf> 0" on one line, and a comment
                    text = path.read_text().replace("OFF\n", "OFF", 1).replace("\n", "\n# exported\n", 2)
                    path.write_text(text)
    return root


def _config(tmp_path, source):
    cfg = {
        "results": str(tmp_path / "results"),
        "seeds": [0],
        "threads": 1,
        "points": {
            "data": {"source": source, "points": 48, "val_fraction": 0.15},
            "experiments": {
                "pointnet": {
                    "model": "pointnet",
                    "steps": 80,
                    "batch_size": 16,
                    "lr": 0.003,
                    "mlp1": [16, 16],
                    "mlp2": [32, 64],
                    "head": [32],
                    "tnet_mlp": [16, 32],
                    "tnet_fc": [16],
                    "eval_every": 40,
                    "checkpoint_every": 40,
                    "log_every": 20,
                }
            },
        },
        "claims": [{"name": "learns above chance", "lhs": "points/pointnet/test/oa", "op": ">", "rhs": 0.25}],
    }
    path = tmp_path / "points.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_the_dag_runs_on_a_folder_of_off_meshes_and_learns(tmp_path):
    root = _tree(tmp_path / "meshes")
    r = snakemake(tmp_path, _config(tmp_path, f"folder:{root}"))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    results = tmp_path / "results"
    run = results / "points" / "pointnet" / "0"
    m = json.loads((run / "metrics.json").read_text())["metrics"]
    assert m["test/n"] == 24 and m["train/clouds"] == 80 * 16
    assert m["test/oa"] > 0.5, m  # chance: 0.25 (4 balanced classes)
    assert 0 <= m["test/oa_se"] < 0.15 and 0 <= m["test/oa_so3"] <= 1 and "test/macc" in m and "val/oa" in m
    # one rotation per cloud: the SE over clouds is the binomial one
    assert m["test/oa_so3_se"] == pytest.approx((m["test/oa_so3"] * (1 - m["test/oa_so3"]) / 24) ** 0.5)
    per_class = json.loads((run / "per_class.json").read_text())
    assert [c["class"] for c in per_class["per_class"]] == sorted(CLASSES)
    assert (run / "confusion.png").read_bytes()[:4] == b"\x89PNG"
    history = [json.loads(x) for x in (run / "history.jsonl").read_text().splitlines()]
    assert [h["step"] for h in history if "val/oa" in h] == [0, 40, 80]
    df = pd.read_parquet(results / "summary.parquet")
    assert df.family.tolist() == ["points"]
    assert "## Point clouds" in (results / "report" / "report.md").read_text()
    claims = json.loads((results / "claims.json").read_text())["claims"]
    assert claims[0]["verdict"] == "held"
    # a mesh edited in the folder prepares the data again, and reruns all that read it
    assert "Nothing to be done" in snakemake(tmp_path, _config(tmp_path, f"folder:{root}"), "-n").stdout
    mesh = next(root.rglob("*.off"))
    mesh.write_text(mesh.read_text() + "# edited\n")
    rules = {rule for rule, _ in planned_jobs(snakemake(tmp_path, _config(tmp_path, f"folder:{root}"), "-n").stdout)}
    assert {"points_prepare", "train", "points_evaluate", "report"} <= rules, rules


def test_a_shapes_config_plans_prepare_train_evaluate(tmp_path):
    r = snakemake(tmp_path, _config(tmp_path, "shapes"), "-n")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    rules = [rule for rule, _ in planned_jobs(r.stdout)]
    assert {"points_prepare", "train", "points_evaluate"} <= set(rules)


# Real meshes shipped by a Debian package: CGAL's demo data (apt-get install libcgal-demo; .ci/run
# installs it). They carry what real files carry: quads and larger polygons, shuffled vertex
# orders, per-face colours, comments.
CGAL_DATA = Path("/usr/share/doc/libcgal-dev/data.tar.gz")
REAL_MESHES = {
    "box": {
        "train": ["cube.off", "cube_quad.off", "cube_poly.off", "translated-cube.off"],
        "test": ["small_cube.off", "cube-shuffled.off"],
    },
    "round": {
        "train": ["sphere.off", "ellipsoid.off", "geosphere.off", "icosahedron.off"],
        "test": ["octahedron.off", "dragknob.off"],
    },
}


@pytest.mark.skipif(
    not CGAL_DATA.exists(),
    reason="Debian's libcgal-demo is not installed (real OFF meshes; apt-get install libcgal-demo, as .ci/run does)",
)
@pytest.mark.slow  # 16 s; test_the_dag_runs_on_a_folder_of_off_meshes_and_learns runs the same DAG in CI
def test_the_dag_runs_unchanged_on_real_meshes_from_a_debian_package(tmp_path):
    import tarfile

    root = tmp_path / "cgal"
    wanted = {
        f"data/meshes/{name}": (cls, split)
        for cls, splits in REAL_MESHES.items()
        for split, names in splits.items()
        for name in names
    }
    with tarfile.open(CGAL_DATA) as tar:
        for member in tar:
            if member.name in wanted and member.isfile():
                cls, split = wanted[member.name]
                (root / cls / split).mkdir(parents=True, exist_ok=True)
                (root / cls / split / Path(member.name).name).write_bytes(tar.extractfile(member).read())
    assert sum(1 for _ in root.rglob("*.off")) == len(wanted)
    cfg = _config(tmp_path, f"folder:{root}")
    doc = yaml.safe_load(cfg.read_text())
    doc["points"]["data"].update(points=32, val_fraction=0.25)
    doc["points"]["experiments"]["pointnet"].update(steps=20, batch_size=4, eval_every=10, checkpoint_every=20)
    doc["claims"] = []
    cfg.write_text(yaml.safe_dump(doc))
    r = snakemake(tmp_path, cfg)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    metrics = json.loads((tmp_path / "results" / "points" / "pointnet" / "0" / "metrics.json").read_text())
    assert 0 <= metrics["metrics"]["test/oa"] <= 1 and metrics["metrics"]["test/n"] == 4
    manifest = json.loads(next((tmp_path / "results" / "data" / "points").glob("*/manifest.json")).read_text())
    assert manifest["classes"] == ["box", "round"]


def test_the_folder_digest_sees_what_the_stages_read_and_nothing_else(tmp_path):
    from dagzoo.workflow import source_state

    root = _tree(tmp_path / "meshes")
    state = lambda: source_state(f"folder:{root}")["source_state"]  # noqa: E731
    first = state()
    assert source_state("shapes") == {} and state() == first
    (root / ".git").mkdir()
    (root / ".git" / "index").write_text("x")
    (root / ".DS_Store").write_text("x")
    (root / "__MACOSX").mkdir()
    assert state() == first  # what no stage reads changes nothing
    outside = tmp_path / "more"
    shutil.copytree(root / CLASSES[0], outside)
    (root / "linked").symlink_to(outside, target_is_directory=True)
    (outside / "loop").symlink_to(outside, target_is_directory=True)  # walked once
    with_link = state()
    assert with_link != first
    mesh = next(outside.rglob("*.off"))
    mesh.write_text(mesh.read_text() + "# edited\n")
    assert state() != with_link  # a class folder behind a link is read by the stage, so it counts
