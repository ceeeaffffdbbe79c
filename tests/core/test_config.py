"""Invalid configs fail before any job runs, naming the key path and the allowed values."""

import subprocess

import pytest
import yaml

from dagzoo.config import experiment_specs, load_config, validate_config
from dagzoo.errors import ConfigError

from conftest import ROOT


def text_cfg(**experiments):
    return {"text": {"corpus": "kjv", "experiments": experiments or {"kn3": {"model": "ngram", "order": 3}}}}


def test_default_config_is_valid():
    cfg = validate_config(load_config(ROOT / "config" / "config.yaml"))
    names = {s["experiment"] for s in experiment_specs(cfg)}
    assert {"kn3", "kn5", "kn7", "transformer"} <= names


@pytest.mark.parametrize(
    "path", [p for p in sorted((ROOT / "config").glob("*.yaml")) if p.name != "schema.yaml"], ids=lambda p: p.name
)
def test_every_shipped_config_is_valid(path):
    assert experiment_specs(validate_config(load_config(path)))


@pytest.mark.probe
@pytest.mark.parametrize(
    "cfg, expected",
    [
        (
            text_cfg(x={"model": "lstm"}),
            ["text.experiments.x.model", "unknown text model 'lstm'", "ngram", "transformer"],
        ),
        (text_cfg(x={"model": "transformer", "steps": -5}), ["text.experiments.x.steps", ">= 1", "-5"]),
        (text_cfg(x={"model": "ngram", "ordr": 3}), ["text.experiments.x.ordr", "unknown hyper-parameter", "order"]),
        (text_cfg(x={"model": "ngram", "order": "3"}), ["text.experiments.x.order", "expected int"]),
        (
            text_cfg(x={"model": "transformer", "d_model": 100, "n_head": 3}),
            ["text.experiments.x.d_model", "divisible"],
        ),
        (
            {"text": {"corpus": "kjv", "tokenizer": {"kind": "wordpiece"}, "experiments": {"a": {"model": "ngram"}}}},
            ["text.tokenizer.kind", "'char'", "'bpe'"],
        ),
        (
            {"text": {"corpus": "kjv", "experiments": {"a": {"model": "ngram"}}}, "seedz": [1]},
            ["seedz", "unknown key", "seeds"],
        ),
        ({"text": {"corpus": "gutenberg", "experiments": {"a": {"model": "ngram"}}}}, ["text.corpus", "kjv", "file:"]),
        (
            {"text": {"corpus": "file:/nonexistent/corpus.txt", "experiments": {"a": {"model": "ngram"}}}},
            ["text.corpus", "not found", "/nonexistent/corpus.txt"],
        ),
        ({"seeds": []}, ["seeds"]),
        (
            {"text": {"corpus": "kjv", "eval": {"genppl_evaluator": "nope"}, "experiments": {"a": {"model": "ngram"}}}},
            ["text.eval.genppl_evaluator", "'nope' is not an experiment", "a"],
        ),
        (
            {"text": {"corpus": "kjv", "eval": {"genppl_evaluator": "m"}, "experiments": {"m": {"model": "mdlm"}}}},
            ["text.eval.genppl_evaluator", "autoregressive"],
        ),
        (text_cfg(b={"model": "bd3lm", "beta": 0.9, "omega": 0.5}), ["text.experiments.b.beta", "omega"]),
        (text_cfg(s={"model": "sedd", "graph": "star"}), ["text.experiments.s.graph", "'absorbing'", "'uniform'"]),
    ],
)
def test_invalid_config_message(cfg, expected):
    with pytest.raises(ConfigError) as e:
        validate_config(cfg)
    for piece in expected:
        assert piece in str(e.value), str(e.value)


def test_spec_hash_changes_only_with_the_experiment():
    a = experiment_specs(validate_config(text_cfg(kn3={"model": "ngram", "order": 3}, kn5={"model": "ngram"})))
    b = experiment_specs(
        validate_config(text_cfg(kn3={"model": "ngram", "order": 3}, kn5={"model": "ngram", "order": 6}))
    )
    ha = {s["experiment"]: s["config_hash"] for s in a}
    hb = {s["experiment"]: s["config_hash"] for s in b}
    assert ha["kn3"] == hb["kn3"] and ha["kn5"] != hb["kn5"]


@pytest.mark.probe
def test_snakemake_refuses_invalid_config_before_any_job(tmp_path):
    cfg = text_cfg(x={"model": "transformer", "steps": -1})
    cfg["results"] = str(tmp_path / "results")
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(cfg))
    r = subprocess.run(
        ["snakemake", "-n", "--cores", "1", "--configfile", str(tmp_path / "bad.yaml")],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert r.returncode != 0
    assert "text.experiments.x.steps: must be >= 1, got -1" in r.stdout + r.stderr
    assert not (tmp_path / "results").exists()


def test_a_json_config_is_read_as_snakemake_reads_it(tmp_path):
    """A config that is JSON is read as JSON, as Snakemake reads a --configfile (1e-05 is a number
    there; YAML 1.1 reads it as text); a key written twice in one object is refused with both lines
    (through the YAML reading, JSON being YAML), where Snakemake would keep the last."""
    path = tmp_path / "c.json"
    path.write_text('{\n "seeds": [0],\n "text": {"experiments": {"t": {"model": "transformer", "lr": 1e-05}}}\n}\n')
    assert load_config(path)["text"]["experiments"]["t"]["lr"] == 1e-05
    path.write_text('{\n "seeds": [0],\n "text": {\n  "tokenizer": {"kind": "char"},\n  "tokenizer": {}\n }\n}\n')
    with pytest.raises(ConfigError, match=r"c.json: text.tokenizer: duplicate key \(lines 4 and 5\)"):
        load_config(path)
    path.write_text("lr: 1e-05\n")  # YAML: text, as Snakemake's YAML reader also has it
    assert load_config(path)["lr"] == "1e-05"
