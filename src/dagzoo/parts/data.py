"""Part-segmentation data in ShapeNetPart's layout -> fixed-size labelled clouds + a manifest.

The layout (Yi et al. 2016; the `_normal` release every segmentation paper reads):

- ``synsetoffset2category.txt``: one ``<Category> <folder>`` per line;
- ``<folder>/<shape>.txt``: one point per row, ``x y z nx ny nz part`` (the part a global label);
- ``train_test_split/shuffled_{train,val,test}_file_list.json``: ``shape_data/<folder>/<shape>``.

Sources (`data.source`):

- ``shapenetpart``: the Stanford archive (674 MB), downloaded once; no digest is published, so
  its sha256 is recorded on first use and checked on every later one, and extraction is the
  ModelNet one (safe paths, member and size limits). Its 16 categories' parts are ShapeNetPart's
  50 global labels, contiguous per category in alphabetical order (`SHAPENETPART_PARTS`).
- ``folder:<path>``: any tree in that layout; a ``part_names.json`` beside the category file
  ({category: [part names in label order]}) names its parts, else they are ShapeNetPart's.
- ``shapes``: meshes generated here, 5 categories of 2-3 parts each, the parts chosen so that
  height alone does not separate them (a mug's handle spans its body's height; an aeroplane's
  wings sit at its fuselage's height; a lamp's shade surrounds its stem's top). Each point is
  sampled on a mesh face and carries that face's part. They are written in the layout above
  (y up, as ShapeNetPart) and prepared by exactly the code that reads the real data.

Every cloud is turned z-up (a rotation of +90 degrees about x: ShapeNetPart is y-up; the family's
up axis is z everywhere), `points` of its points are drawn by a seeded permutation (all of them
plus draws with replacement when a shape has fewer), and it is centred and scaled into the unit
sphere. Everything is read and checked before anything is written; the prepared directory holds
``{split}_points.npy`` (float32 (n, N, 3)), ``{split}_parts.npy`` (int64 (n, N): indices into the
manifest's part list), ``{split}_category.npy`` (int64 (n,)) and ``manifest.json``, written last.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from pathlib import Path

import numpy as np

from dagzoo.data.integrity import FILE_RECORDS, file_record
from dagzoo.errors import ConfigError, DataError
from dagzoo.io import atomic_save_npy, atomic_write_json
from dagzoo.points.data import (
    PreparedClouds,
    _prism,  # the closed n-gon prism / cone of the shapes generator
    downloaded_tree,
    generated_tree,
    normalize_unit_sphere,
    source_slug,
    surface_points,
)

SPLITS = ("train", "val", "test")
CATEGORY_FILE = "synsetoffset2category.txt"
PART_NAMES_FILE = "part_names.json"
SPLIT_DIR = "train_test_split"

SHAPENETPART_URL = "https://shapenet.cs.stanford.edu/media/shapenetcore_partanno_segmentation_benchmark_v0_normal.zip"
SHAPENETPART_TOP = "shapenetcore_partanno_segmentation_benchmark_v0_normal"
#: the official split: 12,137 train, 1,870 validation and 2,874 test shapes
SHAPENETPART_COUNTS = {"train": 12137, "val": 1870, "test": 2874}
#: parts per category; the global labels run contiguously over the categories in this order
SHAPENETPART_PARTS = {
    "Airplane": 4,
    "Bag": 2,
    "Cap": 2,
    "Car": 4,
    "Chair": 4,
    "Earphone": 3,
    "Guitar": 3,
    "Knife": 2,
    "Lamp": 4,
    "Laptop": 2,
    "Motorbike": 6,
    "Mug": 2,
    "Pistol": 3,
    "Rocket": 3,
    "Skateboard": 3,
    "Table": 3,
}
#: ShapeNetPart's rows: x y z nx ny nz part
COLUMNS = 7

#: the generated categories and their parts, in label order
GENERATED_PARTS = {
    "Airplane": ("fuselage", "wing", "tail"),
    "Chair": ("seat", "back", "leg"),
    "Lamp": ("base", "stem", "shade"),
    "Mug": ("body", "handle"),
    "Table": ("top", "leg"),
}


def check_source(source: str) -> None:
    if source in ("shapes", "shapenetpart") or (source.startswith("folder:") and len(source) > 7):
        return
    raise ConfigError(
        f"parts.data.source: unknown data source {source!r}; allowed: shapes, shapenetpart, folder:<path>"
    )


def data_slug(data: dict) -> str:
    """The prepared directory's name: the source and a hash of every setting it depends on."""
    h = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:8]
    return f"{source_slug(data['source'])}-n{data['points']}-{h}"


# ---------------------------------------------------------------------------------- y up <-> z up
def z_up(xyz: np.ndarray) -> np.ndarray:
    """ShapeNetPart's y-up coordinates turned z-up: a rotation of +90 degrees about x,
    (x, y, z) -> (x, -z, y)."""
    return np.stack([xyz[..., 0], -xyz[..., 2], xyz[..., 1]], -1)


def y_up(xyz: np.ndarray) -> np.ndarray:
    """The inverse of `z_up`: (x, y, z) -> (x, z, -y)."""
    return np.stack([xyz[..., 0], xyz[..., 2], -xyz[..., 1]], -1)


# ---------------------------------------------------------------------------------- generated shapes
def _box(center, dims):
    """A closed axis-aligned box (vertices, quads)."""
    v = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], float) * np.asarray(dims) / 2
    f = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    return v + np.asarray(center, float), f


def _cylinder(center, r, h, top_r=None, sides=16):
    """A closed cylinder (or frustum, top radius `top_r`) along z centred at `center`."""
    v, f = _prism(sides, r, h, top_r)
    return v + np.asarray(center, float), f


def _half_torus(center, big, small, nu=12, nv=8):
    """An open tube bent through half a circle in the x-z plane on the +x side of `center` (a
    mug's handle): radius `big` to the tube's axis, tube radius `small`."""
    a = np.linspace(-np.pi / 2, np.pi / 2, nu)  # around the handle's arc
    b = np.linspace(0, 2 * np.pi, nv, endpoint=False)  # around the tube
    aa, bb = np.meshgrid(a, b, indexing="ij")
    ring = big + small * np.cos(bb)
    v = np.stack([ring * np.cos(aa), small * np.sin(bb), ring * np.sin(aa)], -1).reshape(-1, 3)
    f = [
        (i * nv + j, (i + 1) * nv + j, (i + 1) * nv + (j + 1) % nv, i * nv + (j + 1) % nv)
        for i in range(nu - 1)
        for j in range(nv)
    ]
    return v + np.asarray(center, float), f


def _legs(half_x, half_y, height, thick):
    """Four legs under the corners of a rectangle, from the floor (z = 0) up to `height`."""
    return [_box((sx * half_x, sy * half_y, height / 2), (thick, thick, height)) for sx in (-1, 1) for sy in (-1, 1)]


def make_part_shape(category: str, rng: np.random.Generator) -> list[tuple[np.ndarray, list, int]]:
    """The pieces (vertices, polygons, part index within the category) of one random instance of
    a generated category, z up, then turned about z by a random angle."""
    u = lambda lo, hi: float(rng.uniform(lo, hi))  # noqa: E731
    pieces: list[tuple[np.ndarray, list, int]] = []

    def add(part: int, *meshes):
        pieces.extend((v, f, part) for v, f in meshes)

    if category == "Table":
        length, width, height, top = u(1.2, 2.0), u(0.6, 1.1), u(0.6, 1.0), u(0.05, 0.12)
        add(0, _box((0, 0, height - top / 2), (length, width, top)))
        thick = u(0.06, 0.14)
        inset = u(0.0, 0.15)
        add(1, *_legs(length / 2 - thick / 2 - inset, width / 2 - thick / 2 - inset, height - top, thick))
    elif category == "Chair":
        width, depth, seat_h, seat_t = u(0.45, 0.7), u(0.45, 0.7), u(0.4, 0.6), u(0.05, 0.1)
        back_h, back_t = u(0.4, 0.8), u(0.04, 0.08)
        add(0, _box((0, 0, seat_h - seat_t / 2), (width, depth, seat_t)))
        add(1, _box((0, -depth / 2 + back_t / 2, seat_h + back_h / 2), (width, back_t, back_h)))
        thick = u(0.04, 0.08)
        add(2, *_legs(width / 2 - thick / 2, depth / 2 - thick / 2, seat_h - seat_t, thick))
    elif category == "Lamp":
        base_r, base_h = u(0.2, 0.4), u(0.04, 0.1)
        stem_r, stem_top = u(0.02, 0.045), u(0.8, 1.4)
        shade_h, shade_low, shade_high = u(0.25, 0.45), u(0.25, 0.45), u(0.08, 0.2)
        add(0, _cylinder((0, 0, base_h / 2), base_r, base_h))
        add(1, _cylinder((0, 0, base_h + (stem_top - base_h) / 2), stem_r, stem_top - base_h, sides=8))
        # the shade hangs over the stem's top: the two share a band of heights
        add(2, _cylinder((0, 0, stem_top - shade_h / 3), shade_low, shade_h, top_r=shade_high))
    elif category == "Mug":
        r, h = u(0.3, 0.45), u(0.6, 1.0)
        add(0, _cylinder((0, 0, h / 2), r, h, sides=20))
        big = u(0.18, 0.3) * h
        add(1, _half_torus((r, 0, h / 2 + u(-0.05, 0.05) * h), big, u(0.03, 0.06)))
    elif category == "Airplane":
        length, radius = u(1.6, 2.2), u(0.08, 0.14)
        fuselage, faces = _cylinder((0, 0, 0), radius, length, sides=12)
        fuselage = fuselage[:, [2, 1, 0]]  # along x
        add(0, (fuselage, [tuple(reversed(f)) for f in faces]))  # a reflection: keep faces outward
        span, chord = u(1.4, 2.2), u(0.25, 0.4)
        add(1, _box((u(-0.1, 0.15) * length, 0, 0), (chord, span, 0.03)))
        fin_h, fin_c, tail_span = u(0.25, 0.4), u(0.2, 0.3), u(0.5, 0.8)
        rear = -length / 2 + fin_c / 2
        add(2, _box((rear, 0, radius + fin_h / 2), (fin_c, 0.03, fin_h)), _box((rear, 0, 0), (fin_c, tail_span, 0.03)))
    else:
        raise ValueError(category)
    theta = u(0, 2 * np.pi)  # a random rotation about the up axis (z)
    c, s = math.cos(theta), math.sin(theta)
    rot = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    return [(v @ rot.T, f, part) for v, f, part in pieces]


def labelled_surface_points(pieces, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(points, unit face normals, part of each point): n points uniform over the surface of all
    the pieces; each point's part is the part of the face it was sampled on."""
    verts, tris, parts, offset = [], [], [], 0
    for v, faces, part in pieces:
        fan = [(f[0], f[j], f[j + 1]) for f in faces for j in range(1, len(f) - 1)]
        verts.append(v)
        tris.append(np.asarray(fan, np.int64) + offset)
        parts.append(np.full(len(fan), part, np.int64))
        offset += len(v)
    v, t, part_of_face = np.vstack(verts), np.vstack(tris), np.concatenate(parts)
    pts, face = surface_points(v, t, n, rng)
    a, b, c = v[t[face, 0]], v[t[face, 1]], v[t[face, 2]]
    cr = np.cross(b - a, c - a)
    normals = cr / np.maximum(np.linalg.norm(cr, axis=1, keepdims=True), 1e-12)
    return pts, normals, part_of_face[face]


def _generator_digest() -> str:
    """A hash of the code that makes the generated shapes: a cached tree made by other code is
    made again, not reused."""
    import inspect

    fns = (_box, _cylinder, _half_torus, _legs, _prism, make_part_shape, labelled_surface_points, surface_points)
    fns += (y_up, write_part_file, generate_part_shapes)
    source = "".join(inspect.getsource(f) for f in fns) + repr(GENERATED_PARTS)
    return hashlib.sha256(source.encode()).hexdigest()


def write_part_file(path: Path, xyz: np.ndarray, normals: np.ndarray, labels: np.ndarray) -> None:
    """One shape in ShapeNetPart's row format, ``x y z nx ny nz part``."""
    rows = np.column_stack([xyz, normals])
    text = "\n".join(
        f"{a:.6f} {b:.6f} {c:.6f} {d:.6f} {e:.6f} {f:.6f} {int(lab)}" for (a, b, c, d, e, f), lab in zip(rows, labels)
    )
    Path(path).write_text(text + "\n", encoding="ascii")


def generate_part_shapes(root: Path, per_split: dict[str, int], points_per_shape: int, seed: int) -> Path:
    """The generated categories as a tree in ShapeNetPart's layout under `root` (y up, global part
    labels, a part_names.json), written into a staging folder and renamed into place; its
    `.complete` marker holds the generator's digest."""

    def write(staging: Path) -> None:
        lists: dict[str, list[str]] = {s: [] for s in SPLITS}
        first_label = 0
        for ci, (category, parts) in enumerate(GENERATED_PARTS.items()):
            folder = category.lower()
            (staging / folder).mkdir()
            for si, split in enumerate(SPLITS):
                for i in range(per_split[split]):
                    # each file is a function of (seed, category, split, i) alone
                    rng = np.random.default_rng([seed, ci, si, i])
                    xyz, nrm, part = labelled_surface_points(make_part_shape(category, rng), points_per_shape, rng)
                    name = f"{folder}_{split}_{i:04d}"
                    write_part_file(staging / folder / f"{name}.txt", y_up(xyz), y_up(nrm), part + first_label)
                    lists[split].append(f"shape_data/{folder}/{name}")
            first_label += len(parts)
        (staging / CATEGORY_FILE).write_text("".join(f"{c}\t{c.lower()}\n" for c in GENERATED_PARTS))
        (staging / PART_NAMES_FILE).write_text(json.dumps({c: list(p) for c, p in GENERATED_PARTS.items()}, indent=1))
        (staging / SPLIT_DIR).mkdir()
        for split in SPLITS:
            order = np.random.default_rng([seed, 99, SPLITS.index(split)]).permutation(len(lists[split]))
            (staging / SPLIT_DIR / f"shuffled_{split}_file_list.json").write_text(
                json.dumps([lists[split][i] for i in order])
            )

    return generated_tree(Path(root), _generator_digest(), write)


# ---------------------------------------------------------------------------------- the layout
def read_categories(root: Path) -> dict[str, str]:
    """{folder: category} of ``synsetoffset2category.txt``."""
    path = Path(root) / CATEGORY_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        why = getattr(e, "strerror", None) or e
        raise DataError(f"{path}: cannot be read ({why}); is {root} in ShapeNetPart's layout?") from None
    folders: dict[str, str] = {}
    for no, line in enumerate(text.splitlines(), 1):
        toks = line.split()
        if not toks:
            continue
        if len(toks) != 2:
            raise DataError(f"{path}:{no}: expected '<Category> <folder>', got {line.strip()[:80]!r}")
        category, folder = toks
        if folder in folders:
            raise DataError(f"{path}:{no}: folder {folder!r} is listed twice")
        folders[folder] = category
    if not folders:
        raise DataError(f"{path}: no categories")
    return folders


def category_parts(root: Path, categories: list[str]) -> list[tuple[str, list[str], int]]:
    """(category, its part names, its first global label) per category, in label order: from
    part_names.json when the tree has one, else ShapeNetPart's."""
    path = Path(root) / PART_NAMES_FILE
    if path.exists():
        try:
            names = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise DataError(f"{path}: not valid JSON ({e})") from None
        ok = isinstance(names, dict) and all(
            isinstance(v, list) and v and all(isinstance(p, str) for p in v) for v in names.values()
        )
        if not ok:
            raise DataError(f"{path}: expected {{category: [part name, ...]}} with at least one part each")
    else:
        names = {c: [f"part{i}" for i in range(k)] for c, k in SHAPENETPART_PARTS.items()}
    missing = [c for c in categories if c not in names]
    if missing:
        raise DataError(
            f"{root}: no part list for categories {', '.join(missing)}; add {PART_NAMES_FILE} "
            "({category: [part names in label order]}) or use ShapeNetPart's category names"
        )
    out, first = [], 0
    for c in names:  # the global labels run over the listed categories, in their order
        if c in categories:
            out.append((c, list(names[c]), first))
        first += len(names[c])
    return out


def split_lists(root: Path, folders: dict[str, str]) -> dict[str, list[tuple[str, Path]]]:
    """{split: [(category, shape file)]} of the tree's train_test_split lists."""
    out = {}
    for split in SPLITS:
        path = Path(root) / SPLIT_DIR / f"shuffled_{split}_file_list.json"
        try:
            entries = json.loads(path.read_text(encoding="utf-8"))
        except OSError as e:
            raise DataError(f"{path}: cannot be read ({e.strerror}); every split needs its list") from None
        except ValueError as e:
            raise DataError(f"{path}: not valid JSON ({e})") from None
        if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
            raise DataError(f"{path}: expected a list of 'shape_data/<folder>/<shape>' strings")
        shapes = []
        for i, entry in enumerate(entries):
            parts = entry.split("/")
            if len(parts) != 3 or parts[1] not in folders or not re.fullmatch(r"[A-Za-z0-9_.-]+", parts[2]):
                raise DataError(
                    f"{path}: entry {i} ({entry[:80]!r}) is not 'shape_data/<folder>/<shape>' with a folder of "
                    f"{CATEGORY_FILE}"
                )
            shapes.append((folders[parts[1]], Path(root) / parts[1] / f"{parts[2]}.txt"))
        out[split] = shapes
    return out


def read_part_file(path: Path, allowed: range) -> tuple[np.ndarray, np.ndarray]:
    """(xyz float64 (n, 3), global part labels int64 (n,)) of one shape file; a row with another
    number of columns, a non-numeric value, a part label outside `allowed` (its category's labels)
    or an empty shape is a DataError naming the file and the line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="ascii")
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not an ASCII part file (byte {e.start})") from None
    except OSError as e:
        raise DataError(f"{path}: cannot be read ({e.strerror})") from None
    lines = text.splitlines()
    rows = [no for no, line in enumerate(lines, 1) if line.strip()]
    if not rows:
        raise DataError(f"{path}:1: an empty shape (no points)")
    tokens = text.split()
    if len(tokens) != COLUMNS * len(rows):  # some row is short or long: find it
        for no in rows:
            got = len(lines[no - 1].split())
            if got != COLUMNS:
                raise DataError(f"{path}:{no}: {got} columns, expected {COLUMNS} (x y z nx ny nz part)")
    try:
        values = np.array(tokens, dtype=np.float64).reshape(len(rows), COLUMNS)
    except ValueError:
        for no in rows:
            try:
                [float(t) for t in lines[no - 1].split()]
            except ValueError:
                raise DataError(f"{path}:{no}: a non-numeric value in {lines[no - 1].strip()[:80]!r}") from None
        raise
    bad = ~np.isfinite(values).all(axis=1)
    labels = values[:, 6]
    bad |= (labels != np.round(labels)) | (labels < allowed.start) | (labels >= allowed.stop)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{path}:{rows[i]}: part label {lines[rows[i] - 1].split()[6]} is not one of this category's parts "
            f"({allowed.start}..{allowed.stop - 1})"
            if np.isfinite(values[i]).all()
            else f"{path}:{rows[i]}: a non-finite value (nan or inf)"
        )
    return values[:, :3], labels.astype(np.int64)


def _pick(n: int, points: int, rng: np.random.Generator) -> np.ndarray:
    """`points` row indices of a shape of n points: a seeded permutation's first `points`; a shape
    with fewer keeps all of its points and draws the rest with replacement."""
    if n >= points:
        return rng.permutation(n)[:points]
    return np.concatenate([np.arange(n), rng.integers(0, n, points - n)])


def read_tree(root: Path, points: int, seed: int) -> dict:
    """Every split of a tree in ShapeNetPart's layout, checked whole before anything is written:
    {"categories", "parts" [(category, name, global label)], "splits": {split: (clouds, part
    indices, category indices, shape names)}}."""
    from tqdm.auto import tqdm

    folders = read_categories(root)
    listed = split_lists(root, folders)
    categories = sorted({c for shapes in listed.values() for c, _ in shapes})
    if not categories:
        raise DataError(f"{root}: the split lists name no shapes")
    per_category = category_parts(root, categories)
    parts = [(c, name, first + i) for c, names, first in per_category for i, name in enumerate(names)]
    index_of_label = {label: i for i, (_, _, label) in enumerate(parts)}
    labels_of = {c: range(first, first + len(names)) for c, names, first in per_category}
    cat_index = {c: i for i, c in enumerate(categories)}
    lookup = np.full(max(index_of_label) + 1, -1, np.int64)
    for label, i in index_of_label.items():
        lookup[label] = i
    splits = {}
    for si, split in enumerate(SPLITS):
        shapes = listed[split]
        clouds = np.empty((len(shapes), points, 3), np.float32)
        labels = np.empty((len(shapes), points), np.int64)
        cats = np.array([cat_index[c] for c, _ in shapes], np.int64)
        for i, (c, path) in enumerate(tqdm(shapes, desc=f"read {split}", leave=False, disable=None)):
            xyz, lab = read_part_file(path, labels_of[c])
            keep = _pick(len(xyz), points, np.random.default_rng([seed, si, i]))
            clouds[i] = normalize_unit_sphere(z_up(xyz[keep]))
            labels[i] = lookup[lab[keep]]
        names = [f"{path.parent.name}/{path.stem}" for _, path in shapes]
        splits[split] = (clouds, labels, cats, names)
    return {"categories": categories, "parts": parts, "splits": splits}


# ---------------------------------------------------------------------------------- prepare
def shapenetpart_tree(cache: Path, expect_counts: bool = True, url: str | None = None) -> Path:
    """The extracted ShapeNetPart tree, downloaded once (points.data.downloaded_tree: the
    archive's sha256 recorded on first use and checked on every later one)."""

    def check(root: Path) -> None:
        got = {s: len(v) for s, v in split_lists(root, read_categories(root)).items()}
        if got != SHAPENETPART_COUNTS:
            raise DataError(
                f"{root}: its split lists hold {got['train']}, {got['val']} and {got['test']} shapes; the official "
                f"ShapeNetPart has {SHAPENETPART_COUNTS['train']}, {SHAPENETPART_COUNTS['val']} and "
                f"{SHAPENETPART_COUNTS['test']}"
            )

    # 16,881 shape files, 16 folders, the split lists and the category file
    return downloaded_tree(url or SHAPENETPART_URL, SHAPENETPART_TOP, cache, check if expect_counts else None, 20_000)


def source_tree(data: dict, cache: Path, url: str | None = None, expect_counts: bool = True) -> Path:
    source = data["source"]
    check_source(source)
    if source == "shapes":
        sh = data.get("shapes") or {}
        per_split = {s: int(sh.get(f"{s}_per_category", d)) for s, d in zip(SPLITS, (40, 5, 20))}
        file_points, sseed = int(sh.get("points_per_shape", 2048)), int(sh.get("seed", 0))
        name = f"parts-{per_split['train']}-{per_split['val']}-{per_split['test']}-p{file_points}-s{sseed}"
        return generate_part_shapes(Path(cache) / name, per_split, file_points, sseed)
    if source == "shapenetpart":
        return shapenetpart_tree(cache, expect_counts=expect_counts, url=url)
    root = Path(source[7:]).expanduser()
    if not root.is_dir():
        raise DataError(f"parts.data.source: folder not found: {root}")
    return root


def prepare_parts(data: dict, out: Path, cache: Path | None = None, url: str | None = None, expect_counts=True) -> dict:
    """Prepare the labelled clouds of `data` (the config's parts.data) into `out`; manifest.json
    last, and nothing at all when any shape file is malformed."""
    out = Path(out)
    cache = Path(cache) if cache else out.parent / "downloads"
    root = source_tree(data, cache, url=url, expect_counts=expect_counts)
    points, seed = int(data["points"]), int(data.get("seed", 0))
    tree = read_tree(root, points, seed)  # every file read and checked first
    out.mkdir(parents=True, exist_ok=True)
    (out / "manifest.json").unlink(missing_ok=True)  # nothing looks finished until it is
    records = {}
    for split in SPLITS:
        clouds, labels, cats, _ = tree["splits"][split]
        for name, arr in (("points", clouds), ("parts", labels), ("category", cats)):
            path = out / f"{split}_{name}.npy"
            atomic_save_npy(path, arr)
            records[path.name] = file_record(path)
    manifest = {
        "source": data["source"],
        "root": str(root),
        "points": points,
        "seed": seed,
        "up": "z (ShapeNetPart's y-up rotated +90 degrees about x)",
        "categories": tree["categories"],
        "parts": [{"category": c, "name": n, "label": lab} for c, n, lab in tree["parts"]],
        "splits": {s: len(tree["splits"][s][3]) for s in SPLITS},
        "files": {s: tree["splits"][s][3] for s in SPLITS},
        "arrays": records,
    }
    atomic_write_json(out / "manifest.json", manifest)
    return manifest


#: what PartData reads of a prepared directory's manifest
MANIFEST_SCHEMA = {
    "type": "object",
    "required": ["categories", "parts", "points"],
    "properties": {
        "categories": {"type": "array", "items": {"type": "string"}, "minItems": 1},
        "parts": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["category", "name"],
                "properties": {"category": {"type": "string"}, "name": {"type": "string"}},
            },
        },
        "points": {"type": "integer", "minimum": 1},
        "arrays": FILE_RECORDS,
    },
}


class PartData(PreparedClouds):
    """A prepared directory: clouds, per-point part indices and per-shape categories per split,
    checked against the manifest before use."""

    redo = "rerun the parts_prepare stage"
    schema = MANIFEST_SCHEMA

    def __init__(self, directory: Path):
        super().__init__(directory)
        self.categories: list[str] = list(self.manifest["categories"])
        self.parts: list[dict] = list(self.manifest["parts"])
        #: the part indices of each category, in category order
        self.parts_of: list[list[int]] = [
            [i for i, p in enumerate(self.parts) if p["category"] == c] for c in self.categories
        ]
        if not all(self.parts_of):
            empty = self.categories[[len(p) for p in self.parts_of].index(0)]
            raise DataError(f"{self.dir / 'manifest.json'}: category {empty!r} has no parts; {self.redo}")

    @property
    def num_parts(self) -> int:
        return len(self.parts)

    @property
    def num_categories(self) -> int:
        return len(self.categories)

    def part_names(self) -> list[str]:
        return [f"{p['category']}/{p['name']}" for p in self.parts]

    def labels(self, split: str) -> np.ndarray:
        return self._load(f"{split}_parts.npy", (np.int64,))

    def category(self, split: str) -> np.ndarray:
        return self._load(f"{split}_category.npy", (np.int64,))
