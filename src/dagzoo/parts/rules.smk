# Part-segmentation family: part-labelled shapes -> z-up clouds with a part per point
# (parts_prepare) -> {pointnet_seg, dgcnn_seg, height_prior} (the shared train rule) -> instance /
# class mIoU and point accuracy (parts_evaluate) -> metrics.json.
from dagzoo.parts.data import data_slug as parts_data_slug

PARTS = CFG["parts"]
PARTS_DATA = f"{R}/data/parts/{parts_data_slug(PARTS['data'])}"
PARTS_RUN = family_run("parts")
DATA_OF["parts"] = PARTS_DATA


localrules:
    parts_prepare,  # downloads ShapeNetPart (a login node has the internet)


rule parts_prepare:
    output:
        f"{PARTS_DATA}/manifest.json",
    log:
        f"{R}/logs/parts_prepare.log",
    benchmark:
        f"{R}/benchmarks/parts_prepare.tsv"
    resources:
        **resources_of("data"),
    params:
        **source_state(PARTS["data"]["source"]),  # a folder: source edited prepares it again
        data=literal(json.dumps(PARTS["data"], sort_keys=True)),
        out=output_dir(),
        cache=f"{R}/data/parts/downloads",
    shell:
        "dagzoo prepare-parts --data {params.data:q} --out {params.out:q} --cache {params.cache:q} > {log:q} 2>&1"


rule parts_evaluate:
    input:
        train=f"{PARTS_RUN}/train.json",
        data=f"{PARTS_DATA}/manifest.json",
    output:
        f"{PARTS_RUN}/metrics.json",
    log:
        f"{R}/logs/parts_evaluate/{{exp}}-{{seed}}.log",
    threads: CFG["eval_threads"]
    resources:
        **resources_of("evaluate"),
    params:
        spec=spec_param("parts", "evaluate"),
        data=input_dir("data"),
        run_dir=input_dir("train"),
        results=results_root,
    shell:
        stage_shell("parts-evaluate")
