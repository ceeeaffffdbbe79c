"""A model family, declared in one place, and the registry of families.

A family is one package ``dagzoo/<name>/`` whose module ``family.py`` defines ``FAMILY``, an
instance of a `Family` subclass. It declares everything the core needs to know about it: its
config defaults and schema fragment (``schema.yaml`` beside it), the experiment keys that are not
model hyper-parameters, what goes into a run's spec, how its prepared data is opened, what one
training example is called (the Trainer's unit), its CLI stages, its rules file (``rules.smk``
beside it), its summary columns and its report section. Models live in ``dagzoo/<name>/models/``
and register themselves (see dagzoo.registry).

The core (config, cli, report, tracking, registry, train and the Snakefile) loops over
`families()` and never names one. Families are discovered, not listed: every subpackage of
``dagzoo`` with a ``family`` module is one, including subpackages that another directory on the
Python path contributes to the ``dagzoo`` namespace (how a test adds a family without touching
this tree).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import pkgutil
import re
from importlib import resources
from pathlib import Path
from typing import Any, Callable

import yaml

from dagzoo.errors import ConfigError


class Family:
    """Base class of a family declaration; subclasses override what differs."""

    #: the config section, package and CLI prefix
    name: str = ""
    #: position of the family in listings and the report (lower first)
    order: int = 100
    #: what the Trainer counts: one training example is one of these (tokens, images, clouds)
    unit: str = "examples"
    #: defaults of the family's config section (merged under the user's values)
    defaults: dict = {}
    #: experiment keys that are not model hyper-parameters (always includes "model")
    experiment_keys: tuple[str, ...] = ("model",)
    #: the fields of `spec_fields` that the family's stages read from a run's spec (text: eval's
    #: window): a spec given by hand is checked to hold them, with values of the kind of the
    #: family's defaults (null only where the default is null)
    spec_fields_read: tuple[str, ...] = ()
    #: the metrics of the README's headline table (dagzoo docs), each (label, regular expression
    #: of the metric key, digits): the first key of a results tree that matches is shown
    headline_metrics: tuple[tuple[str, str, int], ...] = ()

    def headline_keys(self, metrics: list[str], has_value) -> list[tuple[str, str, int]]:
        """(label, metric key, digits) per headline metric: the first of `metrics` its pattern
        matches for which `has_value(key)`; a headline metric none matches is left out."""
        found = []
        for label, pattern, digits in self.headline_metrics:
            key = next((m for m in metrics if re.fullmatch(pattern, m) and has_value(m)), None)
            if key is not None:
                found.append((label, key, digits))
        return found

    # ------------------------------------------------------------------ config
    def schema(self) -> dict:
        """The JSON-schema of the family's config section (``schema.yaml`` in its package)."""
        return yaml.safe_load((resources.files(self.package) / "schema.yaml").read_text())

    @property
    def package(self) -> str:
        return type(self).__module__.rsplit(".", 1)[0]

    def validate(self, section: dict, cfg: dict) -> None:
        """Checks beyond the schema and the model registry (data source names, cross-references)."""

    def check_files(self, section: dict) -> None:
        """Checks of what the section names on disk (a corpus file, an image folder). They can
        change while the config does not: run on every DAG start, also when the validated config
        is read from the cache (dagzoo.config_cache)."""

    def check_experiment(self, section: dict, name: str, exp: dict, cls: type, params: Any, where: str) -> None:
        """Cross-checks of one experiment against its section (the model's own by default)."""
        check = getattr(cls, "check_experiment", None)
        if check:
            check(params, section, where)

    def rule_facts(self, cls: type, exp: dict) -> dict:
        """What the family's rules file needs to know of an experiment's model class (JSON
        values), e.g. its samplers; computed with the validated config and cached beside it
        (dagzoo.config_cache), so planning a DAG imports no model."""
        return {}

    def spec_fields(self, section: dict) -> dict:
        """What a trained model depends on besides its hyper-parameters (data, tokenizer, ...):
        fields of every run's spec (and so of its config hash)."""
        return {}

    def dataset(self, section: dict) -> str:
        """A short name of the data set (the MLflow `dagzoo.dataset` tag)."""
        return ""

    # ------------------------------------------------------------------ runs
    def open_data(self, data_dir: Path) -> Any:
        """The prepared data a model is built on."""
        raise NotImplementedError

    def add_commands(self, sub: argparse._SubParsersAction, common: Callable[[argparse.ArgumentParser], None]) -> None:
        """Register the family's CLI stages; `common(parser)` adds --spec/--data/--run-dir/
        --results/--threads/--rule for stages that work on one run."""

    def summary_fields(self, run_dir: Path, spec: dict, metrics: dict) -> dict:
        """Extra columns of the run's summary row; may add metrics read from other files."""
        return {}

    def report_section(self, df, histories: dict, results: Path, out: Path) -> tuple[list[str], list[Path]]:
        """Markdown lines and plot files of the family's part of the report."""
        return [], []

    # ------------------------------------------------------------------ workflow
    def rules_file(self) -> Path:
        return Path(str(resources.files(self.package) / "rules.smk"))


_FAMILIES: dict[str, Family] | None = None


def families() -> dict[str, Family]:
    """Every family found under the ``dagzoo`` namespace, by name, in report order."""
    global _FAMILIES
    if _FAMILIES is None:
        import dagzoo

        found = []
        for info in pkgutil.iter_modules(dagzoo.__path__):
            if not info.ispkg or importlib.util.find_spec(f"dagzoo.{info.name}.family") is None:
                continue
            fam = importlib.import_module(f"dagzoo.{info.name}.family").FAMILY
            if fam.name != info.name:
                raise TypeError(f"dagzoo.{info.name}.family.FAMILY is named {fam.name!r}, not {info.name!r}")
            found.append(fam)
        _FAMILIES = {f.name: f for f in sorted(found, key=lambda f: (f.order, f.name))}
    return _FAMILIES


def get_family(name: str, where: str = "family") -> Family:
    fams = families()
    if name not in fams:
        raise ConfigError(f"{where}: unknown family {name!r}; allowed: {', '.join(fams)}")
    return fams[name]
