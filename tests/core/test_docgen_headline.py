"""The README's headline tables come from a results tree: each family's declared metrics, with
the machine, commit and date of the run, and nothing else of the README changes."""

import json

import pandas as pd
import pytest

from dagzoo.docgen.headline import END, START, headline_markdown, update_readme
from dagzoo.errors import DataError


def fake_tree(tmp_path):
    rows = [
        {
            "family": "text",
            "experiment": "kn5",
            "model": "ngram",
            "n_seeds": 1,
            "test/bpc_mean": 1.88775,
            "test/bpc_std": float("nan"),
        },
        {
            "family": "image",
            "experiment": "edm",
            "model": "edm",
            "n_seeds": 2,
            "fid_80_mean": 58.43,
            "fid_80_std": 1.25,
            "kid_80_mean": 0.01494,
            "kid_80_std": 0.0011,
            "samplers/heun/fid_80_mean": 99.0,
            "samplers/heun/fid_80_std": 0.0,
        },
    ]
    pd.DataFrame(rows).to_parquet(tmp_path / "summary_by_experiment.parquet")
    (tmp_path / "dag.json").write_text(
        json.dumps(
            {
                "cpu_model": "Test CPU 9000",
                "cores": 2,
                "cpu_count": 4,
                "git_commit": "0123456789abcdef",
                "finished": "2026-12-07T15:00",
            }
        )
    )
    return tmp_path


def test_headline_tables_show_each_familys_metrics_and_their_origin(tmp_path):
    md = headline_markdown(fake_tree(tmp_path), "docs/results/default.md")
    assert md.startswith("*Test CPU 9000, 2 of 4 cores; commit 0123456789ab; 2026-12-07;")
    assert "**text** (seeds per experiment: 1)" in md and "**image** (seeds per experiment: 2)" in md
    assert "| kn5 | ngram | 1.888 |" in md  # one seed: no spread
    assert "| edm | edm | 58.4 ± 1.2 | 0.0149 ± 0.0011 |" in md  # the main sampler's fid_80, not heun's
    assert "99.0" not in md and "[docs/results/default.md](docs/results/default.md)" in md


def test_update_readme_replaces_only_the_block(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\nbefore\n{START} (generated) -->\nold\n{END}\nafter\n")
    assert update_readme(readme, "new table\n")
    assert readme.read_text() == f"# x\n\nbefore\n{START} (generated) -->\nnew table\n{END}\nafter\n"
    assert not update_readme(readme, "new table\n")  # unchanged: not rewritten


def test_refusals_name_the_file(tmp_path):
    with pytest.raises(DataError, match="summary_by_experiment.parquet: missing"):
        headline_markdown(tmp_path, "p.md")
    readme = tmp_path / "README.md"
    readme.write_text("# no markers\n")
    with pytest.raises(DataError, match="no headline block"):
        update_readme(readme, "x")
