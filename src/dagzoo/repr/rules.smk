# Representations family: image source -> uint8 arrays + stratified validation split -> encoder
# (the shared train rule) -> frozen features (repr_encode) -> linear probe, kNN, soft-F1 probes
# -> metrics.json (repr_evaluate). Evaluation settings are params: changing one reruns only the
# stages that read it.
from dagzoo.data.images import dataset_slug

REPR = CFG["repr"]
REV = REPR["eval"]
RDATA = (
    f"{R}/data/repr/{dataset_slug(REPR['data']['source'], REPR['data']['resize'], REPR['data']['channels'])}"
    f"-val{REPR['data']['val_fraction']}-s{REPR['data']['split_seed']}"
)
RRUN = family_run("repr")
DATA_OF["repr"] = RDATA


localrules:
    repr_prepare,  # small, or needs the internet (a login node has it)


rule repr_prepare:
    output:
        f"{RDATA}/manifest.json",
    log:
        f"{R}/logs/repr_prepare.log",
    params:
        **source_state(REPR["data"]["source"]),  # a folder: source edited prepares it again
        source=literal(REPR["data"]["source"]),
        out=output_dir(),
        opts=" ".join(
            ([f"--resize {REPR['data']['resize']}"] if REPR["data"]["resize"] else [])
            + ([f"--channels {REPR['data']['channels']}"] if REPR["data"]["channels"] else [])
        ),
        val=REPR["data"]["val_fraction"],
        seed=REPR["data"]["split_seed"],
    shell:
        "dagzoo prepare-repr --source {params.source:q} --out {params.out:q} {params.opts} "
        "--val-fraction {params.val} --split-seed {params.seed} > {log:q} 2>&1"


rule repr_encode:
    input:
        train=f"{RRUN}/train.json",
        data=f"{RDATA}/manifest.json",
    output:
        features=f"{RRUN}/features.npz",
        summary=f"{RRUN}/encode.json",
    log:
        f"{R}/logs/repr_encode/{{exp}}-{{seed}}.log",
    threads: CFG["eval_threads"]
    resources:
        **resources_of("features"),
    params:
        spec=spec_param("repr", "evaluate"),
        data=input_dir("data"),
        run_dir=input_dir("train"),
        results=results_root,
        mi_batch=REV["mi_batch"],
        erf_images=REV["erf_images"],
    shell:
        stage_shell("repr-encode", "--mi-batch {params.mi_batch} --erf-images {params.erf_images}")


rule repr_probe:
    input:
        f"{RRUN}/features.npz",
    output:
        f"{RRUN}/probe.json",
    log:
        f"{R}/logs/repr_probe/{{exp}}-{{seed}}.log",
    threads: CFG["eval_threads"]
    resources:
        **resources_of("evaluate"),
    params:
        grid=" ".join(str(c) for c in REV["probe_grid"]),
    shell:
        "dagzoo repr-probe --features {input:q} --grid {params.grid} --out {output:q} > {log:q} 2>&1"


rule repr_knn:
    input:
        f"{RRUN}/features.npz",
    output:
        f"{RRUN}/knn.json",
    log:
        f"{R}/logs/repr_knn/{{exp}}-{{seed}}.log",
    threads: CFG["eval_threads"]
    resources:
        **resources_of("evaluate"),
    params:
        k=REV["knn_k"],
        t=REV["knn_temperature"],
    shell:
        "dagzoo repr-knn --features {input:q} --k {params.k} --temperature {params.t} --out {output:q} "
        "> {log:q} 2>&1"


rule repr_smoothed:
    input:
        f"{RRUN}/features.npz",
    output:
        f"{RRUN}/smoothed.json",
    log:
        f"{R}/logs/repr_smoothed/{{exp}}-{{seed}}.log",
    threads: CFG["eval_threads"]
    resources:
        **resources_of("evaluate"),
    params:
        ratio=REV["imbalance_ratio"],
        epochs=REV["smooth_epochs"],
        lr=REV["smooth_lr"],
    shell:
        "dagzoo repr-smoothed --features {input:q} --ratio {params.ratio} --epochs {params.epochs} "
        "--lr {params.lr} --out {output:q} > {log:q} 2>&1"


rule repr_evaluate:
    input:
        train=f"{RRUN}/train.json",
        data=f"{RDATA}/manifest.json",
        encode=f"{RRUN}/encode.json",
        probe=f"{RRUN}/probe.json",
        knn=f"{RRUN}/knn.json",
        smoothed=f"{RRUN}/smoothed.json",
    output:
        f"{RRUN}/metrics.json",
    log:
        f"{R}/logs/repr_evaluate/{{exp}}-{{seed}}.log",
    threads: 1
    resources:
        **resources_of("evaluate"),
    params:
        spec=spec_param("repr", "evaluate"),
        data=input_dir("data"),
        run_dir=input_dir("train"),
        results=results_root,
    shell:
        stage_shell("repr-evaluate")
