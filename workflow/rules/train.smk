# The one train rule of every family: `dagzoo train` (dagzoo.stages.train) on one run.


rule train:
    # every family's models train through the one train stage (dagzoo.stages.train)
    input:
        data=training_data,
        extra=training_extras,
    output:
        f"{RUN}/train.json",
    log:
        f"{R}/logs/train/{{family}}-{{exp}}-{{seed}}.log",
    benchmark:
        f"{R}/benchmarks/train/{{family}}-{{exp}}-{{seed}}.tsv"
    priority: 1  # the serial part of the DAG goes first; one-thread jobs pair up around it
    threads: train_threads
    resources:
        **TRAIN_RESOURCES,
    params:
        spec=spec_param(None, "train"),
        data=input_dir("data"),
        run_dir=output_dir(),
        results=results_root,
        # processes > 1: torchrun starts one data-parallel rank per process (e.g. per GPU) for a
        # model that trains on every rank; one fitted in one process (n-grams) runs alone
        launcher=train_launcher,
    shell:
        "{params.launcher} train --spec {params.spec:q} --data {params.data:q} --run-dir {params.run_dir:q} "
        "--results {params.results:q} --threads {threads} --rule train > {log:q} 2>&1"
