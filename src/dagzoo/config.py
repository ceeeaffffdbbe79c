"""Loading, validating and resolving the declarative config.

`validate_config` runs when the Snakefile loads (and in `dagzoo validate-config`): the JSON
schema checks the structure, the registry checks every model key and hyper-parameter, and every
problem is reported as ``key.path: what is wrong; allowed: ...`` before any job runs.
`experiment_specs` expands the grid into one fully resolved spec per (family, experiment, seed).
"""

from __future__ import annotations

import copy
import dataclasses
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from dagzoo import registry
from dagzoo.errors import ConfigError
from dagzoo.io import stable_hash

DEFAULTS: dict[str, Any] = {
    "results": "results",
    "seeds": [0],
    "threads": 1,
    "processes": 1,
    "mlflow": {"tracking_uri": None, "experiment_prefix": "dagzoo-"},
    "text": {
        "split": {"val": 0.05, "test": 0.05},
        "tokenizer": {"kind": "char"},
        "eval": {"window": 256, "val_tokens": 32768, "samples": 4, "sample_length": 256,
                 "temperature": 1.0, "top_k": None, "genppl_evaluator": None},
    },
    "image": {
        "data": {"resize": None, "channels": None},
        "eval": {"samples": 1000, "baseline_samples": 100, "real_samples": None, "reference_images": None,
                 "kid_subsets": 100, "kid_subset_size": 1000, "feature_batch": 50, "grid": 64},
    },
}
# experiment keys that are not model hyper-parameters
IMAGE_EXPERIMENT_KEYS = ("model", "samplers", "main_sampler")


def schema() -> dict:
    return yaml.safe_load((resources.files("dagzoo") / "schema.yaml").read_text())


def load_config(path: str | Path) -> dict:
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as f:
            cfg = yaml.safe_load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path} is not valid YAML: {e}") from None
    return cfg or {}


def _merge(defaults: dict, values: dict) -> dict:
    out = copy.deepcopy(defaults)
    for k, v in values.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict) and k != "experiments":
            out[k] = _merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _format_schema_error(err: jsonschema.ValidationError) -> str:
    path = ".".join(str(p) for p in err.absolute_path) or "<top level>"
    if err.validator == "additionalProperties":
        allowed = ", ".join(sorted(err.schema.get("properties", {})))
        extra = sorted(set(err.instance) - set(err.schema.get("properties", {})))
        return f"{path}.{extra[0] if extra else '?'}: unknown key; allowed: {allowed}"
    if err.validator == "enum":
        return f"{path}: {err.instance!r} is not allowed; allowed: {', '.join(map(repr, err.validator_value))}"
    if err.validator == "required":
        return f"{path}: {err.message}"
    return f"{path}: {err.message}"


def validate_config(raw: dict, check_files: bool = True) -> dict:
    """Validate a raw config and return it merged with the defaults."""
    if not isinstance(raw, dict):
        raise ConfigError("the config must be a mapping of keys to values")
    validator = jsonschema.Draft202012Validator(schema())
    errors = sorted(validator.iter_errors(raw), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        raise ConfigError("invalid config: " + "; ".join(_format_schema_error(e) for e in errors[:5]))
    cfg = _merge(DEFAULTS, raw)
    families = [f for f in registry.FAMILIES if f in raw]
    if not families:
        raise ConfigError(f"the config declares no family; add at least one of: {', '.join(registry.FAMILIES)}")
    validators = {"text": _validate_text, "image": _validate_image}
    for family in registry.FAMILIES:
        if family not in raw:
            cfg.pop(family, None)  # defaults of an undeclared family are not a family
            continue
        validators[family](cfg[family], check_files)
        for name, exp in cfg[family]["experiments"].items():
            batch = exp.get("batch_size")
            if batch is not None and batch % cfg["processes"]:
                raise ConfigError(f"{family}.experiments.{name}.batch_size: {batch} is not divisible by processes "
                                  f"({cfg['processes']}): every data-parallel process takes an equal shard")
    return cfg


def _validate_text(text: dict, check_files: bool) -> None:
    from dagzoo.data.text import check_corpus_name

    try:
        check_corpus_name(text["corpus"])
    except Exception as e:
        raise ConfigError(f"text.corpus: {e}") from None
    if check_files and text["corpus"].startswith("file:") and not Path(text["corpus"][5:]).is_file():
        raise ConfigError(f"text.corpus: corpus file not found: {text['corpus'][5:]}")
    tok = text["tokenizer"]
    if tok["kind"] == "char" and "vocab_size" in tok:
        raise ConfigError("text.tokenizer.vocab_size: only the bpe tokenizer takes a vocab_size")
    ev = text["eval"]
    if ev["sample_length"] > ev["window"]:
        raise ConfigError(f"text.eval.sample_length: must be <= text.eval.window ({ev['window']}): samples are "
                          "generated inside one window, as the models are trained and evaluated")
    evaluator = ev.get("genppl_evaluator")
    if evaluator is not None:
        if evaluator not in text["experiments"]:
            raise ConfigError(f"text.eval.genppl_evaluator: {evaluator!r} is not an experiment; allowed: "
                              + ", ".join(sorted(text["experiments"])))
        if not registry.get_model("text", text["experiments"][evaluator]["model"]).exact_likelihood:
            raise ConfigError(f"text.eval.genppl_evaluator: {evaluator!r} must be an autoregressive "
                              "(exact-likelihood) model")
    for name, exp in text["experiments"].items():
        where = f"text.experiments.{name}"
        cls = registry.get_model("text", exp["model"], where=f"{where}.model")
        params = registry.validate_params(cls.Params, {k: v for k, v in exp.items() if k != "model"}, where)
        check = getattr(cls, "check_experiment", None)
        if check:
            check(params, text, where)


def image_samplers(cls, exp: dict) -> dict[str, dict]:
    """The named samplers of an image experiment (the model's defaults when none are given)."""
    return exp.get("samplers") or dict(getattr(cls, "default_samplers", {}))


def main_sampler(cls, exp: dict) -> str:
    return exp.get("main_sampler") or next(iter(image_samplers(cls, exp)))


def _validate_image(image: dict, check_files: bool) -> None:
    from dagzoo.data.images import check_source_name
    from dagzoo.image.samplers import parse_sampler

    source = image["data"]["source"]
    try:
        check_source_name(source)
    except Exception as e:
        raise ConfigError(f"image.data.source: {e}") from None
    if check_files and source.startswith("folder:") and not Path(source[7:]).is_dir():
        raise ConfigError(f"image.data.source: folder not found: {source[7:]}")
    for name, exp in image["experiments"].items():
        where = f"image.experiments.{name}"
        cls = registry.get_model("image", exp["model"], where=f"{where}.model")
        params = registry.validate_params(cls.Params, {k: v for k, v in exp.items() if k not in IMAGE_EXPERIMENT_KEYS},
                                          where)
        samplers = image_samplers(cls, exp)
        if not samplers:
            raise ConfigError(f"{where}.samplers: {exp['model']} has no default sampler; name at least one "
                              f"(kinds: {', '.join(cls.sampler_kinds)})")
        for sname, sspec in samplers.items():
            if sspec.get("kind") not in cls.sampler_kinds:
                raise ConfigError(f"{where}.samplers.{sname}.kind: {sspec.get('kind')!r} does not apply to "
                                  f"{exp['model']}; allowed: {', '.join(cls.sampler_kinds)}")
            parse_sampler(sspec, f"{where}.samplers.{sname}")
        main = main_sampler(cls, exp)
        if main not in samplers:
            raise ConfigError(f"{where}.main_sampler: {main!r} is not one of its samplers; allowed: "
                              + ", ".join(samplers))
        cls.check_experiment(params, image, where)


def experiment_specs(cfg: dict) -> list[dict]:
    """One resolved spec per (family, experiment, seed): everything a job's result depends on."""
    specs = []
    if "text" in cfg:
        text = cfg["text"]
        for name, exp in text["experiments"].items():
            cls = registry.get_model("text", exp["model"])
            params = registry.validate_params(cls.Params, {k: v for k, v in exp.items() if k != "model"},
                                              f"text.experiments.{name}")
            for seed in cfg["seeds"]:
                spec = {
                    "family": "text",
                    "experiment": name,
                    "model": exp["model"],
                    "seed": seed,
                    "params": dataclasses.asdict(params),
                    "data": {"corpus": text["corpus"], "split": text["split"], "tokenizer": text["tokenizer"]},
                    # only what the trained model depends on: sampling settings go to the sample
                    # rule as params, so changing them reruns sampling, not training
                    "eval": {k: text["eval"][k] for k in ("window", "val_tokens")},
                }
                spec["config_hash"] = stable_hash(spec)
                specs.append(spec)
    if "image" in cfg:
        image = cfg["image"]
        for name, exp in image["experiments"].items():
            cls = registry.get_model("image", exp["model"])
            params = registry.validate_params(cls.Params,
                                              {k: v for k, v in exp.items() if k not in IMAGE_EXPERIMENT_KEYS},
                                              f"image.experiments.{name}")
            for seed in cfg["seeds"]:
                # samplers are not part of the spec: adding or changing one reruns sampling only
                spec = {"family": "image", "experiment": name, "model": exp["model"], "seed": seed,
                        "params": dataclasses.asdict(params), "data": dict(image["data"])}
                spec["config_hash"] = stable_hash(spec)
                specs.append(spec)
    return specs


def load_run_spec(spec_path, family: str) -> tuple[dict, type, Any]:
    """A run's spec.json -> (spec, model class, validated params); the family must match."""
    from dagzoo.io import read_json

    spec = read_json(spec_path)
    if spec.get("family") != family:
        raise ConfigError(f"{spec_path}: not a {family} experiment (family {spec.get('family')!r})")
    where = f"{family}.experiments.{spec['experiment']}"
    cls = registry.get_model(family, spec["model"], where=f"{where}.model")
    return spec, cls, registry.validate_params(cls.Params, spec["params"], where)
