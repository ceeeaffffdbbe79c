"""The Snakefile's validated config, cached per (config files, config, code version)
(dagzoo.config_cache): read back only when all three are those it was made from, never for a
config that does not validate, ignored when damaged; the data files a config names are checked
on every read; a dry run from the cache imports no model (and so no torch)."""

import json
import os
import subprocess

import pytest
import yaml

from dagzoo import config_cache
from dagzoo.config import experiment_specs, validate_config
from dagzoo.errors import ConfigError

from conftest import BIN, ROOT, planned_jobs, small_corpus, snakemake

DEFAULT = ROOT / "config" / "config.yaml"


def _text_config(tmp_path, **experiments):
    corpus = small_corpus(tmp_path / "corpus.txt", lines=100)
    raw = {
        "results": str(tmp_path / "results"),
        "seeds": [0],
        "text": {
            "corpus": f"file:{corpus}",
            "split": {"val": 0.1, "test": 0.1},
            "eval": {"window": 32, "val_tokens": 256, "samples": 1, "sample_length": 16},
            "experiments": experiments or {"kn3": {"model": "ngram", "order": 3}},
        },
    }
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(raw))
    return raw, path


class _Count:
    """Wraps a function of config_cache and counts its calls."""

    def __init__(self, monkeypatch, name):
        self.calls, self.fn = 0, getattr(config_cache, name)
        monkeypatch.setattr(config_cache, name, self)

    def __call__(self, *a, **k):
        self.calls += 1
        return self.fn(*a, **k)


def test_the_second_read_is_the_cache_and_equals_a_validation(tmp_path, monkeypatch):
    raw = yaml.safe_load(DEFAULT.read_text())
    cfg, specs, facts = config_cache.validated_config(raw, [str(DEFAULT)], tmp_path / "cache")
    assert len(list((tmp_path / "cache").glob("validated-*.json"))) == 1
    # what a validation gives (as JSON keeps it: tuples become lists)
    direct = validate_config(raw)
    assert cfg == json.loads(json.dumps(direct))
    assert specs == json.loads(json.dumps(experiment_specs(direct)))
    assert facts["text/transformer"]["threaded_training"] and not facts["text/kn9"]["threaded_training"]
    assert facts["image/ddpm"]["main_sampler"] in facts["image/ddpm"]["samplers"]

    def refuse(*a, **k):
        raise AssertionError("validated again")

    monkeypatch.setattr(config_cache, "validate_config", refuse)
    monkeypatch.setattr(config_cache, "load_config", refuse)
    assert config_cache.validated_config(raw, [str(DEFAULT)], tmp_path / "cache") == (cfg, specs, facts)


@pytest.mark.parametrize("change", ["file bytes", "config", "code"])
def test_a_change_of_config_file_config_or_code_validates_again(tmp_path, monkeypatch, change):
    raw, path = _text_config(tmp_path)
    config_cache.validated_config(raw, [str(path)], tmp_path / "cache")
    validations = _Count(monkeypatch, "validate_config")
    if change == "file bytes":  # e.g. a duplicate key added: the file is read again
        path.write_text(path.read_text() + "# a comment\n")
    elif change == "config":  # e.g. a --config override
        raw = {**raw, "seeds": [0, 1]}
    else:
        monkeypatch.setattr(config_cache, "code_fingerprint", lambda: "another version")
    _, specs, _ = config_cache.validated_config(raw, [str(path)], tmp_path / "cache")
    assert validations.calls == 1
    assert len(specs) == (2 if change == "config" else 1)


def test_a_duplicate_key_added_to_the_file_is_refused_not_read_from_the_cache(tmp_path):
    raw, path = _text_config(tmp_path)
    config_cache.validated_config(raw, [str(path)], tmp_path / "cache")
    path.write_text(path.read_text() + "seeds: [0]\n")  # Snakemake's loader keeps the last: raw is unchanged
    with pytest.raises(ConfigError, match="seeds: duplicate key"):
        config_cache.validated_config(raw, [str(path)], tmp_path / "cache")


@pytest.mark.probe
def test_a_config_that_does_not_validate_is_never_cached(tmp_path):
    raw, path = _text_config(tmp_path, kn3={"model": "ngram", "order": 0})
    for _ in range(2):
        with pytest.raises(ConfigError, match="text.experiments.kn3.order"):
            config_cache.validated_config(raw, [str(path)], tmp_path / "cache")
    assert not list((tmp_path / "cache").glob("validated-*.json"))


@pytest.mark.probe
@pytest.mark.parametrize("damage", ["garbage", "truncated", "another key", "wrong shape"])
def test_a_damaged_cache_file_is_ignored_and_rewritten(tmp_path, monkeypatch, damage):
    raw, path = _text_config(tmp_path)
    first = config_cache.validated_config(raw, [str(path)], tmp_path / "cache")
    (cached,) = (tmp_path / "cache").glob("validated-*.json")
    payload = json.loads(cached.read_text())
    cached.write_text(
        {
            "garbage": "\x00not json",
            "truncated": cached.read_text()[:100],
            "another key": json.dumps({**payload, "key": "0" * 32}),
            "wrong shape": json.dumps({**payload, "specs": {"a": 1}}),
        }[damage]
    )
    validations = _Count(monkeypatch, "validate_config")
    assert config_cache.validated_config(raw, [str(path)], tmp_path / "cache") == first
    assert validations.calls == 1
    assert json.loads(cached.read_text()) == payload


@pytest.mark.probe
def test_data_files_are_checked_on_every_read(tmp_path):
    raw, path = _text_config(tmp_path)
    config_cache.validated_config(raw, [str(path)], tmp_path / "cache")
    corpus = raw["text"]["corpus"][len("file:") :]
    os.remove(corpus)
    with pytest.raises(ConfigError, match="corpus"):
        config_cache.validated_config(raw, [str(path)], tmp_path / "cache")


def test_the_cache_keeps_the_newest_files(tmp_path, monkeypatch):
    monkeypatch.setattr(config_cache, "KEEP", 2)
    raw, path = _text_config(tmp_path)
    for seeds in ([0], [1], [2]):
        config_cache.validated_config({**raw, "seeds": seeds}, [str(path)], tmp_path / "cache")
    assert len(list((tmp_path / "cache").glob("validated-*.json"))) == 2


def test_an_unwritable_cache_only_costs_the_validation(tmp_path):
    raw, path = _text_config(tmp_path)
    blocked = tmp_path / "cache"
    blocked.write_text("a file where the cache directory would be")
    cfg, specs, _ = config_cache.validated_config(raw, [str(path)], blocked)
    assert [s["experiment"] for s in specs] == ["kn3"] and cfg["seeds"] == [0]


def test_a_dry_run_from_the_cache_imports_no_model(tmp_path, monkeypatch):
    """The second `snakemake -n` of the default config (every family; a genppl evaluator and image
    samplers, which the rules read from the models) plans the same jobs from .snakemake/dagzoo
    without importing torch (PYTHONPROFILEIMPORTTIME lists every module the process imports)."""
    first = snakemake(tmp_path, DEFAULT, "-n")
    assert first.returncode == 0, first.stderr[-2000:]
    assert list((tmp_path / ".snakemake" / "dagzoo").glob("validated-*.json"))
    monkeypatch.setenv("PYTHONPROFILEIMPORTTIME", "1")
    second = snakemake(tmp_path, DEFAULT, "-n")
    assert second.returncode == 0, second.stderr[-2000:]
    imported = {
        line.rsplit("|", 1)[-1].strip() for line in second.stderr.splitlines() if line.startswith("import time:")
    }
    assert "snakemake" in imported and "dagzoo.config_cache" in imported, "the import list was not captured"
    assert "torch" not in imported and not any(".models." in m for m in imported), sorted(imported)
    jobs = sorted(planned_jobs(second.stdout))
    assert jobs == sorted(planned_jobs(first.stdout))
    assert ("image_sample", "exp=ddpm, sampler=heun18, seed=0") in jobs or any(
        rule == "image_sample" and "heun18" in w for rule, w in jobs
    ), jobs


def test_rule_functions_carry_their_signature():
    """Snakemake inspects a param or input function's signature on every call (several times per
    job); the rules' helper functions carry it precomputed (inspect returns `__signature__` as it
    is) and still compute what they did."""
    import inspect

    from dagzoo.workflow import input_dir, job_function, literal, output_dir

    for function, parameters in (
        (input_dir("train", levels=2), ["w", "input"]),
        (output_dir(), ["w", "output"]),
        (literal("{x}"), ["wildcards"]),
        (job_function(lambda w, seed=1: seed), ["w", "seed"]),
    ):
        assert inspect.signature(function) is function.__signature__
        assert list(function.__signature__.parameters) == parameters
    assert input_dir("train", levels=2)(None, {"train": "r/text/a/0/train.json"}) == "r/text/a"
    assert output_dir()(None, ["r/text/a/0/train.json"]) == "r/text/a/0"
    assert literal("{x}")(None) == "{x}"


def test_the_dry_run_floor_uses_the_snakefiles_collector_settings():
    """bench/bench_dryrun.py times Snakemake alone with the garbage-collector settings the
    Snakefile makes (so dagzoo's share is not flattered): both must be the same lines."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_dryrun", ROOT / "bench" / "bench_dryrun.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    settings = [line for line in bench.COLLECTOR_SETTINGS.splitlines() if line.startswith("gc.")]
    snakefile = [line for line in (ROOT / "Snakefile").read_text().splitlines() if line.startswith("gc.")]
    assert settings and settings == snakefile


@pytest.mark.parametrize("form", ["yaml", "json"])
def test_validate_config_with_cache_spares_the_following_dry_run_the_validation(tmp_path, monkeypatch, form):
    """`make run CONFIG=...` checks the config with `dagzoo validate-config --cache
    .snakemake/dagzoo` first: the Snakemake run that follows reads that outcome and imports no
    model (a config that does not validate is refused as before, and cached nowhere). A JSON
    config is read as Snakemake reads it (json.dumps writes 1e-05, which YAML 1.1 reads as text)."""
    raw, path = _text_config(
        tmp_path, tf={"model": "transformer", "n_layer": 1, "n_head": 2, "d_model": 16, "steps": 5, "lr": 1e-5}
    )
    if form == "json":
        path = path.with_suffix(".json")
        path.write_text(json.dumps(raw, indent=1))
        assert "1e-05" in path.read_text()
    cache = tmp_path / ".snakemake" / "dagzoo"
    # as the Makefile calls it: relative paths, where snakemake then runs
    r = subprocess.run(
        [str(BIN / "dagzoo"), "validate-config", "--cache", ".snakemake/dagzoo", path.name],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert r.returncode == 0 and "valid (1 experiment x seed runs)" in r.stdout, r.stderr
    assert len(list(cache.glob("validated-*.json"))) == 1
    monkeypatch.setenv("PYTHONPROFILEIMPORTTIME", "1")
    dry = snakemake(tmp_path, path, "-n")
    assert dry.returncode == 0, dry.stderr[-2000:]
    imported = {line.rsplit("|", 1)[-1].strip() for line in dry.stderr.splitlines() if line.startswith("import time:")}
    assert "dagzoo.config_cache" in imported, "the import list was not captured"
    assert "torch" not in imported and not any(".models." in m for m in imported), sorted(imported)
    assert len(list(cache.glob("validated-*.json"))) == 1  # read, not written anew
    monkeypatch.delenv("PYTHONPROFILEIMPORTTIME")
    raw["text"]["experiments"]["tf"]["lr"] = 0
    bad = tmp_path / f"bad.{form}"
    bad.write_text(json.dumps(raw) if form == "json" else yaml.safe_dump(raw))
    r = subprocess.run(
        [str(BIN / "dagzoo"), "validate-config", "--cache", str(cache), str(bad)], capture_output=True, text=True
    )
    assert r.returncode == 1 and "text.experiments.tf.lr" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert len(list(cache.glob("validated-*.json"))) == 1
