# Point-cloud family: meshes -> FPS clouds (points_prepare) -> {pointnet, dgcnn, voxnet} (the
# shared train rule) -> test OA / mAcc / SO(3) accuracy (points_evaluate) -> metrics.json.
from dagzoo.points.data import data_slug

PTS = CFG["points"]
PDATA = f"{R}/data/points/{data_slug(PTS['data'])}"
PRUN = family_run("points")
DATA_OF["points"] = PDATA


localrules:
    points_prepare,  # downloads ModelNet (a login node has the internet)


rule points_prepare:
    output:
        f"{PDATA}/manifest.json",
    log:
        f"{R}/logs/points_prepare.log",
    benchmark:
        f"{R}/benchmarks/points_prepare.tsv"
    resources:
        **resources_of("data"),
    params:
        **source_state(PTS["data"]["source"]),  # a folder: source edited prepares it again
        data=literal(json.dumps(PTS["data"], sort_keys=True)),
        out=output_dir(),
        cache=f"{R}/data/points/downloads",
    shell:
        "dagzoo prepare-points --data {params.data:q} --out {params.out:q} --cache {params.cache:q} > {log:q} 2>&1"


rule points_evaluate:
    input:
        train=f"{PRUN}/train.json",
        data=f"{PDATA}/manifest.json",
    output:
        f"{PRUN}/metrics.json",
    log:
        f"{R}/logs/points_evaluate/{{exp}}-{{seed}}.log",
    threads: CFG["eval_threads"]
    resources:
        **resources_of("evaluate"),
    params:
        spec=spec_param("points", "evaluate"),
        data=input_dir("data"),
        run_dir=input_dir("train"),
        results=results_root,
    shell:
        stage_shell("points-evaluate")
