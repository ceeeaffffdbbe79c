# Text family: corpus -> tokenizer -> {n-gram, transformer, ...} -> test likelihood + samples.
from dagzoo.data.text import corpus_slug
from dagzoo.data.tokenize import tokenizer_slug

if "text" in CFG:
    TEXT = CFG["text"]
    TEXT_DATA = f"{R}/data/{corpus_slug(TEXT['corpus'])}"
    TEXT_TOKENS = f"{TEXT_DATA}/{tokenizer_slug(TEXT['tokenizer'])}"

    rule text_prepare:
        output:
            f"{TEXT_DATA}/manifest.json",
        params:
            corpus=TEXT["corpus"],
            val=TEXT["split"]["val"],
            test=TEXT["split"]["test"],
            out=TEXT_DATA,
        log:
            f"{R}/logs/text_prepare.log",
        benchmark:
            f"{R}/benchmarks/text_prepare.tsv"
        resources:
            mem_mb=4000,
            runtime=60,
        shell:
            "dagzoo prepare-text --corpus {params.corpus:q} --out {params.out:q} "
            "--val {params.val} --test {params.test} > {log:q} 2>&1"

    rule text_tokenize:
        input:
            f"{TEXT_DATA}/manifest.json",
        output:
            f"{TEXT_TOKENS}/manifest.json",
        params:
            tokenizer=json.dumps(TEXT["tokenizer"], sort_keys=True),
            corpus_dir=TEXT_DATA,
            out=TEXT_TOKENS,
        log:
            f"{R}/logs/text_tokenize.log",
        benchmark:
            f"{R}/benchmarks/text_tokenize.tsv"
        resources:
            mem_mb=8000,
            runtime=120,
        shell:
            "dagzoo tokenize --corpus-dir {params.corpus_dir:q} --out {params.out:q} "
            "--tokenizer {params.tokenizer:q} > {log:q} 2>&1"

    rule text_train:
        input:
            spec=f"{R}/text/{{exp}}/{{seed}}/spec.json",
            data=f"{TEXT_TOKENS}/manifest.json",
        output:
            f"{R}/text/{{exp}}/{{seed}}/train.json",
        params:
            data=TEXT_TOKENS,
            run_dir=f"{R}/text/{{exp}}/{{seed}}",
        log:
            f"{R}/logs/text_train/{{exp}}-{{seed}}.log",
        benchmark:
            f"{R}/benchmarks/text_train/{{exp}}-{{seed}}.tsv"
        threads: CFG["threads"]
        resources:
            mem_mb=8000,
            runtime=240,
            gpu=0,
        shell:
            # processes > 1: torchrun starts one data-parallel rank per process (e.g. per GPU)
            ("dagzoo" if CFG["processes"] == 1 else
             f"torchrun --standalone --nproc_per_node {CFG['processes']} \"$(command -v dagzoo)\"")
            + " train --spec {input.spec:q} --data {params.data:q} --run-dir {params.run_dir:q} "
            "--results {R:q} --threads {threads} --rule {rule} > {log:q} 2>&1"

    rule text_evaluate:
        input:
            spec=f"{R}/text/{{exp}}/{{seed}}/spec.json",
            train=f"{R}/text/{{exp}}/{{seed}}/train.json",
        output:
            f"{R}/text/{{exp}}/{{seed}}/metrics.json",
        params:
            data=TEXT_TOKENS,
            run_dir=f"{R}/text/{{exp}}/{{seed}}",
        log:
            f"{R}/logs/text_evaluate/{{exp}}-{{seed}}.log",
        benchmark:
            f"{R}/benchmarks/text_evaluate/{{exp}}-{{seed}}.tsv"
        threads: CFG["threads"]
        resources:
            mem_mb=8000,
            runtime=60,
        shell:
            "dagzoo evaluate --spec {input.spec:q} --data {params.data:q} --run-dir {params.run_dir:q} "
            "--results {R:q} --threads {threads} --rule {rule} > {log:q} 2>&1"

    rule text_sample:
        input:
            spec=f"{R}/text/{{exp}}/{{seed}}/spec.json",
            train=f"{R}/text/{{exp}}/{{seed}}/train.json",
        output:
            f"{R}/text/{{exp}}/{{seed}}/samples.txt",
        params:
            data=TEXT_TOKENS,
            run_dir=f"{R}/text/{{exp}}/{{seed}}",
            sampling=" ".join(
                [f"--samples {TEXT['eval']['samples']}", f"--length {TEXT['eval']['sample_length']}",
                 f"--temperature {TEXT['eval']['temperature']}"]
                + ([f"--top-k {TEXT['eval']['top_k']}"] if TEXT["eval"]["top_k"] else [])),
        log:
            f"{R}/logs/text_sample/{{exp}}-{{seed}}.log",
        resources:
            mem_mb=4000,
            runtime=30,
        shell:
            "dagzoo sample --spec {input.spec:q} --data {params.data:q} --run-dir {params.run_dir:q} "
            "--results {R:q} --threads 1 --rule {rule} {params.sampling} > {log:q} 2>&1"

    GENPPL_EVALUATOR = TEXT["eval"]["genppl_evaluator"]
    if GENPPL_EVALUATOR:
        EVALUATOR_RUN = f"{R}/text/{GENPPL_EVALUATOR}/{CFG['seeds'][0]}"

        rule text_genppl:
            input:
                spec=f"{R}/text/{{exp}}/{{seed}}/spec.json",
                samples=f"{R}/text/{{exp}}/{{seed}}/samples.txt",
                evaluator=f"{EVALUATOR_RUN}/train.json",
            output:
                f"{R}/text/{{exp}}/{{seed}}/genppl.json",
            params:
                data=TEXT_TOKENS,
                run_dir=f"{R}/text/{{exp}}/{{seed}}",
                evaluator=EVALUATOR_RUN,
            log:
                f"{R}/logs/text_genppl/{{exp}}-{{seed}}.log",
            resources:
                mem_mb=4000,
                runtime=30,
            shell:
                "dagzoo genppl --spec {input.spec:q} --data {params.data:q} --run-dir {params.run_dir:q} "
                "--results {R:q} --threads 1 --rule {rule} --evaluator {params.evaluator:q} > {log:q} 2>&1"
