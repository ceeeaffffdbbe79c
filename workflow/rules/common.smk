# Shared by every family: the helpers a family's rules file (src/dagzoo/<family>/rules.smk) and
# the shared training (train.smk) build their rules with.
#
# Every stage gets its part of the run's spec as a param (`spec_param(family, stage)`): training
# the hyper-parameters it reads, a later stage those plus its own (dagzoo.config.stage_spec).
# Snakemake reruns a job whose params changed, so changing a hyper-parameter that only
# evaluation (or sampling) reads reruns that stage and the report, never training. Each stage
# keeps the spec it ran with in the run directory (spec.json, spec-<stage>.json).
#
# A family's rules file sets DATA_OF[<family>] (its prepared data directory; training waits
# for its manifest.json) and may add REPORT_INPUTS (files the report waits for),
# REPORT_FIGURES (plots for `snakemake --report`) and TRAIN_INPUTS[<family>] (files a training
# also waits for, e.g. `run_file_when`).
from dagzoo.cluster import job_resources, train_resources
from dagzoo.config import stage_spec
from dagzoo.workflow import (
    input_dir,
    job_function,
    literal,
    output_dir,
    source_state,
    stage_shell,
)  # noqa: F401 - for the rules files

SPEC_BY_RUN = {(s["family"], s["experiment"], str(s["seed"])): s for s in SPECS}
DATA_OF = {}
REPORT_INPUTS = []
REPORT_FIGURES = {}
RUN = f"{R}/{{family}}/{{exp}}/{{seed}}"


def resources_of(kind):
    """A rule's cluster resources by its class (dagzoo.cluster: data, features, sample, evaluate)."""
    return job_resources(kind, CFG["cluster"])


def _train_resource(key):
    return job_function(lambda w: train_resources(CFG["cluster"], FACTS[f"{w.family}/{w.exp}"]["uses_torch"])[key])


# a training job's resources, per job (a torch model may get GPUs, an n-gram fit never does)
TRAIN_RESOURCES = {key: _train_resource(key) for key in train_resources(CFG["cluster"], True)}


def train_resources_of(family):
    """A training's resources for a rule of one family without a {family} wildcard (a pilot
    training that runs before the real one)."""

    def resource(key):
        return job_function(lambda w: train_resources(CFG["cluster"], FACTS[f"{family}/{w.exp}"]["uses_torch"])[key])

    return {key: resource(key) for key in train_resources(CFG["cluster"], True)}


def run_file_when(family, fact, name):
    """An input function: the run's file `name` for the experiments of `family` whose rule fact
    `fact` is true (FACTS, see Family.rule_facts), nothing for the others."""

    def files(w):
        return [f"{R}/{family}/{w.exp}/{w.seed}/{name}"] if FACTS[f"{family}/{w.exp}"].get(fact) else []

    return job_function(files)


def run_dirs(family):
    return [f"{R}/{family}/{s['experiment']}/{s['seed']}" for s in SPECS if s["family"] == family]


def family_run(family):
    """The run directory pattern of one family's rules ({exp} and {seed} wildcards)."""
    return f"{R}/{family}/{{exp}}/{{seed}}"


def spec_param(family, stage):
    """A param holding what `stage` reads of a run's spec (a JSON string); family None means
    the job's {family} wildcard."""

    def spec(w):
        return json.dumps(stage_spec(SPEC_BY_RUN[(family or w.family, w.exp, w.seed)], stage), sort_keys=True)

    return job_function(spec)


@job_function
def train_threads(w):
    """Threads of a training job: the config's, or 1 for a model whose training uses no torch
    threads (it then runs beside another job)."""
    return CFG["threads"] if FACTS[f"{w.family}/{w.exp}"]["threaded_training"] else 1


@job_function
def train_launcher(w):
    """What starts a training job: `dagzoo`, or with processes > 1 torchrun's data-parallel ranks
    for a model every rank trains."""
    if CFG["processes"] == 1 or not FACTS[f"{w.family}/{w.exp}"]["distributed_training"]:
        return "dagzoo"
    return f"torchrun --standalone --nproc_per_node {CFG['processes']} \"$(command -v dagzoo)\""


@job_function
def results_root(w):
    """The results root (the default MLflow store lives there). A function: `snakemake --lint`
    flags a plain-string path param that prefixes the job's files as hard-coded."""
    return R


@job_function
def training_data(w):
    """The manifest of the prepared data a training job of the {family} wildcard reads."""
    return f"{DATA_OF[w.family]}/manifest.json"


#: family -> function(wildcards) -> files a training of that family also waits for (a rules file
#: adds its own: text's clip search of a `clip: search` run)
TRAIN_INPUTS = {}


@job_function
def training_extras(w):
    """What a training job waits for besides its data (TRAIN_INPUTS of its family)."""
    extra = TRAIN_INPUTS.get(w.family)
    return extra(w) if extra else []
