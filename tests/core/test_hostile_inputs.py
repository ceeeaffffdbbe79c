"""Hostile values in user-supplied config strings never reach a shell unquoted: every rule's
command, rendered with them, splits back into the intended words."""

import shlex

import pytest
import yaml

from conftest import ROOT, snakemake

pytestmark = pytest.mark.probe

HOSTILE = "we'ird $(touch PWNED) `touch PWNED2` dir; echo x"


def test_every_shell_command_quotes_user_strings(tmp_path):
    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    results = tmp_path / HOSTILE
    cfg["results"] = str(results)
    cfg["mlflow"]["experiment_prefix"] = HOSTILE
    path = tmp_path / "hostile.yaml"
    path.write_text(yaml.safe_dump(cfg))
    r = snakemake(tmp_path, path, "-n", "-p")
    assert r.returncode == 0, r.stderr[-2000:]
    lines = [line.removeprefix("Shell command: ").strip() for line in (r.stdout + r.stderr).splitlines()]
    commands = [line for line in lines if line.startswith(("dagzoo ", "(dagzoo ", "torchrun "))]
    rules = {line.split()[1].rstrip(":") for line in lines if line.startswith("rule ")}
    assert len(commands) >= 40 and {"train", "text_evaluate", "image_sample", "report"} <= rules
    for command in commands:
        words = shlex.split(command)
        # the results root survives as the start of whole words, never split or expanded
        pieces = [w for w in words if "we'ird" in w]
        assert pieces and all(w.startswith(str(results)) for w in pieces), command
        assert "PWNED" not in " ".join(w for w in words if not w.startswith(str(results))), command
    assert not list(tmp_path.rglob("PWNED*"))


def test_braces_in_user_paths_reach_the_command_as_written(tmp_path):
    """Snakemake expands {name} in a plain string param as a wildcard: a corpus file or an image
    folder whose path has braces is passed literally (and `results` with braces is refused)."""
    corpus = tmp_path / "c{x}.txt"
    corpus.write_text("In the beginning.\n" * 50)
    folder = tmp_path / "im{x}"
    (folder / "train" / "a").mkdir(parents=True)
    cfg = {
        "results": str(tmp_path / "results"),
        "text": {"corpus": f"file:{corpus}", "experiments": {"kn2": {"model": "ngram", "order": 2}}},
        "image": {"data": {"source": f"folder:{folder}"}, "experiments": {"v": {"model": "vae"}}},
    }
    path = tmp_path / "braces.yaml"
    path.write_text(yaml.safe_dump(cfg))
    r = snakemake(tmp_path, path, "-n", "-p")
    assert r.returncode == 0, (r.stdout + r.stderr)[-2000:]
    lines = [line.removeprefix("Shell command: ").strip() for line in (r.stdout + r.stderr).splitlines()]
    words = {line.split()[1]: shlex.split(line) for line in lines if line.startswith("dagzoo prepare-")}
    assert words["prepare-text"][words["prepare-text"].index("--corpus") + 1] == f"file:{corpus}", words
    assert words["prepare-images"][words["prepare-images"].index("--source") + 1] == f"folder:{folder}", words
