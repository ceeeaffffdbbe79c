"""The model registry: `@register(family, key)` on a class with a `Params` dataclass.

Adding a model is one file in ``dagzoo/<family>/models/`` that registers itself; every module
in that folder is imported when the family's registry is first asked for, so nothing else needs
to know about the new file. Hyper-parameters are the fields of `Params`; their `metadata` may
hold ``min``, ``max``, ``gt`` (exclusive minimum), ``choices`` and ``allow_inf``, which
`validate_params` enforces with messages that name the key path and the allowed values. A float
must be finite (NaN compares false with every bound, so it would pass them all) unless the field
sets ``allow_inf=True``, which admits +-inf (never NaN; ``min`` / ``max`` still apply).
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import math
import pkgutil
import types
import typing
from typing import Any, Literal, get_args, get_origin

from dagzoo import timing
from dagzoo.errors import ConfigError

_REGISTRY: dict[str, dict[str, type]] = {}
_LOADED: set[str] = set()


@dataclasses.dataclass(frozen=True)
class Paper:
    """The publication a model implements: shown by `dagzoo models` and in docs/models.md."""

    title: str
    authors: str
    year: int
    url: str

    def cite(self) -> str:
        return f'{self.authors} ({self.year}), "{self.title}", {self.url}'


def register(family: str, key: str, papers: tuple[Paper, ...] = ()):
    """Register a model class under `key`; `papers` are what it implements (a reference model,
    untrained or raw input, has none)."""

    def deco(cls):
        if not dataclasses.is_dataclass(getattr(cls, "Params", None)):
            raise TypeError(f"{cls.__name__} must define a dataclass `Params`")
        _REGISTRY.setdefault(family, {})[key] = cls
        cls.registry_key = key
        cls.family = family
        cls.papers = tuple(papers)
        return cls

    return deco


def models(family: str) -> dict[str, type]:
    """Every model of a family (imports all of its model modules)."""
    if family not in _LOADED:
        with timing.importing():
            package = importlib.import_module(f"dagzoo.{family}.models")
            for info in pkgutil.iter_modules(package.__path__):
                importlib.import_module(f"{package.__name__}.{info.name}")
        _LOADED.add(family)
    return _REGISTRY.get(family, {})


def _import_named_module(family: str, key: str) -> None:
    """Import the model module named after `key` (the usual layout), if there is one: a stage then
    imports its own model only (a model without torch never imports it)."""
    if not key.isidentifier():
        return
    name = f"dagzoo.{family}.models.{key}"
    with timing.importing():
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name != name:  # a module the model needs is missing: say so
                raise


def get_model(family: str, key: str, where: str = "model") -> type:
    if family not in _LOADED and key not in _REGISTRY.get(family, {}):
        _import_named_module(family, key)
    available = _REGISTRY.get(family, {})
    if key not in available:  # a model file named otherwise, or an unknown key: look at all of them
        available = models(family)
    if key not in available:
        raise ConfigError(f"{where}: unknown {family} model {key!r}; allowed: {', '.join(sorted(available))}")
    return available[key]


def _type_ok(value: Any, tp: Any) -> bool:
    origin = get_origin(tp)
    if tp is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, a) for a in get_args(tp))
    if origin is Literal:
        return value in get_args(tp)
    if tp is type(None):
        return value is None
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin in (list, tuple):
        item = get_args(tp)[0] if get_args(tp) else Any
        return isinstance(value, (list, tuple)) and all(_type_ok(v, item) for v in value)
    if isinstance(tp, type):
        return isinstance(value, tp)
    return True


def _type_name(tp: Any) -> str:
    if get_origin(tp) is Literal:
        return " | ".join(repr(a) for a in get_args(tp))
    if get_origin(tp) in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in get_args(tp))
    if get_origin(tp) in (list, tuple) and get_args(tp):
        return f"list of {_type_name(get_args(tp)[0])}"
    return "null" if tp is type(None) else getattr(tp, "__name__", str(tp))


def _exponent_hint(value: Any, tp: Any) -> str:
    """Why a number reached a float field as text: YAML 1.1 (PyYAML, Snakemake's reader) takes
    3e-4 for a string, since its floats need a dot (3.0e-4); JSON and YAML 1.2 do not."""
    if not (isinstance(value, str) and (tp is float or float in get_args(tp))):
        return ""
    try:
        number = float(value)
    except ValueError:
        return ""
    mantissa, _, exponent = value.lower().partition("e")
    if not exponent or "." in mantissa or not math.isfinite(number):
        return ""
    return f" (YAML reads a number with an exponent but no dot as a string: write {mantissa}.0e{exponent})"


def _non_finite(value: Any) -> float | None:
    """The first NaN or +-inf in `value` (a number or a list of them), else None."""
    if isinstance(value, float) and not math.isfinite(value):
        return value
    if isinstance(value, (list, tuple)):
        return next((bad for v in value if (bad := _non_finite(v)) is not None), None)
    return None


def _check_finite(value: Any, meta: Any, path: str) -> None:
    """Refuse NaN always (it compares false with every bound, so `min` / `max` never catch it)
    and +-inf unless the field declares ``allow_inf`` (e.g. an "unbounded" threshold)."""
    bad = _non_finite(value)
    if bad is None or (meta.get("allow_inf") and not math.isnan(bad)):
        return
    allowed = "a finite number or .inf / -.inf" if meta.get("allow_inf") else "a finite number"
    raise ConfigError(f"{path}: must be {allowed}, got {bad!r}")


def quoted(values) -> str:
    """`a`, `b` as Python literals ('a', 'b'), comma-separated: how an error lists what is allowed."""
    return ", ".join(f"{v!r}" for v in values)


def _check_constraints(value: Any, meta: Any, path: str) -> None:
    if isinstance(value, (list, tuple)):  # min_len / max_len bound the list, the others each item
        if "min_len" in meta and len(value) < meta["min_len"]:
            raise ConfigError(f"{path}: must have at least {meta['min_len']} item(s), got {list(value)}")
        if "max_len" in meta and len(value) > meta["max_len"]:
            raise ConfigError(f"{path}: must have at most {meta['max_len']} item(s), got {list(value)}")
        for i, item in enumerate(value):
            _check_constraints(item, meta, f"{path}.{i}")
        return
    if "choices" in meta and value not in meta["choices"]:
        raise ConfigError(f"{path}: {value!r} is not allowed; allowed: {quoted(meta['choices'])}")
    if "gt" in meta and not value > meta["gt"]:
        raise ConfigError(f"{path}: must be > {meta['gt']}, got {value!r}")
    if "min" in meta and value < meta["min"]:
        raise ConfigError(f"{path}: must be >= {meta['min']}, got {value!r}")
    if "max" in meta and value > meta["max"]:
        raise ConfigError(f"{path}: must be <= {meta['max']}, got {value!r}")


@functools.cache
def _fields_and_hints(params_cls: type) -> tuple[dict, dict]:
    """A Params class's fields and resolved type hints (resolving them is slow, and a
    1000-experiment grid validates the same few classes thousands of times)."""
    return {f.name: f for f in dataclasses.fields(params_cls)}, typing.get_type_hints(params_cls)


def validate_params(params_cls: type, values: dict, where: str) -> Any:
    """Build `params_cls` from `values`, with errors naming the key path and what is allowed."""
    fields, hints = _fields_and_hints(params_cls)
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(f"{where}.{unknown[0]}: unknown hyper-parameter; allowed: {', '.join(sorted(fields))}")
    for name, value in values.items():
        f, tp = fields[name], hints[name]
        path = f"{where}.{name}"
        if not _type_ok(value, tp):
            raise ConfigError(f"{path}: expected {_type_name(tp)}, got {value!r}{_exponent_hint(value, tp)}")
        if value is not None:
            _check_finite(value, f.metadata, path)
            _check_constraints(value, f.metadata, path)
    params = params_cls(**values)
    check = getattr(params, "check", None)
    if check:
        check(where)
    return params


def param(default: Any, help: str = "", **constraints) -> Any:
    """A dataclass field with a default, a help text and optional constraints: min / max (inclusive),
    gt (exclusive minimum), choices, min_len / max_len (a list's length; the other constraints then
    hold for each item), allow_inf (admit +-inf; a default is never validated); and
    `stage`: "evaluate", "sample" or both for a hyper-parameter only that later stage reads
    (changing it reruns that stage, not training; see dagzoo.config.stage_spec)."""
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata={"help": help, **constraints})
    return dataclasses.field(default=default, metadata={"help": help, **constraints})
