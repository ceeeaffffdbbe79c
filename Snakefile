# dagzoo: one declarative DAG, data -> training -> sampling -> evaluation -> report, for every
# model family. Rules are thin shell calls of `dagzoo <stage>`; the library never imports
# snakemake, so every stage also runs by hand.
import gc
import json
import os
import time
import uuid
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version

min_version("9.0")

# The embedded default, unless configs are given with --configfile (snakemake would otherwise
# deep-merge them into the default, adding its experiments to every other experiment set).
if not workflow.config_settings.configfiles:

    configfile: "config/config.yaml"


from dagzoo.cluster import coerce_profile_values
from dagzoo.config_cache import validated_config
from dagzoo.errors import DagzooError
from dagzoo.family import families
from dagzoo.sweep import NAME_PATTERN
from dagzoo.tracking import resolve_uri

try:
    # the config merged with the defaults, one spec per (family, experiment, seed), and what the
    # rules need of each experiment's model; validated once per config and code version (cached
    # under .snakemake/dagzoo, see dagzoo.config_cache). Snakemake's own YAML loader keeps the
    # last of two equal keys: every config file it loaded (--configfile, or the default above) is
    # read again, only to refuse those.
    if "cluster" in config:  # a profile's `config:` values arrive as text ("1", "null")
        config["cluster"] = coerce_profile_values(config["cluster"])
    CFG, SPECS, FACTS = validated_config(config, workflow.configfiles, Path(".snakemake") / "dagzoo")
except DagzooError as e:
    raise WorkflowError(f"dagzoo: invalid config: {e}") from None

R = CFG["results"]
# the config's families, each with its rules file (src/dagzoo/<family>/rules.smk)
FAMILIES = {name: fam for name, fam in families().items() if name in CFG}
# Jobs (also those SLURM starts elsewhere) inherit these: one id groups the MLflow runs of this
# invocation, and every job logs to the same tracking store. Neither is a rule param, so
# changing them never reruns a job.
os.environ.setdefault("DAGZOO_INVOCATION_ID", time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6])
os.environ.setdefault("DAGZOO_TRACKING_URI", resolve_uri(R, CFG["mlflow"]["tracking_uri"]))
os.environ.setdefault("DAGZOO_MLFLOW_PREFIX", CFG["mlflow"]["experiment_prefix"])


wildcard_constraints:
    family="|".join(FAMILIES) or "-",
    exp=NAME_PATTERN.strip("^$"),
    seed=r"\d+",


include: "workflow/rules/common.smk"
include: "workflow/rules/train.smk"


for _family in FAMILIES.values():

    include: str(_family.rules_file())


include: "workflow/rules/report.smk"


# small: run on the submitting node, never as cluster jobs
localrules:
    all,
    report,


rule all:
    input:
        f"{R}/summary.parquet",
        f"{R}/claims.json",
        f"{R}/report/report.md",


# <results>/dag.json: wall time (from here, the parse of this file, to the last job), machine and
# code of the last invocation that ran jobs: the header of a results page (dagzoo docs)
_DAG_STARTED = time.time()


onsuccess:
    from dagzoo.provenance import write_dag_record

    try:
        write_dag_record(
            Path(R), _DAG_STARTED, workflow.resource_settings.cores, workflow.configfiles, len(workflow.dag)
        )
    except (OSError, AttributeError) as e:  # a record, never a reason to fail a finished DAG
        print(f"dagzoo: dag.json not written ({e})")


# Planning the DAG (and, in a dry run, printing every job) allocates millions of objects that
# live until Snakemake exits, and Python's cyclic garbage collector would scan them again and
# again: a fifth of the dry run of a 1,000-experiment grid (bench/bench_dryrun.py). What exists
# by now (Snakemake, dagzoo, the config, the rules) leaves the collector's reach, and a
# collection starts after 100,000 new objects instead of 700. Reference counting still frees
# everything else at once; the collector only finds cycles.
gc.freeze()
gc.set_threshold(100_000, 10, 10)
