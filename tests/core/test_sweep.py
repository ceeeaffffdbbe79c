"""Sweeps: expansion (grid, zip, nested key paths), names that say their point, errors that name
the sweep key and value, `dagzoo sweep show`, and the report's sweep section; a small sweep runs
through the DAG."""

import json

import pandas as pd
import pytest
import yaml

from dagzoo.config import validate_config
from dagzoo.errors import ConfigError
from dagzoo.family import families
from dagzoo.sweep import NAME_PATTERN, expand, parse_name

from conftest import ROOT, dagzoo, small_corpus, snakemake


def test_grid_times_zip_in_written_order_with_nested_key_paths():
    exp = {
        "model": "m",
        "opt": {"beta": 0.9},
        "sweep": {
            "grid": {"lr": [0.001, 0.01], "opt.beta": [0.8, 0.99]},
            "zip": {"steps": [10, 20], "tag": ["a", "b"]},
        },
    }
    out = expand("base", exp, "fam.experiments.base")
    assert len(out) == 2 * 2 * 2
    assert list(out)[:2] == ["base@lr=0.001,beta=0.8,steps=10,tag=a", "base@lr=0.001,beta=0.8,steps=20,tag=b"]
    e, point = out["base@lr=0.01,beta=0.99,steps=20,tag=b"]
    assert e == {"model": "m", "opt": {"beta": 0.99}, "lr": 0.01, "steps": 20, "tag": "b"}
    assert point.base == "base" and point.values[1] == ("grid", "opt.beta", 0.99)
    assert exp["opt"] == {"beta": 0.9}  # the written experiment is not touched
    assert parse_name("base@lr=0.01,beta=0.99,steps=20,tag=b") == (
        "base",
        {"lr": 0.01, "beta": 0.99, "steps": 20, "tag": "b"},
    )
    assert parse_name("plain") == ("plain", {})
    # two swept keys with one last part keep their whole paths; a list value reads 1+2+2
    both = expand("b", {"model": "m", "sweep": {"grid": {"a.w": [1], "c.w": [[1, 2, 2]]}}}, "x")
    assert list(both) == ["b@a.w=1,c.w=1+2+2"]


@pytest.mark.parametrize(
    "sweep, message",
    [
        ({"grid": {"lr": [1, 2]}, "zip": {"lr": [1, 2]}}, r"x.sweep.zip.lr: also in grid"),
        ({"zip": {"a": [1, 2], "b": [1]}}, r"x.sweep.zip: lists of different lengths \(a: 2, b: 1\)"),
        ({"grid": {"lr": []}}, r"x.sweep.grid.lr: expected a non-empty list"),
        ({"grid": {"lr": [1]}, "random": {}}, r"x.sweep.random: unknown key; allowed: grid, zip"),
        ({"grid": {"model": ["a"]}}, r"x.sweep.grid.model: cannot be swept"),
        ({"grid": {"lr": [1, 1]}}, r"x.sweep: two points are both named n@lr=1"),
        ({"grid": {"name": ["a b"]}}, r"x.sweep.grid.name: 'a b' cannot name an experiment"),
        ({}, r"x.sweep: expected a mapping with grid and/or zip"),
    ],
)
def test_malformed_sweeps_are_refused_by_key_path(sweep, message):
    with pytest.raises(ConfigError, match=message):
        expand("n", {"model": "m", "sweep": sweep}, "x")


def _example() -> dict:
    return yaml.safe_load((ROOT / "config" / "sweep_example.yaml").read_text())


def test_an_expanded_experiment_is_validated_and_its_error_names_the_sweep_key_and_value():
    cfg = validate_config(_example(), check_files=False)
    names = list(cfg["text"]["experiments"])
    assert len(names) == 9 and names[0] == "transformer@lr=0.0005,d_model=64"
    assert cfg["text"]["experiments"]["transformer@lr=0.008,d_model=256"]["d_model"] == 256
    for bad, message in [
        ({"d_model": [64, 130]}, r"^text.experiments.transformer.sweep.grid.d_model: value 130 \(transformer@"),
        ({"lr": [-1.0]}, r"^text.experiments.transformer.sweep.grid.lr: value -1.0 .*must be > 0"),
        ({"widthh": [1]}, r"^text.experiments.transformer.sweep.grid.widthh: value 1 .*unknown hyper-parameter"),
    ]:
        raw = _example()
        raw["text"]["experiments"]["transformer"]["sweep"]["grid"] = bad
        with pytest.raises(ConfigError, match=message):
            validate_config(raw, check_files=False)
    raw = _example()  # a written experiment with an expanded one's name
    raw["text"]["experiments"]["transformer@lr=0.0005,d_model=64"] = {"model": "transformer"}
    with pytest.raises(ConfigError, match=r"written and also made by the sweep of transformer"):
        validate_config(raw, check_files=False)


def test_every_family_schema_allows_the_names_a_sweep_makes():
    for name, fam in families().items():
        pattern = fam.schema()["properties"]["experiments"].get("propertyNames", {}).get("pattern")
        assert pattern in (None, NAME_PATTERN), name


def test_sweep_show_prints_nine_experiments_per_swept_model():
    out = dagzoo("sweep", "show", ROOT / "config" / "sweep_example.yaml").stdout
    assert "text.experiments.transformer: 9 experiments x 1 seeds (grid lr, grid d_model)" in out
    assert "image.experiments.vae: 9 experiments x 1 seeds (grid lr, grid hidden)" in out
    assert sum(line.startswith("  transformer@") for line in out.splitlines()) == 9
    assert sum(line.startswith("  vae@") for line in out.splitlines()) == 9


def test_the_sweep_section_tabulates_means_and_plots_each_metric_against_each_key(tmp_path):
    from dagzoo.sweep_report import sweep_section

    rows = [
        {
            "family": "text",
            "experiment": f"t@lr={lr},d_model={w}",
            "model": "transformer",
            "seed": s,
            "test/bpc": 3.0 - lr * 100 + w / 1000 + 0.01 * s,
        }
        for lr in (0.001, 0.01)
        for w in (64, 128)
        for s in (0, 1)
    ] + [{"family": "text", "experiment": "plain", "model": "ngram", "seed": 0, "test/bpc": 2.0}]
    md, figures = sweep_section(pd.DataFrame(rows), tmp_path)
    text = "\n".join(md)
    assert "### text/t" in text and "4 experiments over `lr`, `d_model`" in text and "plain" not in text
    assert "| 0.01 | 128 | 2.133 ± 0.007 |" in text  # 3 - 1 + 0.128 + 0.005, std of (0, 0.01)
    assert [p.name for p in figures] == ["sweep_text_t.png"] and figures[0].read_bytes()[:4] == b"\x89PNG"
    assert sweep_section(pd.DataFrame(rows[-1:]), tmp_path) == ([], [])


@pytest.mark.slow  # 16 s of a DAG; the section, the names and the validation are tested above
def test_a_sweep_runs_through_the_dag_and_reports_its_plot(tmp_path):
    corpus = small_corpus(tmp_path / "corpus.txt")
    cfg = {
        "results": str(tmp_path / "results"),
        "seeds": [0],
        "threads": 1,
        "text": {
            "corpus": f"file:{corpus}",
            "eval": {"window": 32, "val_tokens": 512, "samples": 1, "sample_length": 16},
            "experiments": {"kn": {"model": "ngram", "sweep": {"grid": {"order": [2, 3]}}}},
        },
    }
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(cfg))
    r = snakemake(tmp_path, path)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    report = (tmp_path / "results" / "report" / "report.md").read_text()
    assert "### text/kn" in report and "![sweep text/kn](sweep_text_kn.png)" in report
    assert (tmp_path / "results" / "report" / "sweep_text_kn.png").is_file()
    summary = pd.read_parquet(tmp_path / "results" / "summary.parquet")
    assert sorted(summary.experiment) == ["kn@order=2", "kn@order=3"]
    spec = json.loads((tmp_path / "results" / "text" / "kn@order=3" / "0" / "spec.json").read_text())
    assert spec["params"]["order"] == 3
