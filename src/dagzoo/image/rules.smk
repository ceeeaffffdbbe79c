# Image family: source -> uint8 arrays -> {ddpm, edm, flow, vae, gumbel_vae} (the shared train
# rule) -> samples per named sampler -> Inception FID/KID against the train split's reference
# statistics -> metrics.json.
from dagzoo.data.images import dataset_slug

IMAGE = CFG["image"]
IEV = IMAGE["eval"]
IDATA = f"{R}/data/images/{dataset_slug(IMAGE['data']['source'], IMAGE['data']['resize'], IMAGE['data']['channels'])}"
IRUN = family_run("image")
DATA_OF["image"] = IDATA
# each experiment's samplers (its own, or its model's defaults): ImageFamily.rule_facts
SAMPLERS_OF = {name: FACTS[f"image/{name}"]["samplers"] for name in IMAGE["experiments"]}
MAIN_SAMPLER_OF = {name: FACTS[f"image/{name}"]["main_sampler"] for name in IMAGE["experiments"]}
REAL_N = IEV["real_samples"] or IEV["samples"]
FID_ARGS = (
    f"--kid-subsets {IEV['kid_subsets']} --kid-subset-size {IEV['kid_subset_size']} --batch {IEV['feature_batch']}"
)


# samples/untrained is the baseline (the config schema forbids a sampler of that name)
ruleorder: image_sample_untrained > image_sample


localrules:
    image_prepare,  # small, or needs the internet (a login node has it)


REPORT_INPUTS.append(f"{R}/image/real_vs_real.json")
REPORT_FIGURES["image_fid_nfe"] = report(
    f"{R}/report/image_fid_nfe.png", caption="../report/image_fid_nfe.rst", category="Images"
)
REPORT_FIGURES["image_samples"] = report(
    f"{R}/report/image_samples.png", caption="../report/image_samples.rst", category="Images"
)


rule image_prepare:
    output:
        f"{IDATA}/manifest.json",
    log:
        f"{R}/logs/image_prepare.log",
    benchmark:
        f"{R}/benchmarks/image_prepare.tsv"
    resources:
        **resources_of("data"),
    params:
        **source_state(IMAGE["data"]["source"]),  # a folder: source edited prepares it again
        source=literal(IMAGE["data"]["source"]),
        out=output_dir(),
        opts=" ".join(
            ([f"--resize {IMAGE['data']['resize']}"] if IMAGE["data"]["resize"] else [])
            + ([f"--channels {IMAGE['data']['channels']}"] if IMAGE["data"]["channels"] else [])
        ),
    shell:
        "dagzoo prepare-images --source {params.source:q} --out {params.out:q} {params.opts} > {log:q} 2>&1"


rule image_reference:
    # Inception statistics of the train split: computed once per data set, shared by every run
    input:
        manifest=f"{IDATA}/manifest.json",
    output:
        f"{IDATA}/fid/train.npz",
    log:
        f"{R}/logs/image_reference.log",
    benchmark:
        f"{R}/benchmarks/image_reference.tsv"
    # and among the training jobs: left for later, it ran after the samples, a two-thread job
    # waiting while one sampler held a core (21 s of one idle core in the default DAG)
    priority: 1
    threads: CFG["threads"]  # every FID waits for it: as fast as training
    resources:
        **resources_of("features"),
    params:
        data=input_dir("manifest"),
        n=f"--n {IEV['reference_images']}" if IEV["reference_images"] else "",
        batch=IEV["feature_batch"],
    shell:
        "dagzoo image-reference --data {params.data:q} --split train {params.n} --batch {params.batch} "
        "--out {output:q} --threads {threads} > {log:q} 2>&1"


rule image_real_vs_real:
    # the test split (REAL_N images) against the train reference: what "as good as data" scores
    input:
        manifest=f"{IDATA}/manifest.json",
        train=f"{IDATA}/fid/train.npz",
    output:
        test=f"{IDATA}/fid/test-{REAL_N}.npz",
        result=f"{R}/image/real_vs_real.json",
    log:
        f"{R}/logs/image_real_vs_real.log",
    threads: CFG["eval_threads"]
    resources:
        **resources_of("features"),
    params:
        data=input_dir("manifest"),
        n=REAL_N,
        batch=IEV["feature_batch"],
        kid=f"--kid-subsets {IEV['kid_subsets']} --kid-subset-size {IEV['kid_subset_size']}",
    shell:
        "(dagzoo image-reference --data {params.data:q} --split test --n {params.n} --batch {params.batch} "
        "--out {output.test:q} --threads {threads} && dagzoo real-vs-real --test {output.test:q} "
        "--train {input.train:q} --out {output.result:q} {params.kid}) > {log:q} 2>&1"


rule image_sample:
    # one trained network, one named sampler (sampler settings are params: changing them
    # reruns this sampler only)
    input:
        train=f"{IRUN}/train.json",
        data=f"{IDATA}/manifest.json",
    output:
        f"{IRUN}/samples/{{sampler}}/samples.json",
    log:
        f"{R}/logs/image_sample/{{exp}}-{{seed}}-{{sampler}}.log",
    benchmark:
        f"{R}/benchmarks/image_sample/{{exp}}-{{seed}}-{{sampler}}.tsv"
    threads: CFG["eval_threads"]
    resources:
        **resources_of("features"),
    params:
        spec=spec_param("image", "sample"),
        data=input_dir("data"),
        run_dir=input_dir("train"),
        results=results_root,
        sampler=job_function(lambda w: json.dumps(SAMPLERS_OF[w.exp][w.sampler], sort_keys=True)),
        n=IEV["samples"],
        grid=IEV["grid"],
    shell:
        stage_shell(
            "image-sample",
            "--name {wildcards.sampler:q} --sampler {params.sampler:q} --n {params.n} " "--grid {params.grid}",
        )


rule image_sample_untrained:
    # the baseline: the same network and main sampler, untrained (the run's seed's init)
    input:
        data=f"{IDATA}/manifest.json",
    output:
        f"{IRUN}/samples/untrained/samples.json",
    log:
        f"{R}/logs/image_sample/{{exp}}-{{seed}}-untrained.log",
    threads: CFG["eval_threads"]
    resources:
        **resources_of("features"),
    params:
        spec=spec_param("image", "sample"),
        data=input_dir("data"),
        run_dir=output_dir(levels=3),
        results=results_root,
        sampler=job_function(lambda w: json.dumps(SAMPLERS_OF[w.exp][MAIN_SAMPLER_OF[w.exp]], sort_keys=True)),
        n=IEV["baseline_samples"],
        grid=IEV["grid"],
    shell:
        stage_shell(
            "image-sample",
            "--name untrained --sampler {params.sampler:q} --n {params.n} --untrained " "--grid {params.grid}",
            rule_name="image_sample_untrained",
        )


rule image_fid:
    input:
        samples=f"{IRUN}/samples/{{name}}/samples.json",
        reference=f"{IDATA}/fid/train.npz",
    output:
        f"{IRUN}/samples/{{name}}/fid.json",
    log:
        f"{R}/logs/image_fid/{{exp}}-{{seed}}-{{name}}.log",
    benchmark:
        f"{R}/benchmarks/image_fid/{{exp}}-{{seed}}-{{name}}.tsv"
    threads: CFG["eval_threads"]
    resources:
        **resources_of("features"),
    params:
        folder=input_dir("samples"),
        args=FID_ARGS,
    shell:
        "dagzoo image-fid --samples {params.folder:q} --reference {input.reference:q} {params.args} "
        "--threads {threads} > {log:q} 2>&1"


rule image_evaluate:
    input:
        train=f"{IRUN}/train.json",
        data=f"{IDATA}/manifest.json",
        fid=job_function(
            lambda w: [f"{R}/image/{w.exp}/{w.seed}/samples/{s}/fid.json" for s in [*SAMPLERS_OF[w.exp], "untrained"]]
        ),
    output:
        f"{IRUN}/metrics.json",
    log:
        f"{R}/logs/image_evaluate/{{exp}}-{{seed}}.log",
    threads: CFG["eval_threads"]
    resources:
        **resources_of("evaluate"),
    params:
        spec=spec_param("image", "evaluate"),
        data=input_dir("data"),
        run_dir=input_dir("train"),
        results=results_root,
        samplers=job_function(lambda w: list(SAMPLERS_OF[w.exp])),
        main=job_function(lambda w: MAIN_SAMPLER_OF[w.exp]),
    shell:
        stage_shell("image-evaluate", "--samplers {params.samplers:q} --main-sampler {params.main:q}")
