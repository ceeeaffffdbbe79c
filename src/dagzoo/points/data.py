"""Point-cloud data: meshes (OFF, ModelNet's layout) -> area-weighted surface samples ->
farthest point sampling to N points -> unit-sphere clouds in .npy arrays + a manifest.

Sources (`data.source`):

- ``modelnet10`` / ``modelnet40``: the Princeton archives, downloaded once (resumably) into the
  download cache. No official checksum is published, so the archive's sha256 is recorded on first
  download (trust on first use) and checked on every later use; extraction goes through
  dagzoo.data.download (safe paths, member and size limits, per-member record).
- ``folder:<path>``: any tree ``<class>/train/*.off`` and ``<class>/test/*.off`` (ModelNet's
  layout); .obj/.ply/.stl too, read by the `trimesh` library (a dependency; OFF is read by the
  parser here).
- ``shapes``: procedural meshes of 10 classes generated here (seeded proportions, sizes and
  rotations about the up axis), written as OFF files in ModelNet's layout and then prepared by
  exactly the same code as ModelNet.

The prepared directory holds ``{train,val,test}_points.npy`` (float32, (n, N, 3)),
``{split}_labels.npy`` (int64), optionally ``{split}_normals.npy``, and ``manifest.json``
(classes, source files per split, the validation split, the sha256 of every array), written last.
"""

from __future__ import annotations

import hashlib
import http.client
import math
import re
import shutil
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

from dagzoo.data.integrity import FILE_RECORDS, check_prepared_file, file_digest, file_record, load_npy, read_manifest
from dagzoo.errors import ConfigError, DataError
from dagzoo.io import atomic_save_npy, atomic_write_json, commit_staged_tree, fsync_dir, make_staging_dir, sync_file

if TYPE_CHECKING:  # imported where used: planning a DAG reads this module's source checks and slugs
    import torch

SPLITS = ("train", "val", "test")
MESH_SUFFIXES = (".off", ".obj", ".ply", ".stl")
#: a vertex line holds at least "0 0 0\n" (6 bytes), a face line at least "3 0 0 0\n" (8 bytes):
#: a header whose counts need more bytes than the file has is lying, and is refused before
#: anything is allocated for it
_MIN_VERTEX_BYTES, _MIN_FACE_BYTES = 6, 8


# ---------------------------------------------------------------------------------- OFF
def _content_lines(text: str):
    """(line number, tokens) of every line that is not blank or a comment (# to the end)."""
    for no, line in enumerate(text.splitlines(), 1):
        body = line.split("#", 1)[0].split()
        if body:
            yield no, body


def parse_off(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(vertices float64 (V, 3), triangles int64 (F, 3)) of an OFF file; polygons with more than
    three vertices are fan-triangulated. Survives ModelNet's fused header (``OFF490 518 0``),
    comments and blank lines; anything malformed is a DataError naming the file and line."""
    path = Path(path)
    try:
        size = path.stat().st_size
        text = path.read_text(encoding="ascii", errors="strict")
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not an ASCII OFF file (byte {e.start})") from None
    except OSError as e:
        raise DataError(f"{path}: cannot be read ({e.strerror})") from None
    lines = _content_lines(text)

    def bad(no, why):
        return DataError(f"{path}:{no}: {why}")

    first = next(lines, None)
    if first is None:
        raise DataError(f"{path}:1: empty file (no OFF header)")
    no, toks = first
    if not toks[0].startswith("OFF"):
        raise bad(no, f"not an OFF file (header {toks[0][:20]!r}, expected 'OFF')")
    rest = toks[0][3:]  # ModelNet: "OFF490 518 0" fuses the header and the counts
    counts = ([rest] if rest else []) + toks[1:]
    if not counts:
        nxt = next(lines, None)
        if nxt is None:
            raise bad(no + 1, "truncated: no vertex/face counts after the header")
        no, counts = nxt
    if len(counts) < 2:
        raise bad(no, f"expected 'vertices faces [edges]' counts, got {' '.join(counts)!r}")
    try:
        nv, nf = int(counts[0]), int(counts[1])
    except ValueError:
        raise bad(no, f"non-numeric counts {' '.join(counts[:3])!r}") from None
    if nv < 3 or nf < 1:
        raise bad(no, f"a mesh needs at least 3 vertices and 1 face, the header says {nv} and {nf}")
    # small counts are cheap to trust (a short body is then reported as truncated, with its line)
    if nv + nf > 4096 and nv * _MIN_VERTEX_BYTES + nf * _MIN_FACE_BYTES > size:
        raise bad(
            no,
            f"the header declares {nv:,} vertices and {nf:,} faces, more than a {size:,}-byte file "
            "can hold (a lying header)",
        )
    count_line = no

    verts = np.empty((nv, 3), np.float64)
    for i in range(nv):
        item = next(lines, None)
        if item is None:
            raise bad(text.count("\n") + 1, f"truncated: {i:,} of {nv:,} vertices (header on line {count_line})")
        no, toks = item
        if len(toks) < 3:
            raise bad(no, f"vertex {i} has {len(toks)} coordinates, expected 3")
        try:
            verts[i] = (float(toks[0]), float(toks[1]), float(toks[2]))
        except ValueError:
            raise bad(no, f"non-numeric vertex coordinate in {' '.join(toks[:3])!r}") from None
    if not np.isfinite(verts).all():
        raise DataError(f"{path}: non-finite vertex coordinates (nan or inf)")

    tris: list[tuple[int, int, int]] = []
    for i in range(nf):
        item = next(lines, None)
        if item is None:
            raise bad(text.count("\n") + 1, f"truncated: {i:,} of {nf:,} faces (header on line {count_line})")
        no, toks = item
        try:
            k = int(toks[0])
            idx = [int(t) for t in toks[1 : 1 + k]]
        except ValueError:
            raise bad(no, f"non-numeric face {' '.join(toks[:6])!r}") from None
        if k < 3 or len(idx) != k:
            raise bad(
                no,
                f"face {i} declares {k} vertices but lists {len(toks) - 1}"
                if k >= 3
                else f"face {i} has {k} vertices (a polygon needs at least 3)",
            )
        if min(idx) < 0 or max(idx) >= nv:
            raise bad(no, f"face {i} refers to vertex {max(idx) if max(idx) >= nv else min(idx)}, outside 0..{nv - 1}")
        # a convex polygon (v0 v1 ... vk) is the fan (v0, v_j, v_j+1); OFF polygons are planar
        tris.extend((idx[0], idx[j], idx[j + 1]) for j in range(1, k - 1))
    extra = next(lines, None)
    if extra is not None:
        raise bad(
            extra[0],
            f"more data than the header's {nv:,} vertices and {nf:,} faces declare "
            f"(counts on line {count_line} disagree with the body)",
        )
    return verts, np.asarray(tris, np.int64)


def write_off(path: Path, verts: np.ndarray, faces) -> None:
    """An OFF file (faces: triangles or any polygons, as index sequences)."""
    lines = ["OFF", f"{len(verts)} {len(faces)} 0"]
    lines += [f"{x:.6f} {y:.6f} {z:.6f}" for x, y, z in np.asarray(verts, float)]
    lines += [" ".join(map(str, [len(f), *f])) for f in faces]
    Path(path).write_text("\n".join(lines) + "\n", encoding="ascii")


def read_mesh(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(vertices, triangles) of a mesh file: OFF by our parser; .obj/.ply/.stl by trimesh."""
    path = Path(path)
    if path.suffix.lower() == ".off":
        return parse_off(path)
    try:
        import trimesh
    except ImportError:
        raise DataError(
            f"{path}: {path.suffix} meshes need the trimesh library (pip install trimesh); "
            "OFF files are read without it"
        ) from None
    try:
        mesh = trimesh.load(path, force="mesh", process=False)
        verts, tris = np.asarray(mesh.vertices, np.float64), np.asarray(mesh.faces, np.int64)
    except Exception as e:  # noqa: BLE001 - any failure of the library means the file is unusable
        raise DataError(f"{path}: not a readable mesh ({type(e).__name__}: {str(e)[:200]})") from None
    if len(tris) == 0 or verts.ndim != 2 or verts.shape[1:] != (3,) or tris.shape[1:] != (3,):
        raise DataError(f"{path}: an empty or malformed mesh ({len(verts)} vertices, {len(tris)} triangles)")
    if not np.isfinite(verts).all() or tris.min() < 0 or tris.max() >= len(verts):
        raise DataError(f"{path}: non-finite vertices or faces referring to missing vertices")
    return verts, tris


# ---------------------------------------------------------------------------------- sampling
def triangle_areas(verts: np.ndarray, tris: np.ndarray) -> np.ndarray:
    a, b, c = verts[tris[:, 0]], verts[tris[:, 1]], verts[tris[:, 2]]
    return 0.5 * np.linalg.norm(np.cross(b - a, c - a), axis=1)


def sample_surface(
    verts: np.ndarray, tris: np.ndarray, n: int, rng: np.random.Generator, normals: bool = False
) -> tuple[np.ndarray, np.ndarray | None]:
    """n points uniform over the mesh's surface area (`surface_points`); normals: the unit
    normal of each point's triangle."""
    pts, face = surface_points(verts, tris, n, rng)
    nrm = None
    if normals:
        a, b, c = verts[tris[face, 0]], verts[tris[face, 1]], verts[tris[face, 2]]
        cr = np.cross(b - a, c - a)
        nrm = cr / np.maximum(np.linalg.norm(cr, axis=1, keepdims=True), 1e-12)
    return pts, nrm


def surface_points(
    verts: np.ndarray, tris: np.ndarray, n: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(points (n, 3), the triangle each lies on (n,)): n points uniform over the mesh's surface
    area: a triangle with probability area / total, then a uniform point in it,
    p = (1 - sqrt(r1)) A + sqrt(r1) (1 - r2) B + sqrt(r1) r2 C (Osada et al. 2002: the sqrt makes
    the density uniform, not clustered at A)."""
    areas = triangle_areas(verts, tris)
    total = areas.sum()
    if not np.isfinite(total) or total <= 0:
        raise DataError("the mesh has zero surface area")
    face = rng.choice(len(tris), size=n, p=areas / total)
    r1, r2 = rng.random(n), rng.random(n)
    s = np.sqrt(r1)
    a, b, c = verts[tris[face, 0]], verts[tris[face, 1]], verts[tris[face, 2]]
    pts = (1 - s)[:, None] * a + (s * (1 - r2))[:, None] * b + (s * r2)[:, None] * c
    return pts, face


def farthest_point_sampling(x: torch.Tensor, k: int) -> torch.Tensor:
    """Indices (B, k) of k points of each cloud x (B, M, 3) chosen greedily: each next point is
    the one farthest from those chosen so far (Eldar et al. 1997; PointNet++). Deterministic:
    it starts at point 0 and argmax takes the first of equal distances. O(B M k), batched."""
    import torch

    b, m, _ = x.shape
    if k > m:
        raise ValueError(f"farthest point sampling of {k} points from clouds of {m}")
    idx = torch.zeros(b, k, dtype=torch.long, device=x.device)
    dist = torch.full((b, m), float("inf"), dtype=x.dtype, device=x.device)
    far = torch.zeros(b, dtype=torch.long, device=x.device)
    rows = torch.arange(b, device=x.device)
    for i in range(k):
        idx[:, i] = far
        diff = x - x[rows, far][:, None, :]
        # written out (not .sum) so the rounding is the same in every implementation
        d = diff[..., 0] * diff[..., 0] + diff[..., 1] * diff[..., 1] + diff[..., 2] * diff[..., 2]
        dist = torch.minimum(dist, d)
        far = dist.argmax(dim=1)
    return idx


def normalize_unit_sphere(x: np.ndarray) -> np.ndarray:
    """Centre each cloud (..., N, 3) on its centroid and scale its farthest point to radius 1."""
    x = x - x.mean(axis=-2, keepdims=True)
    return x / np.maximum(np.linalg.norm(x, axis=-1).max(axis=-1), 1e-12)[..., None, None]


# ---------------------------------------------------------------------------------- shapes
SHAPE_CLASSES = ("sphere", "ellipsoid", "cube", "box", "cylinder", "cone", "torus", "pyramid", "prism", "capsule")


def _grid_surface(fn, nu: int, nv: int, wrap_u=True):
    """Triangles of a parametric surface fn(u, v) on an nu x nv grid (u wraps around)."""
    us = np.linspace(0, 2 * np.pi, nu, endpoint=not wrap_u)
    vs = np.linspace(0, 1, nv)
    uu, vv = np.meshgrid(us, vs, indexing="ij")
    verts = fn(uu, vv).reshape(-1, 3)
    faces = []
    for i in range(nu if wrap_u else nu - 1):
        for j in range(nv - 1):
            a, b = i * nv + j, ((i + 1) % nu) * nv + j
            faces += [(a, b, b + 1), (a, b + 1, a + 1)]
    return verts, faces


def _prism(n: int, r: float, h: float, top_r: float | None = None):
    """A closed n-gon prism (top_r 0: a pyramid/cone, top_r r: a prism/cylinder) with polygon caps."""
    top_r = r if top_r is None else top_r
    ang = np.linspace(0, 2 * np.pi, n, endpoint=False)
    bottom = np.stack([r * np.cos(ang), r * np.sin(ang), np.full(n, -h / 2)], 1)
    if top_r == 0:
        verts = np.vstack([bottom, [[0, 0, h / 2]]])
        faces = [(i, (i + 1) % n, n) for i in range(n)] + [tuple(range(n - 1, -1, -1))]
        return verts, faces
    top = np.stack([top_r * np.cos(ang), top_r * np.sin(ang), np.full(n, h / 2)], 1)
    verts = np.vstack([bottom, top])
    faces = [(i, (i + 1) % n, n + (i + 1) % n, n + i) for i in range(n)]  # quads: fan-triangulated
    faces += [tuple(range(n - 1, -1, -1)), tuple(range(n, 2 * n))]
    return verts, faces


def make_shape(name: str, rng: np.random.Generator):
    """(vertices, polygons) of one random instance of class `name` (z is up)."""
    u = lambda lo, hi: float(rng.uniform(lo, hi))  # noqa: E731
    if name == "sphere":
        r = u(0.5, 1.0)
        v, f = _grid_surface(
            lambda a, t: np.stack(
                [r * np.sin(np.pi * t) * np.cos(a), r * np.sin(np.pi * t) * np.sin(a), -r * np.cos(np.pi * t)], -1
            ),
            24,
            13,
        )
    elif name == "ellipsoid":  # axes 1 : 0.75..0.9 : 0.55..0.8 - near a sphere at the top of the range
        a_, b_, c_ = u(0.6, 1.0), 1.0, 1.0
        b_, c_ = a_ * u(0.75, 0.9), a_ * u(0.55, 0.8)
        v, f = _grid_surface(
            lambda a, t: np.stack(
                [a_ * np.sin(np.pi * t) * np.cos(a), b_ * np.sin(np.pi * t) * np.sin(a), -c_ * np.cos(np.pi * t)], -1
            ),
            24,
            13,
        )
    elif name in ("cube", "box"):  # cube: sides equal within 8%; box: ratios 0.6..0.9 (confusable)
        s = u(0.5, 1.0)
        dims = s * (rng.uniform(0.92, 1.0, 3) if name == "cube" else np.array([1.0, u(0.6, 0.9), u(0.6, 0.9)]))
        v = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], float) * dims / 2
        f = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    elif name == "cylinder":
        v, f = _prism(32, u(0.3, 0.6), u(0.8, 1.6))
    elif name == "prism":  # 7..10 sides: close to a cylinder (confusable)
        v, f = _prism(int(rng.integers(7, 11)), u(0.3, 0.6), u(0.8, 1.6))
    elif name == "cone":
        v, f = _prism(32, u(0.3, 0.7), u(0.8, 1.6), top_r=0)
    elif name == "pyramid":
        v, f = _prism(4, u(0.4, 0.8), u(0.6, 1.4), top_r=0)
    elif name == "torus":
        big, small = u(0.5, 0.8), u(0.12, 0.3)
        v, f = _grid_surface(
            lambda a, t: np.stack(
                [
                    (big + small * np.cos(2 * np.pi * t)) * np.cos(a),
                    (big + small * np.cos(2 * np.pi * t)) * np.sin(a),
                    small * np.sin(2 * np.pi * t),
                ],
                -1,
            ),
            32,
            13,
        )
    elif name == "capsule":  # a cylinder with hemispherical caps: the profile revolved about z
        r, h = u(0.25, 0.45), u(0.6, 1.2)
        phi = np.linspace(0, np.pi, 18)
        prof_r = r * np.sin(phi)
        prof_z = np.where(phi <= np.pi / 2, -h / 2, h / 2) - r * np.cos(phi)
        # phi = pi/2 appears once: insert the other end of the straight side
        half = np.searchsorted(phi, np.pi / 2)
        prof_r = np.insert(prof_r, half, r)
        prof_z = np.insert(prof_z, half, -h / 2 if phi[half] > np.pi / 2 else h / 2)
        order = np.argsort(prof_z, kind="stable")
        prof_r, prof_z = prof_r[order], prof_z[order]
        n = len(prof_r)
        v, f = _grid_surface(
            lambda a, t: np.stack(
                [
                    np.interp(t, np.linspace(0, 1, n), prof_r) * np.cos(a),
                    np.interp(t, np.linspace(0, 1, n), prof_r) * np.sin(a),
                    np.interp(t, np.linspace(0, 1, n), prof_z),
                ],
                -1,
            ),
            24,
            n,
        )
    else:
        raise ValueError(name)
    theta = u(0, 2 * np.pi)  # a random rotation about the up axis (z)
    c, s = math.cos(theta), math.sin(theta)
    rot = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    return np.asarray(v, float) @ rot.T, f


def _generator_digest() -> str:
    """A hash of the code that makes the `shapes` meshes: a cached tree made by other code (a
    shape's proportions changed) is made again, not reused."""
    import inspect

    source = "".join(inspect.getsource(f) for f in (_grid_surface, _prism, make_shape, write_off))
    return hashlib.sha256((source + repr(SHAPE_CLASSES)).encode()).hexdigest()


def generate_shapes(root: Path, train_per_class: int, test_per_class: int, seed: int) -> Path:
    """The `shapes` data set as OFF files in ModelNet's layout under `root` (written into a
    staging folder and renamed into place, so a half-written tree never passes for one); its
    `.complete` marker holds the generator's digest."""

    def write(staging: Path) -> None:
        for ci, name in enumerate(SHAPE_CLASSES):
            for split, n in (("train", train_per_class), ("test", test_per_class)):
                d = staging / name / split
                d.mkdir(parents=True)
                for i in range(n):
                    # each file is a function of (seed, class, split, i) alone
                    rng = np.random.default_rng([seed, ci, split == "test", i])
                    v, f = make_shape(name, rng)
                    write_off(d / f"{name}_{i:04d}.off", v, f)

    return generated_tree(Path(root), _generator_digest(), write)


def generated_tree(root: Path, digest: str, write: Callable[[Path], None]) -> Path:
    """A tree that `write(folder)` generates under `root`: written into a staging folder and
    renamed into place, so a half-written tree never passes for one. Its `.complete` marker holds
    the generator's `digest`; a tree whose marker matches is reused, any other is made again."""
    marker = root / ".complete"
    if marker.exists() and marker.read_text(encoding="utf-8", errors="replace") == digest:
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = make_staging_dir(root.parent, root.name)
    try:
        write(staging)
        (staging / ".complete").write_text(digest)
        commit_staged_tree(staging, root)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return root


# ---------------------------------------------------------------------------------- sources
@dataclass(frozen=True)
class ModelNet:
    url: str
    top: str  # the folder inside the archive
    classes: int
    train: int
    test: int


MODELNET = {
    "modelnet10": ModelNet(
        "http://3dvision.princeton.edu/projects/2014/3DShapeNets/ModelNet10.zip", "ModelNet10", 10, 3991, 908
    ),
    "modelnet40": ModelNet("http://modelnet.cs.princeton.edu/ModelNet40.zip", "ModelNet40", 40, 9843, 2468),
}


def check_source(source: str) -> None:
    if source in MODELNET or source == "shapes" or (source.startswith("folder:") and len(source) > 7):
        return
    raise ConfigError(
        f"points.data.source: unknown data source {source!r}; allowed: shapes, modelnet10, modelnet40, folder:<path>"
    )


def check_source_folder(source: str, where: str) -> None:
    """A `folder:<path>` source names a folder that exists (checked on every DAG start)."""
    if source.startswith("folder:") and not Path(source[7:]).expanduser().is_dir():
        raise ConfigError(f"{where}: folder not found: {source[7:]}")


def source_slug(source: str) -> str:
    if source.startswith("folder:"):
        path = str(Path(source[7:]).expanduser().resolve())
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(path).name)[:40] or "root"
        return f"folder-{name}-{hashlib.sha256(path.encode()).hexdigest()[:8]}"
    return source


def data_slug(data: dict) -> str:
    """The prepared directory's name: the source and a hash of every setting it depends on."""
    import json

    h = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:8]
    return f"{source_slug(data['source'])}-n{data['points']}-{h}"


def download_resumable(url: str, dest: Path, timeout: float = 60.0) -> Path:
    """Download `url` to `dest`, resuming an interrupted download (``<dest>.part`` is kept and
    an HTTP Range request continues it; a server that ignores Range restarts it). The size is
    checked against Content-Length before the file is renamed into place."""
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    req = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)
    except OSError as e:
        if have and isinstance(e, urllib.error.HTTPError) and e.code == 416:
            # nothing from byte `have` on: the part is whole (killed before its rename)
            size = (e.headers.get("Content-Range") or "").rpartition("/")[2]
            if size.isdigit() and int(size) == have:
                return _finish_download(part, dest)
            part.unlink()  # longer than the file: not a prefix of it, start over
            return download_resumable(url, dest, timeout)
        raise DataError(
            f"cannot download {url}: {e}. Check the network, or place the file at {dest} by hand "
            "(its sha256 is recorded on first use)"
        ) from None
    with resp:
        status = getattr(resp, "status", None) or resp.getcode()
        resumed = have and status == 206
        length = resp.headers.get("Content-Length")
        total = (have if resumed else 0) + int(length) if length else None
        try:
            with open(part, "ab" if resumed else "wb") as out:
                for chunk in iter(lambda: resp.read(1 << 20), b""):
                    out.write(chunk)
        except (OSError, http.client.HTTPException) as e:
            # the bytes received so far stay in <dest>.part: the next run continues from there
            raise DataError(
                f"download of {url} was interrupted after {part.stat().st_size:,} bytes "
                f"({type(e).__name__}); rerun to resume it"
            ) from None
    got = part.stat().st_size
    if total is not None and got != total:
        raise DataError(f"download of {url} is incomplete ({got:,} of {total:,} bytes); rerun to resume it")
    return _finish_download(part, dest)


def _finish_download(part: Path, dest: Path) -> Path:
    sync_file(part)
    part.replace(dest)
    fsync_dir(dest.parent)
    return dest


def modelnet_tree(name: str, cache: Path, expect_counts: bool = True, url: str | None = None) -> Path:
    """The extracted ModelNet tree (``<class>/{train,test}/*.off``), downloaded and extracted once
    (`downloaded_tree`), checked against the official counts when `expect_counts`."""
    info = MODELNET[name]

    def check(root: Path) -> None:
        classes, files = list_meshes(root)
        got = (len(classes), len(files["train"]), len(files["test"]))
        if got != (info.classes, info.train, info.test):
            raise DataError(
                f"{root}: {got[0]} classes, {got[1]} train and {got[2]} test meshes; the official "
                f"{name} has {info.classes}, {info.train} and {info.test}"
            )

    # ModelNet40 holds ~12,400 files and folders; the default byte limit (20 GiB) covers its OFF text
    return downloaded_tree(url or info.url, info.top, cache, check if expect_counts else None, max_members=20_000)


def downloaded_tree(
    url: str, top: str, cache: Path, check: Callable[[Path], None] | None, max_members: int = 20_000
) -> Path:
    """The folder `top` of the archive at `url`, downloaded (resumably) and extracted once into
    `cache`. No official digest is published for these archives, so the archive's sha256 is
    recorded in ``<cache>/<zip>.sha256`` the first time it is seen and every later use checks it
    (dagzoo.data.download.fetch verifies it before extraction). The record is written only once
    the extracted tree passes `check` (the official counts), so a damaged first copy is never the
    reference later downloads are held to."""
    import json

    from dagzoo.data.download import ChecksumMismatch, RemoteFile, fetch_extracted

    cache = Path(cache)
    cache.mkdir(parents=True, exist_ok=True)
    archive = cache / url.rstrip("/").rsplit("/", 1)[-1]
    record = archive.with_name(archive.name + ".sha256")
    if not archive.exists():
        download_resumable(url, archive)
    first_use = not record.exists()  # no digest is published: the first good copy's is recorded
    sha256 = file_digest(archive) if first_use else json.loads(record.read_text())["sha256"]
    try:
        members = fetch_extracted(RemoteFile(url, sha256=sha256), cache, max_members=max_members)
    except ChecksumMismatch as e:
        raise DataError(
            f"{e} (the expected sha256 is the one {record} recorded when the archive was first "
            "used; delete that file too if the source changed on purpose)"
        ) from None
    inside = [m for m in members if m.startswith(f"{top}/")]
    if not inside:
        tops = sorted({m.split("/", 1)[0] for m in members})
        raise DataError(f"{archive} holds no folder {top}/ (it holds {', '.join(tops)[:200]}); delete it and retry")
    # <cache>/<name>.extracted/<top>/...: the member's path minus everything below <top>
    first = inside[0]
    root = members[first].parents[len(Path(first).parts) - 2]
    if check is not None:
        try:
            check(root)
        except DataError as e:
            raise DataError(f"{e}; delete {archive} and {root.parent} and retry") from None
    if first_use:
        atomic_write_json(record, {"sha256": sha256, "url": url, "bytes": archive.stat().st_size})
    return root


def list_meshes(root: Path) -> tuple[list[str], dict[str, list[tuple[Path, int]]]]:
    """(sorted class names, {split: [(file, label)]}) of a tree in ModelNet's layout."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: mesh folder not found")
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith((".", "__")))
    if not classes:
        raise DataError(f"{root}: no class folders (expected <class>/train/*.off and <class>/test/*.off)")
    files: dict[str, list[tuple[Path, int]]] = {"train": [], "test": []}
    for label, name in enumerate(classes):
        for split in ("train", "test"):
            d = root / name / split
            found = sorted(p for p in d.glob("*") if p.suffix.lower() in MESH_SUFFIXES) if d.is_dir() else []
            if not found:
                raise DataError(
                    f"{d}: class {name!r} has no {split} meshes (expected {d}/*.off); every class "
                    "needs train and test files"
                )
            files[split] += [(p, label) for p in found]
    return classes, files


# ---------------------------------------------------------------------------------- prepare
def stratified_val(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Indices of the validation part of train: round(fraction x n_c) of every class c (at least
    one when fraction > 0 and the class has two or more), drawn by a seeded permutation."""
    rng = np.random.default_rng(seed)
    val = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        k = min(len(idx) - 1, max(1, round(fraction * len(idx)))) if fraction > 0 else 0
        val += sorted(rng.permutation(idx)[:k].tolist())
    return np.array(sorted(val), np.int64)


def _clouds(
    files: list[Path], points: int, surface: int, seed: int, normals: bool, batch: int = 64, desc: str = ""
) -> tuple[np.ndarray, np.ndarray | None]:
    """Surface samples of every mesh -> FPS to `points` -> unit sphere; each file's samples depend
    on (seed, its position) alone."""
    import torch
    from tqdm.auto import tqdm

    out = np.empty((len(files), points, 3), np.float32)
    nout = np.empty((len(files), points, 3), np.float32) if normals else None
    for start in tqdm(range(0, len(files), batch), desc=desc, leave=False, disable=None):
        chunk = files[start : start + batch]
        raw, rawn = [], []
        for j, f in enumerate(chunk):
            v, t = read_mesh(f)
            if len(t) == 0:
                raise DataError(f"{f}: the mesh has no faces")
            try:
                p, n = sample_surface(v, t, surface, np.random.default_rng([seed, start + j]), normals)
            except DataError as e:
                raise DataError(f"{f}: {e}") from None
            distinct = len(np.unique(p.round(9), axis=0))
            if distinct < points:
                raise DataError(
                    f"{f}: only {distinct} distinct surface points, fewer than the {points} requested "
                    "(a degenerate mesh)"
                )
            raw.append(p)
            rawn.append(n)
        x = torch.from_numpy(np.stack(raw))
        idx = farthest_point_sampling(x, points)
        picked = torch.gather(x, 1, idx[..., None].expand(-1, -1, 3)).numpy()
        out[start : start + len(chunk)] = normalize_unit_sphere(picked)
        if normals:
            nn_ = torch.from_numpy(np.stack(rawn))
            nout[start : start + len(chunk)] = torch.gather(nn_, 1, idx[..., None].expand(-1, -1, 3)).numpy()
    return out, nout


def prepare_points(
    data: dict, out: Path, cache: Path | None = None, modelnet_url: str | None = None, expect_counts: bool = True
) -> dict:
    """Prepare the clouds of `data` (the config's points.data) into `out`; manifest.json last."""
    out = Path(out)
    source = data["source"]
    check_source(source)
    points = int(data["points"])
    surface = int(data.get("surface_samples") or 4 * points)
    if surface < points:
        raise ConfigError(
            f"points.data.surface_samples: {surface} is fewer than points ({points}): farthest "
            "point sampling picks N distinct surface samples (no sampling with replacement)"
        )
    cache = Path(cache) if cache else out.parent / "downloads"
    if source == "shapes":
        sh = data.get("shapes") or {}
        tr, te, sseed = sh.get("train_per_class", 40), sh.get("test_per_class", 20), sh.get("seed", 0)
        root = generate_shapes(cache / f"shapes-{tr}-{te}-s{sseed}", tr, te, sseed)
    elif source in MODELNET:
        root = modelnet_tree(source, cache, expect_counts=expect_counts, url=modelnet_url)
    else:
        root = Path(source[7:]).expanduser()
    classes, files = list_meshes(root)
    seed = int(data.get("seed", 0))
    train_labels = np.array([lab for _, lab in files["train"]], np.int64)
    val_idx = stratified_val(train_labels, float(data.get("val_fraction", 0.1)), seed)
    is_val = np.zeros(len(train_labels), bool)
    is_val[val_idx] = True
    split_files = {
        "train": [f for (f, _), v in zip(files["train"], is_val) if not v],
        "val": [f for (f, _), v in zip(files["train"], is_val) if v],
        "test": [f for f, _ in files["test"]],
    }
    split_labels = {
        "train": train_labels[~is_val],
        "val": train_labels[is_val],
        "test": np.array([lab for _, lab in files["test"]], np.int64),
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "manifest.json").unlink(missing_ok=True)  # nothing looks finished until it is
    normals = bool(data.get("normals", False))
    records = {}
    for k, split in enumerate(SPLITS):
        # every split has its own sampling stream, so adding validation never shifts test clouds
        x, n = _clouds(split_files[split], points, surface, seed * 3 + k, normals, desc=f"prepare {split}")
        arrays = {"points": x, "labels": split_labels[split], **({"normals": n} if normals else {})}
        for name, arr in arrays.items():
            path = out / f"{split}_{name}.npy"
            atomic_save_npy(path, arr)
            records[path.name] = file_record(path)
    rel = lambda p: Path(p).relative_to(root).as_posix()  # noqa: E731
    manifest = {
        "source": source,
        "root": str(root),
        "points": points,
        "surface_samples": surface,
        "normals": normals,
        "seed": seed,
        "classes": classes,
        "splits": {s: len(split_files[s]) for s in SPLITS},
        "files": {s: [rel(f) for f in split_files[s]] for s in SPLITS},
        "val": {
            "fraction": float(data.get("val_fraction", 0.1)),
            "seed": seed,
            "stratified": True,
            "train_indices": val_idx.tolist(),
        },
        "arrays": records,
    }
    atomic_write_json(out / "manifest.json", manifest)
    return manifest


#: what PointData reads of a prepared directory's manifest
MANIFEST_SCHEMA = {
    "type": "object",
    "required": ["classes", "points"],
    "properties": {
        "classes": {"type": "array", "items": {"type": "string"}, "minItems": 1},
        "points": {"type": "integer", "minimum": 1},
        "arrays": FILE_RECORDS,
        "files": {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "string"}}},
    },
}


class PreparedClouds:
    """A prepared directory of clouds: its manifest (checked against `schema`) and its .npy
    arrays, each checked against the manifest's size and sha256 before use."""

    #: what to do about a missing or damaged file
    redo = "rerun the data's prepare stage"
    schema: dict = {}

    def __init__(self, directory: Path):
        self.dir = Path(directory)
        self.manifest = read_manifest(self.dir / "manifest.json", self.redo, self.schema)
        self.points = int(self.manifest["points"])

    def _load(self, name: str, dtypes) -> np.ndarray:
        path = self.dir / name
        check_prepared_file(path, self.manifest.get("arrays", {}).get(name), self.redo)
        return load_npy(path, dtypes, self.redo)

    def clouds(self, split: str) -> np.ndarray:
        return self._load(f"{split}_points.npy", (np.float32,))


class PointData(PreparedClouds):
    """A prepared directory: clouds, labels and class names per split, checked against the
    manifest before use."""

    redo = "rerun the points_prepare stage"
    schema = MANIFEST_SCHEMA

    def __init__(self, directory: Path):
        super().__init__(directory)
        self.classes: list[str] = list(self.manifest["classes"])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def labels(self, split: str) -> np.ndarray:
        return self._load(f"{split}_labels.npy", (np.int64,))

    def files(self, split: str) -> list[str]:
        return list(self.manifest["files"][split])
