"""Point-cloud data: the OFF reader on real-world quirks and malformed files, area-weighted
surface sampling, farthest point sampling, preparation (shapes, folder, ModelNet's archive path)
and its refusals."""

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats

from dagzoo.errors import ConfigError, DataError
from dagzoo.points import data as D

# tiny tensors: one thread is faster, and immune to a busy machine's oversubscription
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _write(tmp_path, text, name="m.off"):
    p = tmp_path / name
    p.write_text(text)
    return p


# ---------------------------------------------------------------------------------- OFF
def test_off_fused_header_comments_blank_lines_and_quads(tmp_path):
    p = _write(
        tmp_path, "OFF4 2 0\n# a comment\n\n0 0 0\n1 0 0  # trailing comment\n1 1 0\n0 1 0\n4 0 1 2 3\n3 0 2 3\n"
    )
    v, f = D.parse_off(p)
    assert v.shape == (4, 3) and v[2].tolist() == [1, 1, 0]
    assert f.tolist() == [[0, 1, 2], [0, 2, 3], [0, 2, 3]]  # the quad fan-triangulated
    # the header and counts on separate lines, a pentagon -> 3 triangles
    p = _write(tmp_path, "OFF\n5 1 0\n" + "0 0 0\n1 0 0\n2 1 0\n1 2 0\n0 1 0\n" + "5 0 1 2 3 4\n", "b.off")
    assert D.parse_off(p)[1].tolist() == [[0, 1, 2], [0, 2, 3], [0, 3, 4]]


@pytest.mark.probe
@pytest.mark.parametrize(
    "text, line, message",
    [
        ("OFF\n3 1 0\n0 0 0\n1 0 0\n", 5, "truncated: 2 of 3 vertices"),
        ("OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n3 0 1 2\n", 7, "more data than the header"),
        ("OFF\n3 1 0\n0 0 0\n1 x 0\n0 1 0\n3 0 1 2\n", 4, "non-numeric vertex coordinate"),
        ("OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 two\n", 6, "non-numeric face"),
        ("OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 7\n", 6, "refers to vertex 7"),
        ("OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n4 0 1 2\n", 6, "declares 4 vertices but lists 3"),
        ("OFF 999999999 999999999 0\n0 0 0\n", 1, "a lying header"),
        ("OFF\nthree 1 0\n", 2, "non-numeric counts"),
        ("PLY\n", 1, "not an OFF file"),
        ("", 1, "empty file"),
    ],
)
def test_malformed_off_is_a_data_error_naming_file_and_line(tmp_path, text, line, message):
    p = _write(tmp_path, text)
    with pytest.raises(DataError) as e:
        D.parse_off(p)
    assert f"{p}:{line}:" in str(e.value) and message in str(e.value) and "\n" not in str(e.value)


def test_a_lying_header_allocates_nothing(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(D.np, "empty", lambda *a, **k: calls.append(a) or np.zeros(1))
    with pytest.raises(DataError, match="lying header"):
        D.parse_off(_write(tmp_path, "OFF\n2000000000 1 0\n0 0 0\n"))
    assert calls == []


# ---------------------------------------------------------------------------------- sampling
def _two_scale_mesh():
    """Two triangles, areas 100 : 1, far apart; the big one split into 4 equal sub-triangles
    by its midpoints (checks uniformity inside a triangle too)."""
    a, b, c = np.array([0.0, 0, 0]), np.array([20.0, 0, 0]), np.array([0.0, 10, 0])  # area 100
    small = np.array([[100.0, 0, 0], [102.0, 0, 0], [100.0, 1, 0]])  # area 1
    return np.vstack([a, b, c, small]), np.array([[0, 1, 2], [3, 4, 5]]), (a, b, c)


def _cells(p, abc):
    """0..3: the four midpoint sub-triangles of the big triangle, 4: the small one."""
    a, b, c = abc
    out = np.full(len(p), 4)
    big = p[:, 0] < 50
    # barycentric coordinates (l_b, l_c) in the big right triangle: x / 20, y / 10
    lb, lc = p[big, 0] / 20, p[big, 1] / 10
    la = 1 - lb - lc
    out[big] = np.where(la > 0.5, 0, np.where(lb > 0.5, 1, np.where(lc > 0.5, 2, 3)))
    return out


def test_area_weighted_sampling_is_uniform_over_area_and_triangle_uniform_is_rejected():
    v, t, abc = _two_scale_mesh()
    n = 20000
    expected = n * np.array([25, 25, 25, 25, 1]) / 101
    p, _ = D.sample_surface(v, t, n, np.random.default_rng(0))
    obs = np.bincount(_cells(p, abc), minlength=5)
    crit = stats.chi2.ppf(0.999, df=4)
    assert stats.chisquare(obs, expected).statistic < crit, obs
    # the naive alternatives must fail the same test: a triangle chosen uniformly ...
    rng = np.random.default_rng(0)
    face = rng.integers(0, 2, n)
    r1, r2 = rng.random(n), rng.random(n)
    s = np.sqrt(r1)
    tri = v[t[face]]
    naive = (1 - s)[:, None] * tri[:, 0] + (s * (1 - r2))[:, None] * tri[:, 1] + (s * r2)[:, None] * tri[:, 2]
    assert stats.chisquare(np.bincount(_cells(naive, abc), minlength=5), expected).statistic > crit
    # ... or barycentric weights without the square root (clustered at the first vertex)
    face = rng.choice(2, n, p=[100 / 101, 1 / 101])
    tri = v[t[face]]
    nosqrt = (1 - r1)[:, None] * tri[:, 0] + (r1 * (1 - r2))[:, None] * tri[:, 1] + (r1 * r2)[:, None] * tri[:, 2]
    assert stats.chisquare(np.bincount(_cells(nosqrt, abc), minlength=5), expected).statistic > crit


def _fps_reference(x: np.ndarray, k: int) -> list[int]:
    """The textbook greedy loop, one cloud, float64: O(N K)."""
    chosen, dist = [0], np.full(len(x), np.inf)
    for _ in range(k - 1):
        d = x - x[chosen[-1]]
        dist = np.minimum(dist, d[:, 0] * d[:, 0] + d[:, 1] * d[:, 1] + d[:, 2] * d[:, 2])
        chosen.append(int(np.argmax(dist)))
    return chosen


def _min_pairwise(x):
    d = np.linalg.norm(x[:, None] - x[None], axis=-1)
    return d[np.triu_indices(len(x), 1)].min()


def test_fps_equals_brute_force_and_spreads_points_better_than_random():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(3, 500, 3))
    idx = D.farthest_point_sampling(torch.from_numpy(x), 32).numpy()
    for b in range(3):
        assert idx[b].tolist() == _fps_reference(x[b], 32)
        fps = _min_pairwise(x[b, idx[b]])
        rand = np.median([_min_pairwise(x[b, rng.choice(500, 32, replace=False)]) for _ in range(20)])
        assert fps > 2 * rand


def test_unit_sphere_normalisation():
    x = np.random.default_rng(0).normal(size=(2, 100, 3)) * 5 + 3
    y = D.normalize_unit_sphere(x)
    assert np.allclose(y.mean(1), 0) and np.allclose(np.linalg.norm(y, axis=-1).max(1), 1)


# ---------------------------------------------------------------------------------- prepare
def _tiny_tree(root: Path, classes=("sphere", "cube", "torus", "cone"), train=6, test=3, seed=0):
    for ci, name in enumerate(classes):
        for split, n in (("train", train), ("test", test)):
            (root / name / split).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                v, f = D.make_shape(name, np.random.default_rng([seed, ci, split == "test", i]))
                D.write_off(root / name / split / f"{name}_{i}.off", v, f)
    return root


def test_prepare_shapes_writes_arrays_and_manifest_last(tmp_path):
    data = {
        "source": "shapes",
        "points": 32,
        "seed": 0,
        "val_fraction": 0.2,
        "normals": True,
        "shapes": {"train_per_class": 5, "test_per_class": 2, "seed": 0},
    }
    m = D.prepare_points(data, tmp_path / "out", cache=tmp_path / "cache")
    assert m["classes"] == sorted(D.SHAPE_CLASSES) and m["splits"] == {"train": 40, "val": 10, "test": 20}
    pd_ = D.PointData(tmp_path / "out")
    x = pd_.clouds("train")
    assert x.shape == (40, 32, 3) and x.dtype == np.float32
    assert np.allclose(np.linalg.norm(x, axis=-1).max(1), 1, atol=1e-5)
    # stratified: one val cloud per class; the split recorded
    assert np.bincount(pd_.labels("val"), minlength=10).tolist() == [1] * 10
    assert len(m["val"]["train_indices"]) == 10 and m["files"]["val"][0].endswith(".off")
    assert np.load(tmp_path / "out" / "val_normals.npy").shape == (10, 32, 3)
    # the same settings give the same arrays (files depend on the seeds only)
    D.prepare_points(data, tmp_path / "out2", cache=tmp_path / "cache2")
    assert np.array_equal(np.load(tmp_path / "out2" / "test_points.npy"), pd_.clouds("test"))


def _bad_prepare(tmp_path, root, points=16):
    out = tmp_path / "out"
    with pytest.raises(DataError) as e:
        D.prepare_points({"source": f"folder:{root}", "points": points}, out)
    assert not (out / "manifest.json").exists(), "nothing looks finished"
    return str(e.value)


@pytest.mark.probe
def test_folder_refusals_name_the_file(tmp_path):
    root = _tiny_tree(tmp_path / "tree", train=2, test=1)
    bad = root / "cube" / "train" / "cube_1.off"
    bad.write_text("OFF\n3 1 0\n0 0 0\n1 0 0\n")  # truncated
    msg = _bad_prepare(tmp_path, root)
    assert f"{bad}:5: truncated" in msg and "\n" not in msg
    bad.write_text("OFF\n3 1 0\n0 0 0\n1 0 0\n2 0 0\n3 0 1 2\n")  # collinear: zero area
    msg = _bad_prepare(tmp_path, root)
    assert f"{bad}: the mesh has zero surface area" in msg
    bad.write_text("")
    assert f"{bad}:1: empty file" in _bad_prepare(tmp_path, root)
    bad.unlink()
    for f in (root / "torus" / "test").iterdir():
        f.unlink()
    msg = _bad_prepare(tmp_path, root)
    assert f"{root / 'torus' / 'test'}: class 'torus' has no test meshes" in msg


def test_points_cannot_exceed_surface_samples_and_source_must_be_known():
    from dagzoo.config import validate_config

    base = {
        "seeds": [0],
        "points": {"data": {"source": "shapes", "points": 64}, "experiments": {"p": {"model": "pointnet"}}},
    }
    validate_config(base)
    bad = json.loads(json.dumps(base))
    bad["points"]["data"]["surface_samples"] = 32
    with pytest.raises(ConfigError, match=r"points.data.surface_samples: 32 is fewer than points \(64\)"):
        validate_config(bad)
    bad = json.loads(json.dumps(base))
    bad["points"]["data"]["source"] = "shapenet"
    with pytest.raises(ConfigError, match="points.data.source: unknown data source 'shapenet'; allowed: shapes"):
        validate_config(bad)


def test_modelnet_archive_path_records_sha256_on_first_use_and_checks_it_later(tmp_path):
    tree = _tiny_tree(tmp_path / "src" / "ModelNet10", classes=("sphere", "cube"), train=3, test=2)
    archive = tmp_path / "ModelNet10.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for f in sorted(tree.rglob("*.off")):
            z.write(f, f.relative_to(tmp_path / "src").as_posix())
    cache = tmp_path / "cache"
    url = archive.as_uri()
    m = D.prepare_points(
        {"source": "modelnet10", "points": 16, "val_fraction": 0.0},
        tmp_path / "out",
        cache=cache,
        modelnet_url=url,
        expect_counts=False,
    )
    assert m["classes"] == ["cube", "sphere"] and m["splits"] == {"train": 6, "val": 0, "test": 4}
    record = json.loads((cache / "ModelNet10.zip.sha256").read_text())
    assert len(record["sha256"]) == 64
    # the official counts are checked when expected
    with pytest.raises(DataError, match="the official modelnet10 has 10, 3991 and 908"):
        D.prepare_points({"source": "modelnet10", "points": 16}, tmp_path / "out3", cache=cache, modelnet_url=url)
    # a later use of a changed archive is refused
    with open(cache / "ModelNet10.zip", "ab") as f:
        f.write(b"x")
    with pytest.raises(DataError, match="checksum mismatch"):
        D.prepare_points(
            {"source": "modelnet10", "points": 16},
            tmp_path / "out2",
            cache=cache,
            modelnet_url=url,
            expect_counts=False,
        )
    assert not (tmp_path / "out2" / "manifest.json").exists()


def test_a_damaged_first_modelnet_archive_is_not_recorded_as_the_reference(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "ModelNet10.zip").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(DataError, match="neither a zip nor a tar archive"):
        D.modelnet_tree("modelnet10", cache, expect_counts=False, url="http://127.0.0.1:9/ModelNet10.zip")
    assert not (cache / "ModelNet10.zip.sha256").exists(), "a good copy downloaded next must be accepted"
    # a recorded digest that a new copy does not match: the message names the record
    (cache / "ModelNet10.zip.sha256").write_text(json.dumps({"sha256": "0" * 64}))
    with pytest.raises(
        DataError,
        match=r"checksum mismatch.*ModelNet10.zip.sha256 recorded when the archive was "
        r"first used; delete that file too",
    ):
        D.modelnet_tree("modelnet10", cache, expect_counts=False, url="http://127.0.0.1:9/ModelNet10.zip")


def test_a_whole_part_file_left_before_its_rename_finishes_the_download(tmp_path):
    import http.server
    import threading

    payload = bytes(range(256)) * 4

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the stdlib's name
            start = int(self.headers["Range"].split("=")[1].rstrip("-"))
            assert start == len(payload)
            self.send_response(416)  # what a server answers for a range past the end
            self.send_header("Content-Range", f"bytes */{len(payload)}")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *a):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    dest = tmp_path / "ModelNet10.zip"
    (tmp_path / "ModelNet10.zip.part").write_bytes(payload)
    try:
        D.download_resumable(f"http://127.0.0.1:{server.server_port}/ModelNet10.zip", dest, timeout=5)
    finally:
        server.shutdown()
    assert dest.read_bytes() == payload and not (tmp_path / "ModelNet10.zip.part").exists()


def test_an_interrupted_download_resumes_with_a_range_request(tmp_path):
    import http.server
    import threading

    payload = bytes(range(256)) * 400
    seen = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the stdlib's name
            rng = self.headers.get("Range")
            seen.append(rng)
            if rng is None:  # the first attempt: the connection drops half-way
                self.send_response(200)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload[: len(payload) // 2])
                self.wfile.flush()
                self.connection.close()
                return
            start = int(rng.split("=")[1].rstrip("-"))
            self.send_response(206)
            self.send_header("Content-Length", str(len(payload) - start))
            self.end_headers()
            self.wfile.write(payload[start:])

        def log_message(self, *a):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/ModelNet10.zip"
    dest = tmp_path / "ModelNet10.zip"
    try:
        with pytest.raises(DataError, match=r"incomplete \(51,200 of 102,400 bytes\); rerun to resume"):
            D.download_resumable(url, dest, timeout=5)
        assert not dest.exists() and (tmp_path / "ModelNet10.zip.part").stat().st_size == len(payload) // 2
        D.download_resumable(url, dest, timeout=5)
    finally:
        server.shutdown()
    assert dest.read_bytes() == payload and seen == [None, f"bytes={len(payload) // 2}-"]


def test_obj_ply_stl_through_trimesh(tmp_path):
    trimesh = pytest.importorskip("trimesh")
    box = trimesh.creation.box(extents=[1, 2, 3])
    for ext in ("obj", "ply", "stl"):
        box.export(tmp_path / f"b.{ext}")
        v, t = D.read_mesh(tmp_path / f"b.{ext}")
        assert D.triangle_areas(v, t).sum() == pytest.approx(22.0)
    (tmp_path / "bad.stl").write_bytes(b"\0" * 10)
    with pytest.raises(DataError, match=f"{tmp_path / 'bad.stl'}: an empty or malformed mesh"):
        D.read_mesh(tmp_path / "bad.stl")


def test_generated_meshes_are_made_again_when_the_generator_changes(tmp_path, monkeypatch):
    root = D.generate_shapes(tmp_path / "shapes", 1, 1, seed=0)
    mesh = next(root.rglob("*.off"))
    mesh.write_text("edited")  # a marker of the tree the cache holds
    assert D.generate_shapes(tmp_path / "shapes", 1, 1, seed=0) == root and mesh.read_text() == "edited"
    monkeypatch.setattr(D, "_generator_digest", lambda: "other code")
    D.generate_shapes(tmp_path / "shapes", 1, 1, seed=0)
    assert mesh.read_text().startswith("OFF") and (root / ".complete").read_text() == "other code"
