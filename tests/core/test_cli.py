"""The command line's own options: its version, and the papers every model names."""

import re

import pytest

import dagzoo
from dagzoo import registry
from dagzoo.family import families

from conftest import ROOT
from conftest import dagzoo as run_dagzoo


def test_version_is_the_packages():
    version = re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.MULTILINE).group(1)
    assert dagzoo.__version__ == version
    out = run_dagzoo("--version")
    assert out.returncode == 0 and out.stdout.strip() == f"dagzoo {version}"


def test_every_trained_model_names_its_paper():
    # reference rows: nothing from a paper to implement
    references = {("repr", "random"), ("repr", "raw"), ("repr", "supervised"), ("parts", "height_prior")}
    for family in families():
        for key, cls in registry.models(family).items():
            if (family, key) in references:
                assert cls.papers == ()
                continue
            assert cls.papers, f"{family}/{key} names no paper"
            for paper in cls.papers:
                assert paper.url.startswith("https://") and 1990 < paper.year < 2100 and paper.title


def test_models_lists_the_papers():
    out = run_dagzoo("models")
    assert out.returncode == 0
    assert 'Karras et al. (2022), "Elucidating the Design Space of Diffusion-Based Generative Models"' in out.stdout
    assert "paper: none (a reference model)" in out.stdout


@pytest.mark.probe
def test_docs_refuses_a_page_name_that_leaves_the_docs_folder(tmp_path):
    out = run_dagzoo("docs", "--docs", tmp_path / "docs", "--results", tmp_path, "--name", "../../evil", check=False)
    assert out.returncode == 1 and "--name '../../evil': a page name is" in out.stderr
    assert "Traceback" not in out.stderr and not list(tmp_path.rglob("evil*"))
