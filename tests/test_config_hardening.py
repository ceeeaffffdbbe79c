"""Configs that used to pass validation and then misbehave (a vanished experiment, NaN or inf
hyper-parameters, a learning rate of 0, an overflowing seed, outputs written to /) are refused
up front: one line naming the key path, exit status 1, no traceback."""

import re
import subprocess

import pytest
import yaml

from conftest import BIN, ROOT, dagzoo
from dagzoo.config import load_config, validate_config
from dagzoo.errors import ConfigError
from dagzoo.image.samplers import EDMSampler
from dagzoo.registry import param, validate_params

# kn3 written twice: plain YAML keeps the second and the first experiment silently vanishes
DUPLICATE_EXPERIMENT = """\
text:
  corpus: kjv
  experiments:
    kn3:
      model: ngram
      order: 3
    kn5:
      model: ngram
    kn3:
      model: ngram
      order: 4
"""
DUPLICATE_MESSAGE = "text.experiments.kn3: duplicate key (lines 4 and 9)"


def text_cfg(**top) -> dict:
    """A small valid text config (one ngram, one transformer), with top-level keys overridden."""
    return {"text": {"corpus": "kjv", "experiments": {"kn3": {"model": "ngram", "order": 3},
                                                      "t": {"model": "transformer"}}}, **top}


def with_transformer(**params) -> dict:
    cfg = text_cfg()
    cfg["text"]["experiments"]["t"].update(params)
    return cfg


def image_cfg(**sampler) -> dict:
    """A small valid image config: a ddpm with one EDM sampler whose params are `sampler`."""
    return {"image": {"data": {"source": "digits"},
                      "experiments": {"d": {"model": "ddpm", "samplers": {"edm": {"kind": "edm", **sampler}}}}}}


def with_text_section(**section) -> dict:
    cfg = text_cfg()
    cfg["text"].update(section)
    return cfg


# (config, the start of the one-line message after "dagzoo: error: ")
PROBES = {
    "duplicate_experiment": (DUPLICATE_EXPERIMENT, DUPLICATE_MESSAGE),
    "lr_nan": (with_transformer(lr=float("nan")), "text.experiments.t.lr: must be a finite number"),
    "dropout_nan": (with_transformer(dropout=float("nan")), "text.experiments.t.dropout: must be a finite number"),
    "split_val_nan": (with_text_section(split={"val": float("nan")}), "text.split.val: must be a finite number"),
    "lr_inf": (with_transformer(lr=float("inf")), "text.experiments.t.lr: must be a finite number"),
    "lr_zero": (with_transformer(lr=0), "text.experiments.t.lr: must be > 0"),
    # a schema number with only an exclusiveMinimum: jsonschema itself lets inf through
    "temperature_inf": (with_text_section(eval={"temperature": float("inf")}),
                        "text.eval.temperature: must be a finite number"),
    "seed_overflow": (text_cfg(seeds=[0, 2**70]), "invalid config: seeds.1:"),
    "results_empty": (text_cfg(results=""), "invalid config: results:"),
    "results_root": (text_cfg(results="/"), "results: '/' is the filesystem root"),
    "sampler_nan": (image_cfg(S_max=float("nan")), "image.experiments.d.samplers.edm.S_max: must be a finite"),
    "sampler_inf_not_allowed": (image_cfg(S_churn=float("inf")),
                                "image.experiments.d.samplers.edm.S_churn: must be a finite number"),
}


@pytest.mark.parametrize("cfg, message", PROBES.values(), ids=PROBES.keys())
def test_validate_config_refuses(tmp_path, cfg, message):
    path = tmp_path / "bad.yaml"
    path.write_text(cfg if isinstance(cfg, str) else yaml.safe_dump(cfg))
    r = dagzoo("validate-config", path, check=False)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("dagzoo: error: ")
    assert message in lines[0], lines[0]


def test_snakemake_refuses_a_duplicate_key_before_any_job(tmp_path):
    (tmp_path / "bad.yaml").write_text(DUPLICATE_EXPERIMENT)
    r = subprocess.run([str(BIN / "snakemake"), "-n", "-s", str(ROOT / "Snakefile"), "--directory", "work",
                        "--configfile", "bad.yaml", "--cores", "1"],
                       cwd=tmp_path, capture_output=True, text=True)
    out = r.stdout + r.stderr
    assert r.returncode != 0
    assert f"dagzoo: invalid config: {tmp_path / 'bad.yaml'}: {DUPLICATE_MESSAGE}" in out, out
    assert "Traceback" not in r.stderr
    assert not re.search(r'File "[^"]*dagzoo[/\\][^"]*\.py"', r.stderr), r.stderr
    assert not (tmp_path / "work" / "results").exists()


# ----------------------------------------------------------------------------- what stays valid
def test_merge_keys_and_their_overrides_are_not_duplicates(tmp_path):
    path = tmp_path / "merge.yaml"
    path.write_text("""\
backbone: &backbone {model: transformer, d_model: 64, lr: 0.001}
text:
  corpus: kjv
  experiments:
    small:
      <<: *backbone
      lr: 0.003
    wide:
      <<: *backbone
      d_model: 128
""")
    exps = load_config(path)["text"]["experiments"]
    assert exps["small"] == {"model": "transformer", "d_model": 64, "lr": 0.003}
    assert exps["wide"]["d_model"] == 128


def test_a_duplicate_key_in_a_list_item_names_its_index(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("seeds: [0]\nclaims:\n  - kind: x\n    kind: y\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: claims\.0\.kind: duplicate key \(lines 3 and 4\)"):
        load_config(path)


def test_an_infinite_sampler_threshold_is_allowed_where_declared():
    # S_max = inf is EDM's "churn at every noise level"; the field says so with allow_inf
    assert validate_config(image_cfg(S_max=float("inf")))
    with pytest.raises(ConfigError, match="S_max: must be >= 0.0, got -inf"):
        validate_params(EDMSampler, {"S_max": float("-inf")}, "s")


def test_validate_params_refuses_nan_even_where_inf_is_allowed():
    with pytest.raises(ConfigError, match=r"s\.S_max: must be a finite number or \.inf / -\.inf, got nan"):
        validate_params(EDMSampler, {"S_max": float("nan")}, "s")


def test_gt_is_an_exclusive_minimum():
    from dataclasses import dataclass

    @dataclass
    class P:
        rate: float = param(1.0, "", gt=0.0)

    assert validate_params(P, {"rate": 1e-9}, "p").rate == 1e-9
    for bad in (0, 0.0, -1.0):
        with pytest.raises(ConfigError, match=r"p\.rate: must be > 0\.0"):
            validate_params(P, {"rate": bad}, "p")


def test_largest_seed_and_a_results_subdirectory_are_valid():
    cfg = validate_config(text_cfg(seeds=[2**31 - 1], results="/tmp/dagzoo-results"))
    assert cfg["seeds"] == [2**31 - 1]
