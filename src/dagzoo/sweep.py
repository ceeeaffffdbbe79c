"""Sweeps: an experiment that carries ``sweep:`` stands for one experiment per point of its sweep.

    transformer:
      model: transformer
      steps: 250
      sweep:
        grid: {lr: [3.0e-4, 1.0e-3, 3.0e-3], d_model: [64, 128, 256]}   # every combination
        zip: {warmup_steps: [10, 20]}                                    # side by side, equal lengths

``grid`` takes the cartesian product of its lists, ``zip`` walks its lists together; with both,
every grid point meets every zip row. A key is a key path into the experiment (``a.b`` sets
``b`` inside the mapping ``a``). Each point becomes an experiment named
``<name>@<key>=<value>,...`` (the key's last part, unless two swept keys share it), in the
written order, before the config is validated: every expanded experiment is validated like a
written one, and an error in one names the sweep key and value that made it (`origin_message`).

The name alone says what was swept (`parse_name`), so the report, MLflow and a results tree need
no other record of the sweep.
"""

from __future__ import annotations

import copy
import itertools
import re
from dataclasses import dataclass

from dagzoo.errors import ConfigError

#: a value as it appears in a name: numbers, words, lists joined by "+"
_VALUE = r"[A-Za-z0-9_.+-]+"
_KEY = r"[A-Za-z0-9_.-]+"
#: an experiment name: a plain name, optionally followed by its sweep point
NAME_PATTERN = rf"^[A-Za-z0-9][A-Za-z0-9_.-]*(@{_KEY}={_VALUE}(,{_KEY}={_VALUE})*)?$"
KINDS = ("grid", "zip")
#: experiments one sweep may expand into (a typo such as a 1000-value list fails at once)
MAX_POINTS = 10_000


@dataclass(frozen=True)
class Point:
    """One expanded experiment: the experiment it came from and its swept values."""

    base: str
    #: (kind, key path, value) per swept key, in the name's order
    values: tuple[tuple[str, str, object], ...]


def format_value(value, where: str) -> str:
    """A swept value as it reads in a name: 0.0003, 128, true, null, a list as 1+2+2."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return format(value, "g")
    if isinstance(value, str) and re.fullmatch(_VALUE, value):
        return value
    if isinstance(value, list) and value and not any(isinstance(v, (list, dict)) for v in value):
        return "+".join(format_value(v, where) for v in value)
    raise ConfigError(
        f"{where}: {value!r} cannot name an experiment; allowed: numbers, true/false, null, words of ASCII "
        "letters, digits, '_', '.', '+' and '-', or a flat list of those (sweep a mapping by its keys' paths)"
    )


def parse_value(text: str):
    """A value of a name back as a number where it is one (lists and words stay text)."""
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False, "null": None}.get(text, text)


def parse_name(name: str) -> tuple[str, dict[str, object]]:
    """(base name, {key label: value}) of an expanded experiment's name; a plain name: (name, {})."""
    base, _, point = name.partition("@")
    if not point:
        return name, {}
    values = {}
    for part in point.split(","):
        key, _, value = part.partition("=")
        values[key] = parse_value(value)
    return base, values


def _labels(paths: list[str]) -> dict[str, str]:
    """The key's last part in names, the whole path where two swept keys share a last part."""
    last = [p.rsplit(".", 1)[-1] for p in paths]
    return {p: (leaf if last.count(leaf) == 1 else p) for p, leaf in zip(paths, last)}


def _set_path(exp: dict, path: str, value, where: str) -> None:
    node = exp
    parts = path.split(".")
    for i, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{where}: {'.'.join(parts[: i + 1])} is {child!r}, not a mapping to set {path} in")
        node = child
    node[parts[-1]] = copy.deepcopy(value)


def _lists(sweep: dict, kind: str, where: str) -> dict[str, list]:
    block = sweep.get(kind, {})
    if not isinstance(block, dict):
        raise ConfigError(f"{where}.{kind}: expected a mapping of key paths to lists of values, got {block!r}")
    for key, values in block.items():
        if not isinstance(key, str) or not re.fullmatch(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*", key):
            raise ConfigError(f"{where}.{kind}: {key!r} is not a key path; allowed: keys joined by '.'")
        if key in ("model", "sweep") or key.startswith("sweep."):
            raise ConfigError(f"{where}.{kind}.{key}: cannot be swept (sweep each model as its own experiment)")
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{where}.{kind}.{key}: expected a non-empty list of values, got {values!r}")
    return block


def expand(name: str, exp: dict, where: str) -> dict[str, tuple[dict, Point]]:
    """{expanded name: (experiment, Point)} of one experiment with a ``sweep``, in order."""
    sweep = exp["sweep"]
    if not isinstance(sweep, dict) or not sweep or set(sweep) - set(KINDS):
        extra = sorted(set(sweep) - set(KINDS)) if isinstance(sweep, dict) else []
        raise ConfigError(
            f"{where}.sweep{'.' + str(extra[0]) if extra else ''}: "
            f"{'unknown key' if extra else 'expected a mapping with grid and/or zip'}; allowed: grid, zip"
        )
    grid, zipped = _lists(sweep, "grid", f"{where}.sweep"), _lists(sweep, "zip", f"{where}.sweep")
    if not grid and not zipped:
        raise ConfigError(f"{where}.sweep: sweeps nothing; give grid and/or zip lists")
    both = sorted(set(grid) & set(zipped))
    if both:
        raise ConfigError(f"{where}.sweep.zip.{both[0]}: also in grid; sweep a key one way")
    lengths = {len(v) for v in zipped.values()}
    if len(lengths) > 1:
        sizes = ", ".join(f"{k}: {len(v)}" for k, v in zipped.items())
        raise ConfigError(f"{where}.sweep.zip: lists of different lengths ({sizes}); zip walks them together")
    points = len(list(zipped.values())[0]) if zipped else 1
    for values in grid.values():
        points *= len(values)
    if points > MAX_POINTS:
        raise ConfigError(f"{where}.sweep: {points} experiments; allowed: at most {MAX_POINTS} per sweep")
    labels = _labels([*grid, *zipped])
    base = {k: v for k, v in exp.items() if k != "sweep"}
    rows = [dict(zip(zipped, row)) for row in zip(*zipped.values())] if zipped else [{}]
    out = {}
    for combo in itertools.product(*grid.values()):
        for row in rows:
            chosen = [("grid", k, v) for k, v in zip(grid, combo)] + [("zip", k, v) for k, v in row.items()]
            parts = [f"{labels[k]}={format_value(v, f'{where}.sweep.{kind}.{k}')}" for kind, k, v in chosen]
            new = f"{name}@{','.join(parts)}"
            if new in out:
                raise ConfigError(f"{where}.sweep: two points are both named {new} (a value listed twice?)")
            e = copy.deepcopy(base)
            for kind, k, v in chosen:
                _set_path(e, k, v, f"{where}.sweep.{kind}.{k}")
            out[new] = (e, Point(name, tuple(chosen)))
    return out


def expand_config(raw: dict, families) -> tuple[dict, dict[tuple[str, str], Point]]:
    """The raw config with every family's swept experiments expanded in place (written order
    kept), and {(family, expanded name): Point}. Anything malformed around the experiments is
    left for the schema to name."""
    origins: dict[tuple[str, str], Point] = {}
    if not any(
        isinstance(raw.get(f), dict)
        and isinstance(raw[f].get("experiments"), dict)
        and any(isinstance(e, dict) and "sweep" in e for e in raw[f]["experiments"].values())
        for f in families
    ):
        return raw, origins
    raw = dict(raw)
    for family in families:
        section = raw.get(family)
        if not isinstance(section, dict) or not isinstance(section.get("experiments"), dict):
            continue
        experiments = {}
        for name, exp in section["experiments"].items():
            if not (isinstance(exp, dict) and "sweep" in exp):
                experiments[name] = exp
                continue
            for new, (e, point) in expand(name, exp, f"{family}.experiments.{name}").items():
                if new in section["experiments"] or new in experiments:
                    raise ConfigError(f"{family}.experiments.{new}: written and also made by the sweep of {name}")
                experiments[new] = e
                origins[(family, new)] = point
        raw[family] = {**section, "experiments": experiments}
    return raw, origins


def origin_message(message: str, family: str, name: str, point: Point) -> str:
    """An error about an expanded experiment, said of the sweep key and value that made it."""
    where = f"{family}.experiments.{name}"
    rest = message[len(where) :].lstrip(".") if message.startswith(where) else message
    for kind, key, value in point.values:
        if rest == key or rest.startswith(f"{key}:") or rest.startswith(f"{key}."):
            return f"{family}.experiments.{point.base}.sweep.{kind}.{key}: value {value!r} ({name}): {rest}"
    return f"{family}.experiments.{point.base}.sweep ({name}): {rest}"
