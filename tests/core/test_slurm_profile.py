"""Every cluster rule takes its resources from a class of dagzoo.cluster (a new family's rules
cannot forget them), the SLURM profile groups exactly the sample, evaluate and features ones,
and a torch model's training alone gets GPUs, on the GPU partition."""

import re

import pytest
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


def _ngram_and_transformer(tmp_path, **top):
    """A config of two text models, an n-gram and a transformer, with `top`'s keys beside them."""
    from conftest import small_corpus

    cfg = {
        **top,
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
    return path


def _rule_classes() -> dict[str, str]:
    """{rule: its resource class} from the rules files: `**resources_of("<class>")`, or the
    training's `**TRAIN_RESOURCES` (`**train_resources_of("<family>")` in a rule without a
    {family} wildcard)."""
    from dagzoo.family import families

    classes = {}
    for path in [*(ROOT / "workflow" / "rules").glob("*.smk"), *(f.rules_file() for f in families().values())]:
        for rule, body in re.findall(r"^\s*rule (\w+):\n((?:[ \t]+.*\n|\n)*)", path.read_text(), re.M):
            found = re.search(r'\*\*resources_of\("(\w+)"\)', body)
            training = "**TRAIN_RESOURCES" in body or "**train_resources_of(" in body
            classes[rule] = found.group(1) if found else ("train" if training else None)
    return classes


def test_every_cluster_rule_takes_its_resources_from_a_class_and_the_small_ones_are_grouped(tmp_path):
    from dagzoo.cluster import CLASSES

    r = snakemake(tmp_path, ROOT / "config" / "config.yaml", "--list-rules")
    assert r.returncode == 0, r.stderr[-2000:]
    rules = {line.strip() for line in r.stdout.splitlines() if re.fullmatch(r"\s*[A-Za-z_]\w*\s*", line)}
    local = _local_rules()
    assert {"train", "report"} <= rules and {"report", "all"} <= local
    classes = _rule_classes()
    missing = sorted(rule for rule in rules - local if classes.get(rule) not in (*CLASSES, "train"))
    assert missing == [], "cluster rules without a resource class (resources_of in their rules file)"
    profile = yaml.safe_load((ROOT / "workflow" / "profiles" / "slurm" / "config.yaml").read_text())
    groups = dict(entry.split("=") for entry in profile["groups"])
    expected = {"sample": "small", "evaluate": "small", "features": "features"}
    wanted = {rule: expected[classes[rule]] for rule in rules - local if classes[rule] in expected}
    assert groups == wanted, "the profile groups the sample and evaluate rules, and the features ones apart"
    assert profile["group-components"] == ["small=20", "features=20"]
    # a job's CPUs are its threads (the config's threads / eval_threads; an n-gram trains on 1)
    assert "set-threads" not in profile and "cpus_per_task" not in profile["default-resources"]
    assert "set-resources" not in profile, "resources come from dagzoo.cluster's classes"


def test_under_the_slurm_profile_each_job_asks_for_its_own_threads_and_a_torch_training_alone_gpus(tmp_path):
    """The profile sets no threads: a training job runs (and asks SLURM for) the config's
    `threads`, an n-gram's training 1, an evaluation `eval_threads`. With GPUs in the config's
    cluster section a torch model's training alone gets them, on the GPU partition."""
    path = _ngram_and_transformer(tmp_path, threads=8, eval_threads=2)
    # as a profile's `config:` sets it (text values, which the Snakefile reads back): on the command
    # line, it replaces the profile's own `config:` entries
    cluster = "cluster={cpu_partition: cpu, gpu_partition: gpu, gpus_per_training: 2}"
    # a dry run caps every job at 1 core unless told (a cluster run does not): --cores 16 overrides 2
    r = snakemake(
        tmp_path,
        path,
        "--profile",
        ROOT / "workflow" / "profiles" / "slurm",
        "-n",
        "--cores",
        "16",
        "--config",
        cluster,
    )
    assert r.returncode == 0, (r.stdout + r.stderr)[-2000:]
    threads = {}  # "<rule> <experiment>" -> the job's --threads, from its shell command
    jobs = {}  # "<rule> <output>" -> its resources line
    rule = output = None
    for line in (r.stdout + r.stderr).splitlines():
        if " --threads " in line and " --run-dir " in line:
            words = line.split()
            rule_name, run_dir = words[words.index("--rule") + 1], words[words.index("--run-dir") + 1]
            threads[f"{rule_name} {run_dir.split('/')[-2]}"] = int(words[words.index("--threads") + 1])
        line = line.strip()
        if line.startswith(("rule ", "localrule ")):
            rule = line.split()[1].rstrip(":")
        elif line.startswith("output:"):
            output = line.split()[1]
        elif line.startswith("resources:"):
            jobs[f"{rule} {output}"] = line
    assert threads["train kn2"] == 1 and threads["train tf"] == 8, threads
    assert threads["text_evaluate tf"] == 2 and threads["text_evaluate kn2"] == 2, threads
    train_tf = next(v for k, v in jobs.items() if k.startswith("train ") and "/tf/" in k)
    train_kn = next(v for k, v in jobs.items() if k.startswith("train ") and "/kn2/" in k)
    evaluate = next(v for k, v in jobs.items() if k.startswith("text_evaluate "))
    assert "gpu=2" in train_tf and "slurm_partition=gpu" in train_tf, train_tf
    assert "gpu=0" in train_kn and "slurm_partition=cpu" in train_kn, train_kn
    assert "slurm_partition=cpu" in evaluate and "runtime=30" in evaluate, evaluate


def test_gpu_partition_without_the_cpu_one_is_refused():
    from dagzoo.config import validate_config
    from dagzoo.errors import ConfigError

    with pytest.raises(ConfigError, match="cluster.gpu_partition: set cpu_partition too"):
        validate_config(
            {"cluster": {"gpu_partition": "gpu"}, "text": {"corpus": "kjv", "experiments": {"kn": {"model": "ngram"}}}},
            check_files=False,
        )
