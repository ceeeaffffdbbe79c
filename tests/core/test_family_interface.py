"""The family interface: a family added as one package (a fixture outside the source tree) runs
through the DAG end to end, and the core never names a family."""

import ast
import builtins
import io
import json
import os
import re
import subprocess
import tokenize

import pandas as pd
import pytest
import yaml

from conftest import BIN, ROOT

FIXTURE = ROOT / "tests" / "fixtures" / "toy_family"
CORE = [
    "config.py",
    "cli.py",
    "report.py",
    "tracking.py",
    "train.py",
    "registry.py",
    "stages.py",
    "lifecycle.py",
    "family.py",
    "config_cache.py",
]


def _code_words(path):
    """Every name and string token of a module, without comments and docstrings."""
    source = path.read_text()
    docstrings = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if (
                isinstance(first, ast.Expr)
                and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)
            ):
                docstrings.add(first.lineno)
    previous = None
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        after_dot, previous = previous is not None and previous.string == ".", tok
        if tok.type == tokenize.NAME and (tok.string in dir(builtins) or after_dot):
            # `repr` the builtin is not the representations family (the string "repr" would be), nor
            # an attribute such as Path(...).parts the parts family: a config is a dict, so naming a
            # family takes a string or a bare name
            continue
        if tok.type in (tokenize.NAME, tokenize.STRING) and tok.start[0] not in docstrings:
            yield tok.start[0], tok.string


def test_the_core_names_no_family():
    from dagzoo.family import families

    names = sorted(families())
    assert {"text", "image", "repr", "points", "parts"} <= set(names)
    pattern = re.compile(r"\b(" + "|".join(names) + r")\b")
    found = [
        f"{name}:{line}: {word}"
        for name in CORE
        for line, word in _code_words(ROOT / "src" / "dagzoo" / name)
        if pattern.search(word)
    ]
    assert found == []
    for smk in ("Snakefile", "workflow/rules/common.smk", "workflow/rules/report.smk"):
        code = "\n".join(line.split("#")[0] for line in (ROOT / smk).read_text().splitlines())
        assert not pattern.search(code), smk


def toy_config(tmp_path, steps=60):
    cfg = {
        "results": str(tmp_path / "results"),
        "seeds": [0, 1],
        "threads": 1,
        "toy": {
            "data": {"n": 256, "slope": 3.0},
            "experiments": {
                "lin": {
                    "model": "linear",
                    "steps": steps,
                    "batch_size": 16,
                    "lr": 0.3,
                    "warmup_steps": 0,
                    "weight_decay": 0.0,
                    "eval_every": 1000,
                    "log_every": 10,
                    "checkpoint_every": 20,
                }
            },
        },
        "claims": [{"name": "the line is learned", "lhs": "toy/lin/test/mse", "op": "<", "rhs": 0.1}],
    }
    path = tmp_path / "toy.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def toy_env():
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(FIXTURE), os.environ.get("PYTHONPATH")]))}


def test_a_family_in_one_package_runs_end_to_end(tmp_path):
    before = subprocess.run(
        ["git", "status", "--porcelain", "--", "src", "workflow", "Snakefile"], cwd=ROOT, capture_output=True, text=True
    ).stdout
    cfg = toy_config(tmp_path)
    cmd = [
        str(BIN / "snakemake"),
        "-s",
        str(ROOT / "Snakefile"),
        "--directory",
        str(tmp_path),
        "--cores",
        "2",
        "--configfile",
        str(cfg),
    ]
    r = subprocess.run(cmd, capture_output=True, text=True, env=toy_env())
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    results = tmp_path / "results"
    df = pd.read_parquet(results / "summary.parquet")
    assert list(zip(df.family, df.experiment, df.seed)) == [("toy", "lin", 0), ("toy", "lin", 1)]
    # it learned: the noise variance is 0.01, an untrained line is far off (slope 3)
    assert df["test/mse"].lt(0.05).all(), df["test/mse"]
    assert df["train/points"].eq(60 * 16).all() and df["train/points_per_s"].gt(0).all()
    history = [json.loads(line) for line in (results / "toy" / "lin" / "0" / "history.jsonl").read_text().splitlines()]
    assert history[-1]["points"] == 60 * 16 and history[-1]["step"] == 60
    claims = json.loads((results / "claims.json").read_text())["claims"]
    assert [c["verdict"] for c in claims] == ["held"] and claims[0]["n_seeds_lhs"] == 2
    report = (results / "report" / "report.md").read_text()
    assert "## Toy" in report and "the line is learned" in report
    assert (results / "logs" / "train" / "toy-lin-0.log").exists(), "the shared train rule trained it"
    r = subprocess.run([*cmd, "-n"], capture_output=True, text=True, env=toy_env())
    assert r.returncode == 0 and "Nothing to be done" in r.stdout + r.stderr
    r = subprocess.run([str(BIN / "dagzoo"), "models"], capture_output=True, text=True, env=toy_env())
    assert "toy/linear:" in r.stdout
    after = subprocess.run(
        ["git", "status", "--porcelain", "--", "src", "workflow", "Snakefile"], cwd=ROOT, capture_output=True, text=True
    ).stdout
    assert after == before, "adding a family edits nothing outside its package"


@pytest.mark.probe
def test_a_family_that_is_not_installed_is_a_clear_error(tmp_path):
    r = subprocess.run(
        [str(BIN / "dagzoo"), "validate-config", str(toy_config(tmp_path))], capture_output=True, text=True
    )
    assert r.returncode == 1 and "toy: unknown key" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.probe
@pytest.mark.parametrize(
    "bad, message",
    [
        ({"lhs": "toy/nope/test/mse"}, "claims.0.lhs: experiment 'nope' is not a toy experiment; allowed: lin"),
        ({"op": "=="}, "claims.0.op: '==' is not allowed"),
    ],
)
def test_claims_are_checked_before_any_job_runs(tmp_path, bad, message):
    path = toy_config(tmp_path)
    cfg = yaml.safe_load(path.read_text())
    cfg["claims"][0].update(bad)
    path.write_text(yaml.safe_dump(cfg))
    r = subprocess.run(
        [str(BIN / "dagzoo"), "validate-config", str(path)], capture_output=True, text=True, env=toy_env()
    )
    assert r.returncode == 1 and message in r.stderr and "Traceback" not in r.stderr, r.stderr


MODEL_FILE = """
from dataclasses import dataclass
from dagzoo.registry import register

@register("regfam", {key!r})
class M:
    @dataclass
    class Params:
        pass
"""


def test_a_stage_imports_its_own_model_module_only(tmp_path):
    """get_model imports the module named after the model (a job of a model without torch then
    imports no torch); a model file named otherwise, or an unknown key, falls back to the whole
    models folder."""
    models = tmp_path / "dagzoo" / "regfam" / "models"
    models.mkdir(parents=True)
    (models.parent / "__init__.py").write_text("")
    (models / "__init__.py").write_text("")
    for module, key in (("alpha", "alpha"), ("beta", "beta"), ("other_name", "gamma")):
        (models / f"{module}.py").write_text(MODEL_FILE.format(key=key))
    script = (
        "import sys\nfrom dagzoo.errors import ConfigError\nfrom dagzoo.registry import get_model\n"
        "def loaded():\n    return sorted(m.rsplit('.', 1)[1] for m in sys.modules\n"
        "                  if m.startswith('dagzoo.regfam.models.'))\n"
        "print(get_model('regfam', 'alpha').registry_key, loaded())\n"
        "print(get_model('regfam', 'gamma').registry_key, loaded())\n"
        "try:\n    get_model('regfam', 'delta', where='regfam.experiments.x.model')\n"
        "except ConfigError as e:\n    print(e)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    r = subprocess.run([str(BIN / "python"), "-c", script], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [
        "alpha ['alpha']",
        "gamma ['alpha', 'beta', 'other_name']",
        "regfam.experiments.x.model: unknown regfam model 'delta'; allowed: alpha, beta, gamma",
    ]
