"""Loading, validating and resolving the declarative config.

`validate_config` runs when the Snakefile loads (and in `dagzoo validate-config`): the JSON
schema checks the structure, the registry checks every model key and hyper-parameter, and every
problem is reported as ``key.path: what is wrong; allowed: ...`` before any job runs.
`experiment_specs` expands the grid into one fully resolved spec per (family, experiment, seed).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import re
from importlib import resources
from pathlib import Path
from typing import Any, Callable

import jsonschema
import yaml

from dagzoo import registry, sweep
from dagzoo.claims import ADDRESS_PATTERN, check_claims
from dagzoo.errors import ConfigError
from dagzoo.family import families
from dagzoo.io import stable_hash

# the core's defaults; each family adds its section's (dagzoo.family)
CORE_DEFAULTS: dict[str, Any] = {
    "results": "results",
    "seeds": [0],
    "threads": 1,
    "eval_threads": 1,
    "processes": 1,
    "mlflow": {"tracking_uri": None, "experiment_prefix": "dagzoo-"},
    "cluster": {
        "cpu_partition": None,
        "gpu_partition": None,
        "gpus_per_training": 0,
        "train_runtime": 480,
        "train_mem_mb": 16000,
    },
    "claims": [],
}


def defaults() -> dict:
    return {**copy.deepcopy(CORE_DEFAULTS), **{name: copy.deepcopy(fam.defaults) for name, fam in families().items()}}


def schema() -> dict:
    """The config's JSON schema: the core's, each family's section and the claims."""
    from dagzoo.claims import CLAIM_SCHEMA

    out = yaml.safe_load((resources.files("dagzoo") / "schema.yaml").read_text())
    out["properties"]["claims"] = CLAIM_SCHEMA
    for name, fam in families().items():
        out["properties"][name] = fam.schema()
    return out


class _DuplicateKeyError(yaml.YAMLError):
    def __init__(self, key_path: str, first_line: int, second_line: int):
        super().__init__(f"{key_path}: duplicate key (lines {first_line} and {second_line})")


class _StrictLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # libyaml's parser where installed: 10x faster
    """A SafeLoader that refuses a key written twice in one mapping (plain YAML keeps the last,
    so an experiment can silently vanish). Merge keys (``<<: *anchor``) still work, and a key that
    overrides a merged one is not a duplicate: only the keys written in the mapping itself count.

    The check walks the composed node tree before anything is constructed: the constructor
    defers nested mappings and flattens merged ones in place, so by the time a mapping is built
    neither its key path nor its own keys can be told apart any more."""

    def construct_document(self, node: yaml.Node) -> Any:
        self._reject_duplicate_keys(node, (), set())
        return super().construct_document(node)

    def _reject_duplicate_keys(self, node: yaml.Node, path: tuple, seen: set[int]) -> None:
        if id(node) in seen:  # an alias: its anchor was checked where it was written
            return
        seen.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                self._reject_duplicate_keys(item, (*path, i), seen)
        elif isinstance(node, yaml.MappingNode):
            first_line: dict[Any, int] = {}
            for key_node, value_node in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge" or not isinstance(key_node, yaml.ScalarNode):
                    continue
                key, line = self.construct_object(key_node), key_node.start_mark.line + 1
                if key in first_line:
                    raise _DuplicateKeyError(".".join(map(str, (*path, key))), first_line[key], line)
                first_line[key] = line
                self._reject_duplicate_keys(value_node, (*path, key), seen)


class _JsonDuplicateKey(Exception):
    pass


def _json_object(pairs: list) -> dict:
    if len({key for key, _ in pairs}) != len(pairs):
        raise _JsonDuplicateKey
    return dict(pairs)


def _read_document(source: str) -> Any:
    """The document as Snakemake reads a --configfile: as JSON if it is JSON (where 1e-05 is a
    number; YAML 1.1 reads it as a string), else as YAML. A JSON object with a key written twice
    is read as YAML (which JSON is), so the refusal names the key path and both lines."""
    try:
        return json.loads(source, object_pairs_hook=_json_object)
    except (ValueError, _JsonDuplicateKey):
        return yaml.load(source, Loader=_StrictLoader)


def _yaml_error(e: yaml.YAMLError) -> str:
    """':line:column: is not valid YAML: problem' on one line (PyYAML's own message spans several)."""
    mark = getattr(e, "problem_mark", None)
    where = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
    problem = " ".join(str(getattr(e, "problem", None) or e).split())
    context = getattr(e, "context", None)
    return f"{where}: is not valid YAML: {problem}" + (f" ({' '.join(context.split())})" if context else "")


def load_config(path: str | Path) -> dict:
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as f:
            cfg = _read_document(f.read())
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, not a config file") from None
    except RecursionError:
        raise ConfigError(
            f"{path}: nested too deeply to read; allowed: a config as deep as config/config.yaml (a handful of levels)"
        ) from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not valid UTF-8 (byte {e.start}: {e.object[e.start : e.start + 1]!r})") from None
    except _DuplicateKeyError as e:
        raise ConfigError(f"{path}: {e}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}{_yaml_error(e)}") from None
    if cfg is not None and not isinstance(cfg, dict):
        raise ConfigError(
            f"{path}: the config must be a mapping of keys to values (results, seeds, a family, ...), "
            f"got a {type(cfg).__name__}"
        )
    return cfg or {}


def _merge(defaults: dict, values: dict) -> dict:
    out = copy.deepcopy(defaults)
    for k, v in values.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict) and k != "experiments":
            out[k] = _merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


#: the patterns of the names the schemas allow (experiments; samplers, which end their jobs'
#: log names after a '-'), and what they allow in words
NAME_PATTERNS = {
    "^[A-Za-z0-9][A-Za-z0-9_.-]*$": "ASCII letters, digits, '_', '.' and '-'",
    sweep.NAME_PATTERN: "ASCII letters, digits, '_', '.' and '-' (a sweep adds @<key>=<value>,...)",
    "^[A-Za-z0-9][A-Za-z0-9_.]*$": "ASCII letters, digits, '_' and '.'",
}


def _format_schema_error(err: jsonschema.ValidationError) -> str:
    path = ".".join(str(p) for p in err.absolute_path) or "<top level>"
    if err.validator == "additionalProperties":
        allowed = ", ".join(sorted(err.schema.get("properties", {})))
        extra = sorted(set(err.instance) - set(err.schema.get("properties", {})))
        key = extra[0] if extra else "?"
        return f"{key if path == '<top level>' else f'{path}.{key}'}: unknown key; allowed: {allowed}"
    if err.validator == "pattern" and err.schema.get("pattern") in NAME_PATTERNS:
        return (
            f"{path}: {err.instance!r} is not a name; allowed: {NAME_PATTERNS[err.schema['pattern']]}, "
            "starting with a letter or digit (it names files and a Snakemake wildcard)"
        )
    if err.validator == "pattern" and err.schema.get("pattern") == ADDRESS_PATTERN:
        return f"{path}: {err.instance!r} is not a metric address; allowed: <family>/<experiment>/<metric key>"
    if err.validator == "not" and isinstance(err.validator_value, dict) and "const" in err.validator_value:
        return f"{path}: the name {err.instance!r} is reserved; allowed: any other name"
    if err.validator == "enum":
        return f"{path}: {err.instance!r} is not allowed; allowed: {registry.quoted(err.validator_value)}"
    types = err.validator_value if isinstance(err.validator_value, list) else [err.validator_value]
    if err.validator == "type" and "integer" in types and isinstance(err.instance, float) and err.instance.is_integer():
        return f"{path}: expected an integer, got {err.instance!r} (write {int(err.instance)})"
    return f"{path}: {err.message}"


def _is_integer(checker, instance) -> bool:
    return isinstance(instance, int) and not isinstance(instance, bool)


#: JSON Schema counts 2.0 as an integer; every integer of ours is a count, a size or a seed that
#: reaches a path, a command line or a numpy shape, where 2.0 fails late (seed "1.0" names a run
#: directory no rule makes): a whole-number float is refused as a model's int hyper-parameter is
Validator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator,
    type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine("integer", _is_integer),
)

#: Snakemake takes a wildcard value that ends in 20 repeats of one piece (aaaa..., abab...) for a
#: rule matching its own output without end and refuses the DAG (PeriodicWildcardError)
_PERIODIC = re.compile(r"(.+)\1{19,}$")
#: a name becomes part of file names (the log {family}-{name}-{seed}.log among them): 255 bytes at most
MAX_NAME_LENGTH = 100


def check_name(name: str, where: str) -> None:
    """A name that becomes a wildcard value and a file name (an experiment's, a sampler's): refused
    when it is too long for a file name or looks periodic to Snakemake."""
    if len(name) > MAX_NAME_LENGTH:
        raise ConfigError(
            f"{where}: a name of {len(name)} characters; allowed: at most {MAX_NAME_LENGTH} "
            "(it becomes part of file names)"
        )
    periodic = _PERIODIC.search(name)
    if periodic:
        raise ConfigError(
            f"{where}: a name ending in 20 or more repeats of {periodic.group(1)!r}, which Snakemake "
            "refuses as a runaway wildcard; allowed: any other name"
        )


def validate_config(raw: dict, check_files: bool = True) -> dict:
    """Validate a raw config and return it merged with the defaults."""
    if not isinstance(raw, dict):
        raise ConfigError("the config must be a mapping of keys to values")
    fams = families()
    _reject_cycles(raw, (), set())
    _reject_non_string_keys(raw, ())
    raw, origins = sweep.expand_config(raw, fams)
    try:
        return _validate_expanded(raw, fams, check_files)
    except ConfigError as e:  # said of the sweep key and value that made the experiment
        for (family, name), point in origins.items():
            prefix = f"{family}.experiments.{name}"
            if str(e).startswith((f"{prefix}.", f"{prefix}:")):
                raise ConfigError(sweep.origin_message(str(e), family, name, point)) from None
        raise


def _validate_expanded(raw: dict, fams: dict, check_files: bool) -> dict:
    _reject_non_finite(raw, (), experiment_sections=set(fams))
    validator = Validator(schema())
    errors = sorted(validator.iter_errors(raw), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        raise ConfigError("; ".join(_format_schema_error(e) for e in errors[:5]))
    _check_results_root(raw.get("results", CORE_DEFAULTS["results"]))
    cfg = _merge(defaults(), raw)
    declared = [name for name in fams if name in raw]
    if not declared:
        raise ConfigError(f"the config declares no family; add at least one of: {', '.join(fams)}")
    for name, fam in fams.items():
        if name not in raw:
            cfg.pop(name, None)  # defaults of an undeclared family are not a family
            continue
        section = cfg[name]
        fam.validate(section, cfg)
        if check_files:
            fam.check_files(section)
        for exp_name, exp in section["experiments"].items():
            where = f"{name}.experiments.{exp_name}"
            check_name(exp_name, where)
            cls = registry.get_model(fam.name, exp["model"], where=f"{where}.model")
            if hasattr(cls, "check_written"):  # dagzoo.lifecycle.Model's (a registered class may be any class)
                cls.check_written(exp, where)  # first: it may explain a key the Params no longer know
            cls, params = _model_params(fam, exp, where)
            fam.check_experiment(section, exp_name, exp, cls, params, where)
            batch = exp.get("batch_size")
            if batch is not None and batch % cfg["processes"]:
                raise ConfigError(
                    f"{where}.batch_size: {batch} is not divisible by processes "
                    f"({cfg['processes']}): every data-parallel process takes an equal shard"
                )
    check_claims(cfg["claims"], {name: set(cfg[name]["experiments"]) for name in declared})
    if cfg["cluster"]["gpu_partition"] and not cfg["cluster"]["cpu_partition"]:
        raise ConfigError(
            "cluster.gpu_partition: set cpu_partition too (the jobs without a GPU, n-gram fits among "
            "the trainings, go there)"
        )
    return cfg


def json_arg(value: str, where: str) -> Any:
    """A command-line argument holding JSON, with a one-line error naming the argument."""
    try:
        return json.loads(value)
    except json.JSONDecodeError as e:
        raise ConfigError(f"{where}: not valid JSON ({e})") from None


def check_section_part(family: str, key: str, value: Any, where: str | None = None) -> Any:
    """A part of a family's config section given on a stage's command line by hand (the DAG passes
    validated values): merged over the family's defaults and checked against the same schema as
    the config. Errors name `where` (one argument holding the part, e.g. --data) and the key path
    inside it, or, with `where` None, the option of each key (val_fraction -> --val-fraction)."""
    fam = families()[family]
    default = fam.defaults.get(key)
    merged = _merge(default, value) if isinstance(default, dict) and isinstance(value, dict) else value

    def name(path: list) -> str:
        if where is None and path:
            return ".".join([f"--{str(path[0]).replace('_', '-')}", *map(str, path[1:])])
        return ".".join([where or "arguments", *map(str, path)])

    _reject_non_finite(merged, (), set(), name=lambda path: name(list(path)))
    errors = sorted(
        Validator(fam.schema()["properties"][key]).iter_errors(merged), key=lambda e: list(map(str, e.absolute_path))
    )
    if errors:
        messages = []
        for e in errors[:5]:  # "<key path>: message", the path inside the part (an unknown key included)
            head, message = _format_schema_error(e).split(": ", 1)
            messages.append(f"{name([] if head == '<top level>' else head.split('.'))}: {message}")
        raise ConfigError("; ".join(messages))
    return merged


#: deeper than any config can sensibly be; the walks over it recurse
MAX_DEPTH = 50


def _reject_cycles(node: Any, path: tuple, open_nodes: set[int]) -> None:
    """Refuse a mapping or list that contains itself (a YAML alias used inside its own anchor,
    ``a: &x [*x]``): every later walk over the config would recurse without end."""
    if not isinstance(node, (dict, list, tuple)):
        return
    if len(path) > MAX_DEPTH:
        raise ConfigError(
            f"{'.'.join(map(str, path[:3]))}...: nested more than {MAX_DEPTH} levels deep; allowed: "
            "a config as deep as config/config.yaml (a handful of levels)"
        )
    if id(node) in open_nodes:
        where = ".".join(map(str, path))
        raise ConfigError(
            f"{where}: contains itself (a YAML alias used inside its own anchor); allowed: an alias "
            "of a value written before it, outside it"
        )
    open_nodes.add(id(node))
    for key, value in node.items() if isinstance(node, dict) else enumerate(node):
        _reject_cycles(value, (*path, key), open_nodes)
    open_nodes.discard(id(node))


def _reject_non_string_keys(node: Any, path: tuple) -> None:
    """Refuse a mapping key that YAML read as a number, boolean or null (``1:``, ``yes:``): every
    key is a name (an experiment's names its run directory and its wildcard), and the schema's
    patterns check strings only."""
    if isinstance(node, dict):
        for key, value in node.items():
            if not isinstance(key, str):
                where = ".".join(map(str, (*path, key)))
                if isinstance(key, bool):  # YAML 1.1 reads yes/no/on/off/true/false (any case) as booleans
                    advice = "quote it as written ('yes':, 'on':, ...)"
                else:
                    advice = f"quote it ('{'~' if key is None else key}':)"  # YAML reads ~ (and null) as no value
                raise ConfigError(f"{where}: a key must be a string, got the {type(key).__name__} {key!r}; {advice}")
            _reject_non_string_keys(value, (*path, key))
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            _reject_non_string_keys(value, (*path, i))


def _reject_non_finite(
    node: Any,
    path: tuple,
    experiment_sections: set[str],
    name: Callable[[tuple], str] = lambda path: ".".join(map(str, path)),
) -> None:
    """Refuse NaN anywhere and +-inf outside the families' experiments, naming the key path.

    JSON schema's minimum / maximum let NaN through (it compares false with every bound) and an
    exclusiveMinimum alone lets inf through. Inside ``<family>.experiments`` infinities are left
    to `registry.validate_params`, where a hyper-parameter may allow them (``allow_inf``)."""
    if isinstance(node, float) and not math.isfinite(node):
        in_experiments = len(path) >= 2 and path[0] in experiment_sections and path[1] == "experiments"
        if math.isnan(node) or not in_experiments:
            raise ConfigError(f"{name(path)}: must be a finite number, got {node!r}")
    elif isinstance(node, dict):
        for key, value in node.items():
            _reject_non_finite(value, (*path, key), experiment_sections, name)
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            _reject_non_finite(value, (*path, i), experiment_sections, name)


def _check_results_root(results: str) -> None:
    """Every output lives under `results`: the filesystem root would scatter them over the disk."""
    if results.startswith("~"):  # no shell expands it: the outputs would go to a directory named "~"
        raise ConfigError(
            f"results: {results!r} starts with ~, which nothing expands here (the outputs would go "
            "to a directory named ~); allowed: the path written out, e.g. /home/me/results"
        )
    if os.path.exists(results) and not os.path.isdir(results):
        raise ConfigError(
            f"results: {results!r} is an existing file, not a directory; allowed: a directory, "
            "or a path that does not exist yet"
        )
    normalized = Path(os.path.normpath(results))
    if normalized.is_absolute() and normalized == Path(normalized.anchor):
        raise ConfigError(f"results: {results!r} is the filesystem root; allowed: a directory below it, e.g. results")
    if "{" in results or "}" in results:  # every output path starts with it: Snakemake would read a wildcard
        raise ConfigError(
            f"results: {results!r} contains braces, which Snakemake reads as wildcards in output "
            "paths; allowed: a path without { or }"
        )


def _model_params(fam, exp: dict, where: str) -> tuple[type, Any]:
    """(model class, validated hyper-parameters) of one experiment: its keys minus the family's
    experiment keys."""
    cls = registry.get_model(fam.name, exp["model"], where=f"{where}.model")
    hyper = {k: v for k, v in exp.items() if k not in fam.experiment_keys and k != "model"}
    return cls, registry.validate_params(cls.Params, hyper, where)


#: the stages after training that may read hyper-parameters of their own (a Params field's
#: metadata `stage`: "evaluate", "sample" or both; unmarked fields belong to training)
LATER_STAGES = ("evaluate", "sample")


def field_stages(field: dataclasses.Field) -> tuple[str, ...]:
    stage = field.metadata.get("stage", "train")
    return (stage,) if isinstance(stage, str) else tuple(stage)


def experiment_specs(cfg: dict) -> list[dict]:
    """One resolved spec per (family, experiment, seed). ``params`` holds the hyper-parameters
    training reads, and ``config_hash`` hashes everything the trained run depends on; the
    hyper-parameters only a later stage reads sit in ``stage_params[<stage>]``, outside the hash,
    so changing them reruns that stage alone (see `stage_spec`)."""
    specs = []
    for name, fam in families().items():
        if name not in cfg:
            continue
        section = cfg[name]
        fields, dataset = fam.spec_fields(section), fam.dataset(section)
        for exp_name, exp in section["experiments"].items():
            _, params = _model_params(fam, exp, f"{name}.experiments.{exp_name}")
            values = dataclasses.asdict(params)
            stages = {f.name: field_stages(f) for f in dataclasses.fields(params)}
            train = {k: v for k, v in values.items() if "train" in stages[k]}
            later = {stage: {k: v for k, v in values.items() if stage in stages[k]} for stage in LATER_STAGES}
            for seed in cfg["seeds"]:
                spec = {
                    "family": name,
                    "experiment": exp_name,
                    "model": exp["model"],
                    "seed": seed,
                    "params": copy.deepcopy(train),
                    "dataset": dataset,
                    **copy.deepcopy(fields),
                }
                spec["config_hash"] = stable_hash(spec)
                spec["stage_params"] = copy.deepcopy(later)
                specs.append(spec)
    return specs


def stage_spec(spec: dict, stage: str) -> dict:
    """What one stage of a run reads: the training spec plus that stage's own hyper-parameters.
    The DAG hands each stage exactly this (as a rule param), so a change reruns only the stages
    whose part changed."""
    out = {k: v for k, v in spec.items() if k != "stage_params"}
    out["params"] = {**spec["params"], **spec.get("stage_params", {}).get(stage, {})}
    out["stage"] = stage
    return out
