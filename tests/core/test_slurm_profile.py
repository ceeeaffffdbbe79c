"""The SLURM profile names resources for every rule of every family (a new family's rules cannot
be forgotten), and nothing else."""

import re

import yaml

from conftest import ROOT, snakemake


def _local_rules() -> set[str]:
    from dagzoo.family import families

    files = [
        ROOT / "Snakefile",
        *(ROOT / "workflow" / "rules").glob("*.smk"),
        *(f.rules_file() for f in families().values()),
    ]
    names = set()
    for path in files:
        # `localrules: a, b` on one line, or snakefmt's form: one indented name a line after it
        for match in re.finditer(r"^\s*localrules:(.*\n(?:[ \t]+\S.*\n)*)", path.read_text(), re.M):
            text = re.sub(r"#[^\n]*", "", match.group(1))
            names |= {n.strip() for n in re.split(r"[,\s]+", text) if n.strip()}
    return names


def test_every_cluster_rule_has_resources_in_the_slurm_profile(tmp_path):
    r = snakemake(tmp_path, ROOT / "config" / "config.yaml", "--list-rules")
    assert r.returncode == 0, r.stderr[-2000:]
    rules = {line.strip() for line in r.stdout.splitlines() if re.fullmatch(r"\s*[A-Za-z_]\w*\s*", line)}
    local = _local_rules()
    assert {"train", "report"} <= rules and {"report", "all"} <= local
    profile = yaml.safe_load((ROOT / "workflow" / "profiles" / "slurm" / "config.yaml").read_text())
    listed = set(profile["set-resources"])
    assert sorted(rules - local - listed) == [], "cluster rules without resources in the SLURM profile"
    assert sorted(listed - rules) == [], "the profile names rules the DAG does not have"
    for name, resources in profile["set-resources"].items():
        assert {"runtime", "mem_mb"} <= set(resources), name
        # a job's CPUs are its threads (the config's threads / eval_threads; an n-gram trains on 1)
        assert "cpus_per_task" not in resources, name
    assert "set-threads" not in profile and "cpus_per_task" not in profile["default-resources"]


def test_under_the_slurm_profile_each_job_asks_for_its_own_threads(tmp_path):
    """The profile sets no threads: a training job runs (and asks SLURM for) the config's
    `threads`, an n-gram's training 1, an evaluation `eval_threads`."""
    from conftest import small_corpus

    cfg = {
        "threads": 8,
        "eval_threads": 2,
        "text": {
            "corpus": f"file:{small_corpus(tmp_path / 'c.txt')}",
            "experiments": {
                "kn2": {"model": "ngram", "order": 2},
                "tf": {"model": "transformer", "n_layer": 1, "n_head": 2, "d_model": 32},
            },
        },
    }
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    # a dry run caps every job at 1 core unless told (a cluster run does not): --cores 16 overrides 2
    r = snakemake(tmp_path, path, "--profile", ROOT / "workflow" / "profiles" / "slurm", "-n", "--cores", "16")
    assert r.returncode == 0, (r.stdout + r.stderr)[-2000:]
    threads = {}  # "<rule> <experiment>" -> the job's --threads, from its shell command
    for line in (r.stdout + r.stderr).splitlines():
        if " --threads " in line and " --run-dir " in line:
            words = line.split()
            rule, run_dir = words[words.index("--rule") + 1], words[words.index("--run-dir") + 1]
            threads[f"{rule} {run_dir.split('/')[-2]}"] = int(words[words.index("--threads") + 1])
    assert threads["train kn2"] == 1 and threads["train tf"] == 8, threads
    assert threads["text_evaluate tf"] == 2 and threads["text_evaluate kn2"] == 2, threads
