# Shared by every family: the resolved spec of one run, written once per (experiment, seed).
# The spec is a rule param, so changing a hyper-parameter rewrites it and reruns exactly the
# downstream jobs of that run (and the report).
from dagzoo.io import atomic_write_json

SPEC_BY_RUN = {(s["family"], s["experiment"], str(s["seed"])): s for s in SPECS}


def run_dirs(family):
    return [f"{R}/{family}/{s['experiment']}/{s['seed']}" for s in SPECS if s["family"] == family]


rule write_spec:
    output:
        f"{R}/{{family}}/{{exp}}/{{seed}}/spec.json",
    params:
        spec=lambda w: json.dumps(SPEC_BY_RUN[(w.family, w.exp, w.seed)], sort_keys=True),
    run:
        atomic_write_json(output[0], json.loads(params.spec))
