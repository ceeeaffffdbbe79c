# Shared by every family: the one train rule, and the templates a family's rules file
# (src/dagzoo/<family>/rules.smk) uses for its own stages.
#
# Every stage gets its part of the run's spec as a rule param (`spec_param(stage)`): training
# the hyper-parameters it reads, a later stage those plus its own (dagzoo.config.stage_spec).
# Snakemake reruns a job whose params changed, so changing a hyper-parameter that only
# evaluation (or sampling) reads reruns that stage and the report, never training. Each stage
# keeps the spec it ran with in the run directory (spec.json, spec-<stage>.json).
#
# A family's rules file sets DATA_OF[<family>] (its prepared data directory; the train rule waits
# for its manifest.json) and may add REPORT_INPUTS (files the report waits for) and
# REPORT_FIGURES (plots for `snakemake --report`).
from dagzoo.config import stage_spec

SPEC_BY_RUN = {(s["family"], s["experiment"], str(s["seed"])): s for s in SPECS}
DATA_OF = {}
REPORT_INPUTS = []
REPORT_FIGURES = {}
RUN = f"{R}/{{family}}/{{exp}}/{{seed}}"


def run_dirs(family):
    return [f"{R}/{family}/{s['experiment']}/{s['seed']}" for s in SPECS if s["family"] == family]


def family_run(family):
    """The run directory pattern of one family's rules ({exp} and {seed} wildcards)."""
    return f"{R}/{family}/{{exp}}/{{seed}}"


def spec_param(family, stage):
    """The rule param holding what `stage` reads of a run's spec (a JSON string); family None:
    the rule's {family} wildcard."""
    def spec(w):
        return json.dumps(stage_spec(SPEC_BY_RUN[(family or w.family, w.exp, w.seed)], stage), sort_keys=True)
    return spec


def stage_shell(command, extra=""):
    """`dagzoo <command>` on one run: its spec, the family's data, the run directory, the
    results root, the job's threads and rule name; every value quoted."""
    return (f"dagzoo {command} --spec {{params.spec:q}} --data {{params.data:q}} --run-dir {{params.run_dir:q}} "
            f"--results {{R:q}} --threads {{threads}} --rule {{rule}} {extra} > {{log:q}} 2>&1")


wildcard_constraints:
    family="|".join(FAMILIES) or "-",


rule train:
    # every family's models train through the one train stage (dagzoo.stages.train)
    input:
        data=lambda w: f"{DATA_OF[w.family]}/manifest.json",
    output:
        f"{RUN}/train.json",
    params:
        spec=spec_param(None, "train"),
        data=lambda w: DATA_OF[w.family],
        run_dir=RUN,
        # processes > 1: torchrun starts one data-parallel rank per process (e.g. per GPU)
        launcher="dagzoo" if CFG["processes"] == 1 else
            f"torchrun --standalone --nproc_per_node {CFG['processes']} \"$(command -v dagzoo)\"",
    log:
        f"{R}/logs/train/{{family}}-{{exp}}-{{seed}}.log",
    benchmark:
        f"{R}/benchmarks/train/{{family}}-{{exp}}-{{seed}}.tsv"
    threads: CFG["threads"]
    resources:
        mem_mb=8000,
        runtime=480,
        gpu=0,
    shell:
        "{params.launcher} train --spec {params.spec:q} --data {params.data:q} --run-dir {params.run_dir:q} "
        "--results {R:q} --threads {threads} --rule {rule} > {log:q} 2>&1"
