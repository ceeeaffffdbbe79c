"""Part data: ShapeNetPart's layout read from a fabricated tree (the real archive is not
reachable offline), malformed files refused with their line and nothing written, the generated
shapes' labels from the faces they were sampled on."""

import json

import numpy as np
import pytest

from dagzoo.errors import DataError
from dagzoo.parts import data as D


def _rows(rng, n, labels):
    xyz = rng.normal(size=(n, 3))
    normals = rng.normal(size=(n, 3))
    lab = rng.choice(labels, n)
    return "\n".join(" ".join(f"{v:.6f}" for v in (*p, *q)) + f" {lab_:.6f}" for p, q, lab_ in zip(xyz, normals, lab))


def fabricated_tree(root, per_split=(4, 1, 2), points=40):
    """A tree in ShapeNetPart's layout with two of its categories (Mug: labels 36-37, Table:
    47-49), no part_names.json: ShapeNetPart's own part list applies."""
    rng = np.random.default_rng(0)
    folders = {"Mug": ("03797390", [36, 37]), "Table": ("04379243", [47, 48, 49])}
    (root / "train_test_split").mkdir(parents=True)
    (root / D.CATEGORY_FILE).write_text("".join(f"{c}\t{f}\n" for c, (f, _) in folders.items()))
    lists = {s: [] for s in D.SPLITS}
    for c, (folder, labels) in folders.items():
        (root / folder).mkdir()
        for split, n in zip(D.SPLITS, per_split):
            for i in range(n):
                name = f"{c.lower()}{split}{i}"
                (root / folder / f"{name}.txt").write_text(_rows(rng, points, labels) + "\n")
                lists[split].append(f"shape_data/{folder}/{name}")
    for split, entries in lists.items():
        (root / "train_test_split" / f"shuffled_{split}_file_list.json").write_text(json.dumps(entries))
    return root


def test_the_shapenetpart_layout_is_read_z_up_with_contiguous_part_indices(tmp_path):
    root = fabricated_tree(tmp_path / "tree")
    m = D.prepare_parts({"source": f"folder:{root}", "points": 32, "seed": 0}, tmp_path / "out")
    assert m["categories"] == ["Mug", "Table"] and m["splits"] == {"train": 8, "val": 2, "test": 4}
    assert [(p["category"], p["label"]) for p in m["parts"]] == [
        ("Mug", 36),
        ("Mug", 37),
        ("Table", 47),
        ("Table", 48),
        ("Table", 49),
    ]
    data = D.PartData(tmp_path / "out")
    assert data.parts_of == [[0, 1], [2, 3, 4]]
    x, y, c = data.clouds("train"), data.labels("train"), data.category("train")
    assert x.shape == (8, 32, 3) and y.shape == (8, 32) and sorted(c.tolist()) == [0] * 4 + [1] * 4
    assert np.allclose(np.linalg.norm(x, axis=-1).max(axis=1), 1.0, atol=1e-6)  # the unit sphere
    for i in range(8):  # every point's part belongs to its shape's category
        assert set(y[i]) <= set(data.parts_of[c[i]])
    # the first train shape, by hand: the seeded draw of 32 of its 40 rows, turned z up, normalised
    first = m["files"]["train"][0]
    raw = np.loadtxt(root / f"{first}.txt")
    keep = np.random.default_rng([0, 0, 0]).permutation(40)[:32]
    xyz = raw[keep, :3]
    up = np.stack([xyz[:, 0], -xyz[:, 2], xyz[:, 1]], 1)
    up -= up.mean(0)
    up /= np.linalg.norm(up, axis=1).max()
    assert np.allclose(x[0], up, atol=1e-6)
    offset = {"Mug": 36, "Table": 47 - 2}[D.read_categories(root)[first.split("/")[0]]]
    assert (y[0] == raw[keep, 6].astype(int) - offset).all()


def test_a_shape_with_fewer_points_keeps_all_of_them(tmp_path):
    rng = np.random.default_rng(1)
    picked = D._pick(5, 8, rng)
    assert sorted(set(picked.tolist())) == [0, 1, 2, 3, 4] and len(picked) == 8


@pytest.mark.parametrize(
    "row, message",
    [
        ("0.1 0.2 0.3 0 0 1", r":3: 6 columns, expected 7 \(x y z nx ny nz part\)"),
        ("0.1 0.2 0.3 0 0 1 47", r":3: part label 47 is not one of this category's parts \(36..37\)"),
        ("0.1 0.2 0.3 0 0 1 36.5", r":3: part label 36.5 is not one of this category's parts"),
        ("0.1 0.2 zero 0 0 1 36", r":3: a non-numeric value"),
    ],
)
def test_a_malformed_part_file_names_its_line_and_nothing_is_written(tmp_path, row, message):
    root = fabricated_tree(tmp_path / "tree")
    victim = root / "03797390" / "mugtrain1.txt"
    lines = victim.read_text().splitlines()
    lines[2] = row
    victim.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    with pytest.raises(DataError, match=rf"mugtrain1.txt{message}"):
        D.prepare_parts({"source": f"folder:{root}", "points": 32, "seed": 0}, out)
    assert not out.exists() or not any(out.iterdir())  # nothing half-written


def test_an_empty_shape_and_a_bad_split_list_are_refused(tmp_path):
    root = fabricated_tree(tmp_path / "tree")
    (root / "04379243" / "tabletest0.txt").write_text("\n\n")
    with pytest.raises(DataError, match=r"tabletest0.txt:1: an empty shape \(no points\)"):
        D.prepare_parts({"source": f"folder:{root}", "points": 32}, tmp_path / "out")
    (root / "train_test_split" / "shuffled_val_file_list.json").write_text('["shape_data/nowhere/x"]')
    with pytest.raises(DataError, match=r"shuffled_val_file_list.json: entry 0 \('shape_data/nowhere/x'\)"):
        D.prepare_parts({"source": f"folder:{root}", "points": 32}, tmp_path / "out")
    (root / D.CATEGORY_FILE).write_text("Mug 03797390 extra\n")
    with pytest.raises(DataError, match=r"synsetoffset2category.txt:1: expected '<Category> <folder>'"):
        D.prepare_parts({"source": f"folder:{root}", "points": 32}, tmp_path / "out")


def test_generated_labels_come_from_the_faces_the_points_lie_on():
    rng = np.random.default_rng(3)
    pieces = D.make_part_shape("Mug", rng)
    xyz, normals, part = D.labelled_surface_points(pieces, 2000, rng)
    body_vertices = np.vstack([v for v, _, p in pieces if p == 0])
    # the body is a cylinder about the (rotated) up axis through its centre: its points lie within its
    # radius of the axis, the handle's points outside it
    radius = np.linalg.norm(body_vertices[:, :2], axis=1).max()
    dist = np.linalg.norm(xyz[:, :2], axis=1)
    assert (dist[part == 0] <= radius + 1e-9).all() and (dist[part == 1] > radius * 0.999).all()
    assert 0 < (part == 1).mean() < 0.5 and np.allclose(np.linalg.norm(normals, axis=1), 1)
    # height alone does not separate the handle: the body has points at every handle height
    handle_z = xyz[part == 1, 2]
    body_z = xyz[part == 0, 2]
    assert body_z.min() < handle_z.min() and body_z.max() > handle_z.max()


def test_the_generated_tree_is_in_the_layout_and_reused(tmp_path):
    root = D.generate_part_shapes(tmp_path / "gen", {"train": 2, "val": 1, "test": 1}, 64, seed=0)
    assert D.read_categories(root) == {c.lower(): c for c in D.GENERATED_PARTS}
    names = json.loads((root / D.PART_NAMES_FILE).read_text())
    assert names == {c: list(p) for c, p in D.GENERATED_PARTS.items()}
    lists = D.split_lists(root, D.read_categories(root))
    assert {s: len(v) for s, v in lists.items()} == {"train": 10, "val": 5, "test": 5}
    stamp = (root / ".complete").stat().st_mtime_ns
    assert D.generate_part_shapes(tmp_path / "gen", {"train": 2, "val": 1, "test": 1}, 64, seed=0) == root
    assert (root / ".complete").stat().st_mtime_ns == stamp  # the digest matched: not made again


def test_the_shapenetpart_archive_records_its_sha256_on_first_use_and_checks_it_later(tmp_path):
    import zipfile

    top = D.SHAPENETPART_TOP
    tree = fabricated_tree(tmp_path / "src" / top)
    archive = tmp_path / "shapenetcore_partanno_segmentation_benchmark_v0_normal.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for f in sorted(p for p in tree.rglob("*") if p.is_file()):
            z.write(f, f.relative_to(tmp_path / "src").as_posix())
    cache, url = tmp_path / "cache", archive.as_uri()
    data = {"source": "shapenetpart", "points": 32, "seed": 0}
    m = D.prepare_parts(data, tmp_path / "out", cache=cache, url=url, expect_counts=False)
    assert m["categories"] == ["Mug", "Table"] and m["splits"] == {"train": 8, "val": 2, "test": 4}
    record = json.loads((cache / archive.name).with_name(archive.name + ".sha256").read_text())
    assert len(record["sha256"]) == 64 and record["url"] == url
    # the official split is checked when expected
    with pytest.raises(DataError, match=r"the official ShapeNetPart has 12137, 1870 and 2874"):
        D.prepare_parts(data, tmp_path / "out2", cache=cache, url=url)
    # a later use of a changed archive is refused, and nothing is prepared
    with open(cache / archive.name, "ab") as f:
        f.write(b"x")
    with pytest.raises(DataError, match="checksum mismatch"):
        D.prepare_parts(data, tmp_path / "out3", cache=cache, url=url, expect_counts=False)
    assert not (tmp_path / "out3" / "manifest.json").exists()
