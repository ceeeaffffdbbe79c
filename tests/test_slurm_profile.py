"""The SLURM profile names resources for every rule of every family (a new family's rules cannot
be forgotten), and nothing else."""

import re
import subprocess

import yaml

from conftest import BIN, ROOT


def _local_rules() -> set[str]:
    from dagzoo.family import families

    files = [ROOT / "Snakefile", *(ROOT / "workflow" / "rules").glob("*.smk"),
             *(f.rules_file() for f in families().values())]
    names = set()
    for path in files:
        for match in re.finditer(r"^\s*localrules:\s*([^#\n]+)", path.read_text(), re.M):
            names |= {n.strip() for n in match.group(1).split(",") if n.strip()}
    return names


def test_every_cluster_rule_has_resources_in_the_slurm_profile(tmp_path):
    r = subprocess.run([str(BIN / "snakemake"), "-s", str(ROOT / "Snakefile"), "--directory", str(tmp_path),
                        "--configfile", str(ROOT / "config" / "config.yaml"), "--list-rules"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    rules = {line.strip() for line in r.stdout.splitlines() if re.fullmatch(r"\s*[A-Za-z_]\w*\s*", line)}
    local = _local_rules()
    assert {"train", "report"} <= rules and {"report", "all"} <= local
    profile = yaml.safe_load((ROOT / "workflow" / "profiles" / "slurm" / "config.yaml").read_text())
    listed = set(profile["set-resources"])
    assert sorted(rules - local - listed) == [], "cluster rules without resources in the SLURM profile"
    assert sorted(listed - rules) == [], "the profile names rules the DAG does not have"
    for name, resources in profile["set-resources"].items():
        assert {"runtime", "mem_mb", "cpus_per_task"} <= set(resources), name
    assert set(profile["set-threads"]) <= rules
