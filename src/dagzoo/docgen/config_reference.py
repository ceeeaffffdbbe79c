"""The configuration reference (docs/config-reference.md), generated from the code.

Everything on the page is read from the code: the config's JSON schema (`dagzoo.config.schema`:
the core's, each family's section and the claims) with the defaults (`dagzoo.config.defaults`),
and per family every registered model (`dagzoo.registry.models`): its docstring, its papers and
the fields of its `Params` dataclass (type, default, help, limits and the stage that reads each).
A family whose package has a ``samplers`` module with a ``SAMPLERS`` table (kind -> its params
dataclass, or a tuple that starts with it) gets a section of its samplers' parameters too.

The output is deterministic (no dates, no machine facts), so the committed page changes only when
the code does; a test compares it with `config_reference()`. `dagzoo docs` writes it; by hand:
``python -m dagzoo.docgen.config_reference`` (from the repository root).
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import json
import re
import sys
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from dagzoo import config, registry
from dagzoo.family import Family, families

#: where `dagzoo docs` writes the page, relative to the repository root
DEFAULT_OUT = Path("docs") / "config-reference.md"

_NO_DEFAULT = "–"


# ---------------------------------------------------------------------------------- formatting
_CODE_SPAN = re.compile(r"(`+).+?\1")


def _prose(s: str) -> str:
    """Free text from the code (a description, a help, a docstring) on one line, escaped for
    Markdown outside its code spans: a backslash, `*` and `~`, and `<` where it would open an
    HTML tag (`folder:<path>` would otherwise lose `<path>`)."""
    s = " ".join(str(s).split())
    out, last = [], 0
    for m in _CODE_SPAN.finditer(s):
        out += [_escape(s[last : m.start()]), m.group(0)]
        last = m.end()
    return "".join(out + [_escape(s[last:])])


def _escape(s: str) -> str:
    s = re.sub(r"([\\*~])", r"\\\1", s)
    return re.sub(r"<(?=[A-Za-z/!?])", r"\\<", s)


def _cell(s: str) -> str:
    """A Markdown table cell: one line, `|` escaped (also inside code spans, as GFM wants)."""
    return " ".join(str(s).split()).replace("|", "\\|")


# a word that would start a list, a heading or a quote at the start of a line: kept with the word before
_BLOCK_START = re.compile(r"^(>.*|[-+*]|\d{1,9}[.)]|#{1,6}|[-=]+)$")


def _wrap(s: str, width: int = 120, indent: str = "") -> list[str]:
    """A paragraph as lines of at most `width` characters (a longer word stays whole); lines after
    the first start with `indent`."""
    words = []
    for word in s.split():
        if words and _BLOCK_START.match(word):
            words[-1] += " " + word
        else:
            words.append(word)
    lines, line = [], ""
    for word in words:
        prefix = indent if lines else ""
        if line and len(prefix) + len(line) + 1 + len(word) > width:
            lines.append(prefix + line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    if line or not lines:
        lines.append((indent if lines else "") + line)
    return lines


def _code(s: str) -> str:
    s = " ".join(str(s).split())
    if not s:
        return "``"
    if "`" not in s:
        return f"`{s}`"
    return f"`` {s} ``"


def _plain(value: Any) -> Any:
    """Tuples as lists, recursively (what YAML can write)."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _value(value: Any) -> str:
    """A value as the config's YAML writes it (null, true, .inf, [0.1, 1.0], {a: 1}), on one line."""
    try:
        s = yaml.safe_dump(_plain(value), default_flow_style=True, sort_keys=False, width=10**9, allow_unicode=True)
    except yaml.YAMLError:
        return repr(value)
    return s.removesuffix("\n...\n").strip()  # a scalar's document end marker


def _values(values) -> str:
    return ", ".join(_code(_value(v)) for v in values)


def _paragraph(doc: str | None) -> str:
    """The first paragraph of a docstring, on one line ('' if there is none)."""
    if not doc or not doc.strip():
        return ""
    return " ".join(re.split(r"\n\s*\n", doc.strip(), maxsplit=1)[0].split())


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return lines


# ---------------------------------------------------------------------------------- config schema
_JSON_TYPES = {
    "string": "string",
    "integer": "integer",
    "number": "number",
    "boolean": "boolean",
    "null": "null",
    "array": "list",
    "object": "mapping",
}


def _json_type_of(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "list" if isinstance(value, (list, tuple)) else "mapping"


def _schema_type(node: dict) -> str:
    if "type" in node:
        kinds = node["type"] if isinstance(node["type"], list) else [node["type"]]
        names = []
        for kind in kinds:
            name = _JSON_TYPES.get(kind, kind)
            if kind == "array" and isinstance(node.get("items"), dict):
                inner = _schema_type(node["items"])
                name = (f"list of ({inner})" if " or " in inner else f"list of {inner}") if inner else name
            names.append(name)
        return " or ".join(names)
    for key in ("anyOf", "oneOf"):
        if key in node:
            return " or ".join(t for t in (_schema_type(alt) for alt in node[key]) if t)
    if "enum" in node:
        return " or ".join(dict.fromkeys(_json_type_of(v) for v in node["enum"]))
    if "const" in node:
        return _json_type_of(node["const"])
    return ""


# keywords that describe structure (shown as rows, types or not at all) rather than limits
_STRUCTURE = {
    "$schema",
    "type",
    "description",
    "properties",
    "additionalProperties",
    "items",
    "anyOf",
    "oneOf",
    "required",
}


def _schema_limits(node: dict) -> list[str]:
    """What a schema node allows, in words; keywords without a wording are shown as written."""
    out = []
    for key, value in node.items():
        if key in _STRUCTURE:
            continue
        if key == "enum":
            out.append(f"one of {_values(value)}")
        elif key == "const":
            out.append(f"exactly {_code(_value(value))}")
        elif key == "minimum":
            out.append(f">= {value}")
        elif key == "maximum":
            out.append(f"<= {value}")
        elif key == "exclusiveMinimum":
            out.append(f"> {value}")
        elif key == "exclusiveMaximum":
            out.append(f"< {value}")
        elif key == "minLength":
            out.append(f"at least {value} character(s)")
        elif key == "maxLength":
            out.append(f"at most {value} character(s)")
        elif key == "pattern":
            out.append(f"matches {_code(value)}")
        elif key == "minItems":
            out.append(f"at least {value} item(s)")
        elif key == "maxItems":
            out.append(f"at most {value} item(s)")
        elif key == "uniqueItems":
            out.append("items unique" if value else "items may repeat")
        elif key == "minProperties":
            out.append(f"at least {value} key(s)")
        elif key == "maxProperties":
            out.append(f"at most {value} key(s)")
        elif key == "propertyNames" and isinstance(value, dict):
            out.append("keys: " + ", ".join(_schema_limits(value)))
        elif key == "not" and isinstance(value, dict) and set(value) == {"const"}:
            out.append(f"not {_code(_value(value['const']))}")
        else:
            out.append(f"{key}: {_code(json.dumps(value, sort_keys=True))}")
    items = node.get("items")
    if isinstance(items, dict) and items.get("type") != "object":
        inner = _schema_limits(items)
        if inner:
            out.append("each item " + ", ".join(inner))
    for key in ("anyOf", "oneOf"):
        for alt in node.get(key, []):
            inner = _schema_limits(alt)
            if inner:
                out.append(f"as {_schema_type(alt) or 'alternative'}: " + ", ".join(inner))
    return out


def _placeholder(parent: str) -> str:
    """`<experiment>` for a key of `experiments`, `<sampler>` for one of `samplers`, else `<name>`."""
    word = parent.rsplit(".", 1)[-1].rstrip("]").rstrip("[")
    return f"<{word[:-1]}>" if len(word) > 1 and word.endswith("s") and word.isidentifier() else "<name>"


@dataclasses.dataclass
class _Row:
    path: str
    node: dict
    required: bool
    default_path: tuple | None  # where its default sits in config.defaults(); None: no default


def _schema_rows(node: dict, path: str, default_path: tuple | None) -> Iterator[_Row]:
    """The rows of the keys below `node`, depth first in schema order."""
    if not isinstance(node, dict):
        return
    required = set(node.get("required", []))
    for key, sub in (node.get("properties") or {}).items():
        sub_path = f"{path}.{key}" if path else key
        sub_default = (*default_path, key) if default_path is not None else None
        yield _Row(sub_path, sub, key in required, sub_default)
        yield from _schema_rows(sub, sub_path, sub_default)
    extra = node.get("additionalProperties")
    if isinstance(extra, dict) and path:
        sub_path = f"{path}.{_placeholder(path)}"
        yield _Row(sub_path, extra, False, None)
        yield from _schema_rows(extra, sub_path, None)
    items = node.get("items")
    if isinstance(items, dict) and items.get("type") == "object" and path:
        yield from _schema_rows(items, f"{path}[]", None)


_MISSING = object()


def _lookup(tree: Any, keys: tuple | None) -> Any:
    if keys is None:
        return _MISSING
    for key in keys:
        if not isinstance(tree, dict) or key not in tree:
            return _MISSING
        tree = tree[key]
    return tree


def _schema_table(rows: list[_Row], defaults: dict) -> list[str]:
    out = []
    for row in rows:
        default = _lookup(defaults, row.default_path)
        if "properties" in row.node:  # its keys have rows of their own, each with its default
            default_text = ""
        elif default is _MISSING:
            default_text = _NO_DEFAULT
        else:
            default_text = _code(_value(default))
        limits = (["required"] if row.required else []) + _schema_limits(row.node)
        if "required" in row.node and "properties" not in row.node:
            limits.append("needs " + ", ".join(_code(k) for k in row.node["required"]))
        out.append(
            [
                _code(row.path),
                _schema_type(row.node),
                default_text,
                "; ".join(limits),
                _prose(row.node.get("description", "")),
            ]
        )
    return _table(["Key", "Type", "Default", "Allowed", "Description"], out)


# ---------------------------------------------------------------------------------- params
def _type_name(tp: Any) -> str:
    if tp is Any:
        return "any"
    if tp is type(None):
        return "null"
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Literal:
        return " or ".join(dict.fromkeys(_json_type_of(a) for a in args))
    if origin in (typing.Union, types.UnionType):
        parts = sorted(args, key=lambda a: a is type(None))  # null last
        return " or ".join(_type_name(a) for a in parts)
    if origin in (list, tuple):
        inner = [a for a in args if a is not Ellipsis]
        if not inner:
            return "list"
        name = _type_name(inner[0])
        return f"list of ({name})" if " or " in name else f"list of {name}"
    if origin is dict:
        return "mapping"
    if isinstance(tp, str):
        return tp
    return {
        "str": "string",
        "int": "integer",
        "float": "number",
        "bool": "boolean",
        "dict": "mapping",
        "list": "list",
    }.get(getattr(tp, "__name__", ""), getattr(tp, "__name__", str(tp)))


def _hints(params_cls: type) -> dict:
    try:
        return typing.get_type_hints(params_cls)
    except (NameError, TypeError, AttributeError):  # an annotation that does not resolve here: as written
        return {f.name: f.type for f in dataclasses.fields(params_cls)}


def _default(field: dataclasses.Field) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return _MISSING


_LIMIT_KEYS = ("choices", "gt", "min", "max", "min_len", "max_len", "allow_inf")
_NOT_LIMITS = {"help", "stage"}


def _param_limits(meta: Any, is_list: bool) -> str:
    each = "each " if is_list else ""
    out = []
    if "min_len" in meta:
        out.append(f"at least {meta['min_len']} item(s)")
    if "max_len" in meta:
        out.append(f"at most {meta['max_len']} item(s)")
    if "choices" in meta:
        out.append(f"{each}one of {_values(meta['choices'])}")
    for key, op in (("gt", ">"), ("min", ">="), ("max", "<=")):
        if key in meta:
            out.append(f"{each}{op} {_value(meta[key])}")
    if meta.get("allow_inf"):
        out.append(f"{_code('.inf')} / {_code('-.inf')} allowed")
    for key in sorted(set(meta) - set(_LIMIT_KEYS) - _NOT_LIMITS):
        out.append(f"{key}: {_code(_value(meta[key]))}")
    return "; ".join(out)


def _params_table(params_cls: type, stages: bool = True) -> list[str]:
    hints = _hints(params_cls)
    rows = []
    for f in dataclasses.fields(params_cls):
        tp = hints.get(f.name, f.type)
        default = _default(f)
        type_name = _type_name(tp)
        row = [
            _code(f.name),
            type_name,
            _NO_DEFAULT if default is _MISSING else _code(_value(default)),
            _param_limits(f.metadata, type_name.startswith("list")),
        ]
        if stages:
            row.append(", ".join(config.field_stages(f)))
        row.append(_prose(f.metadata.get("help", "")))
        rows.append(row)
    header = ["Name", "Type", "Default", "Allowed"] + (["Stage"] if stages else []) + ["Help"]
    return _table(header, rows)


# ---------------------------------------------------------------------------------- models
def _summary(cls: type) -> str:
    """The first paragraph of the class docstring (its first line may end mid-sentence), else the
    first sentence of its module's docstring."""
    own = _paragraph(cls.__doc__)
    if own:
        return own
    module = _paragraph(getattr(sys.modules.get(cls.__module__), "__doc__", None))
    first = re.split(r"(?<=[.!?])\s+(?=[A-Z`])", module, maxsplit=1)[0]
    return first[:-1] + "." if first.endswith(":") else first


def _papers(cls: type) -> list[str]:
    papers = tuple(getattr(cls, "papers", ()) or ())
    if not papers:
        return ["Papers: none (a reference model, no paper)."]
    lines = ["Papers:", ""]
    for p in papers:  # in the model's order: the one it implements first
        lines += _wrap(f"- {_prose(p.authors)} ({p.year}), *{_prose(p.title)}*, <{p.url}>", indent="  ")
    return lines


def _model_section(family: str, key: str, cls: type) -> list[str]:
    lines = [f"#### `{family}/{key}`", ""]
    summary = _summary(cls)
    if summary:
        lines += _wrap(_prose(summary)) + [""]
    lines += _papers(cls) + [""]
    kinds = getattr(cls, "sampler_kinds", None)
    if kinds:
        line = f"Sampler kinds: {', '.join(_code(k) for k in kinds)}"
        defaults = getattr(cls, "default_samplers", None)
        if defaults:
            line += "; default samplers: " + ", ".join(
                _code(f"{name}: {_value(spec)}") for name, spec in defaults.items()
            )
        lines += _wrap(line + ".") + [""]
    lines += _params_table(cls.Params) + [""]
    return lines


def _samplers(fam: Family) -> dict[str, type]:
    """kind -> params dataclass of the family's samplers (empty if it has none)."""
    name = f"{fam.package}.samplers"
    if importlib.util.find_spec(name) is None:
        return {}
    table = getattr(importlib.import_module(name), "SAMPLERS", None)
    out = {}
    for kind, entry in (table or {}).items():
        params = entry[0] if isinstance(entry, tuple) else entry
        fields = dataclasses.fields(params) if dataclasses.is_dataclass(params) else ()
        if all("help" in f.metadata for f in fields):  # declared with registry.param
            out[kind] = params
    return out


def _sampler_section(fam: Family, models: dict[str, type]) -> list[str]:
    samplers = _samplers(fam)
    if not samplers:
        return []
    lines = [
        f"### Samplers of `{fam.name}`",
        "",
        "A sampler is named in an experiment's `samplers` by its `kind` and these parameters.",
        "",
    ]
    for kind, params in samplers.items():
        lines += [f"#### Sampler `{kind}`", ""]
        summary = _paragraph(params.__doc__)
        if summary and not summary.startswith(f"{params.__name__}("):  # not dataclass's generated signature
            lines += _wrap(_prose(summary)) + [""]
        users = sorted(key for key, cls in models.items() if kind in (getattr(cls, "sampler_kinds", ()) or ()))
        if users:
            lines += [f"Models: {', '.join(_code(u) for u in users)}.", ""]
        if dataclasses.fields(params):
            lines += _params_table(params, stages=False) + [""]
        else:
            lines += ["No parameters.", ""]
    return lines


def _family_section(fam: Family, schema: dict, defaults: dict) -> list[str]:
    models = registry.models(fam.name)
    lines = [f"## Family `{fam.name}`", ""]
    summary = _paragraph(type(fam).__doc__) or _paragraph(
        getattr(sys.modules.get(type(fam).__module__), "__doc__", None)
    )
    if summary:
        lines += _wrap(_prose(summary)) + [""]
    lines += _wrap(f"Training counts {fam.unit}. Models: {', '.join(_code(k) for k in sorted(models))}.") + [""]
    lines += [f"### Config section `{fam.name}`", ""]
    keys = ", ".join(_code(k) for k in fam.experiment_keys)
    lines += _wrap(f"The keys of an experiment other than {keys} are the hyper-parameters of its model (below).") + [""]
    section = schema["properties"].get(fam.name, {})
    lines += _schema_table(list(_schema_rows(section, fam.name, (fam.name,))), defaults) + [""]
    lines += [f"### Models of `{fam.name}`", ""]
    for key, cls in sorted(models.items()):
        lines += _model_section(fam.name, key, cls)
    lines += _sampler_section(fam, models)
    return lines


# ---------------------------------------------------------------------------------- the page
def config_reference() -> str:
    """The configuration reference as Markdown."""
    schema, defaults, fams = config.schema(), config.defaults(), families()
    lines = [
        "<!-- Generated by `dagzoo docs` (dagzoo/docgen/config_reference.py): do not edit by hand. -->",
        "",
        "# Configuration reference",
        "",
    ]
    lines += _wrap(
        "*Generated by `dagzoo docs` from the config schemas, the defaults and the model registry; do "
        "not edit it by hand: change the code and rerun `dagzoo docs` (or "
        "`python -m dagzoo.docgen.config_reference`).*"
    ) + [""]
    if schema.get("description"):
        lines += _wrap(_prose(schema["description"])) + [""]
    lines += _wrap(
        "A key path `a.b` is the key `b` inside `a`; `<experiment>` (`<name>`, ...) stands for a name "
        f"of your choice and `[]` for each item of a list. Defaults are written as YAML; `{_NO_DEFAULT}` "
        "means none."
    ) + [""]
    lines += _wrap("Families: " + ", ".join(f"`{name}`" for name in fams) + ".") + [""]
    lines += ["## Core keys", ""]
    core_rows = []
    for row in _schema_rows(schema, "", ()):
        top = row.path.split(".", 1)[0].split("[", 1)[0]
        if top in fams and row.path != top:
            continue  # a family's keys are in its section
        core_rows.append(row)
    lines += _schema_table(core_rows, defaults) + [""]
    for fam in fams.values():
        lines += _family_section(fam, schema, defaults)
    while lines and lines[-1] == "":
        lines.pop()
    return "\n".join(lines) + "\n"


def write_config_reference(out: Path = DEFAULT_OUT) -> bool:
    """Write the reference to `out` if its text differs; whether it changed."""
    out = Path(out)
    s = config_reference()
    if out.is_file() and out.read_text(encoding="utf-8") == s:
        return False
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(s, encoding="utf-8", newline="\n")
    return True


if __name__ == "__main__":
    changed = write_config_reference(DEFAULT_OUT)
    print(f"{DEFAULT_OUT}: {'written' if changed else 'up to date'}")
