# Text family: corpus -> tokenizer -> {n-gram, transformer, diffusion LMs} (the shared train
# rule) -> test likelihood, samples and their generative perplexity.
from dagzoo.text.data import corpus_slug
from dagzoo.text.data import tokenizer_slug

TEXT = CFG["text"]
TEXT_DATA = f"{R}/data/{corpus_slug(TEXT['corpus'])}"
TEXT_TOKENS = f"{TEXT_DATA}/{tokenizer_slug(TEXT['tokenizer'])}"
TEXT_RUN = family_run("text")
TEXT_CORPUS_FILE = TEXT["corpus"][len("file:") :] if TEXT["corpus"].startswith("file:") else None
DATA_OF["text"] = TEXT_TOKENS
GENPPL_EVALUATOR = TEXT["eval"]["genppl_evaluator"]
REPORT_INPUTS += [
    f"{d}/{name}" for d in run_dirs("text") for name in ("samples.txt", *(["genppl.json"] if GENPPL_EVALUATOR else []))
]
REPORT_FIGURES["text_curves"] = report(
    f"{R}/report/text_val_bpc.png", caption="../report/text_val_bpc.rst", category="Text"
)


localrules:
    text_prepare,  # small, or needs the internet (a login node has it)


rule text_prepare:
    input:
        # a file: corpus is the rule's input, so editing it prepares the data (and all after it)
        # again; not one whose path has braces, which Snakemake reads as wildcards in any input
        corpus=[TEXT_CORPUS_FILE] if TEXT_CORPUS_FILE and not set("{}") & set(TEXT_CORPUS_FILE) else [],
    output:
        f"{TEXT_DATA}/manifest.json",
    log:
        f"{R}/logs/text_prepare.log",
    benchmark:
        f"{R}/benchmarks/text_prepare.tsv"
    resources:
        **resources_of("data"),
    params:
        corpus=literal(TEXT["corpus"]),
        val=TEXT["split"]["val"],
        test=TEXT["split"]["test"],
        out=output_dir(),
    shell:
        "dagzoo prepare-text --corpus {params.corpus:q} --out {params.out:q} "
        "--val {params.val} --test {params.test} > {log:q} 2>&1"


rule text_tokenize:
    input:
        corpus=f"{TEXT_DATA}/manifest.json",
    output:
        f"{TEXT_TOKENS}/manifest.json",
    log:
        f"{R}/logs/text_tokenize.log",
    benchmark:
        f"{R}/benchmarks/text_tokenize.tsv"
    resources:
        **resources_of("data"),
    params:
        tokenizer=json.dumps(TEXT["tokenizer"], sort_keys=True),
        corpus_dir=input_dir("corpus"),
        out=output_dir(),
    shell:
        "dagzoo tokenize --corpus-dir {params.corpus_dir:q} --out {params.out:q} "
        "--tokenizer {params.tokenizer:q} > {log:q} 2>&1"


# a `clip: search` run trains on the window its search chose
TRAIN_INPUTS["text"] = run_file_when("text", "clip_search", "clip_search.json")


rule text_clip_search:
    # the search reads the training part of the spec: an evaluation or sampling setting changed
    # reruns neither it nor the training
    input:
        data=f"{TEXT_TOKENS}/manifest.json",
    output:
        f"{TEXT_RUN}/clip_search.json",
    log:
        f"{R}/logs/text_clip_search/{{exp}}-{{seed}}.log",
    benchmark:
        f"{R}/benchmarks/text_clip_search/{{exp}}-{{seed}}.tsv"
    threads: CFG["threads"]  # a pilot training of a masked-diffusion LM
    resources:
        **train_resources_of("text"),  # a training's: the pilot is one
    params:
        spec=spec_param("text", "train"),
        data=input_dir("data"),
        run_dir=output_dir(),
        results=results_root,
    shell:
        stage_shell("text-clip-search")


rule text_evaluate:
    input:
        train=f"{TEXT_RUN}/train.json",
        data=f"{TEXT_TOKENS}/manifest.json",
    output:
        f"{TEXT_RUN}/metrics.json",
    log:
        f"{R}/logs/text_evaluate/{{exp}}-{{seed}}.log",
    benchmark:
        f"{R}/benchmarks/text_evaluate/{{exp}}-{{seed}}.tsv"
    threads: CFG["eval_threads"]
    resources:
        **resources_of("evaluate"),
    params:
        spec=spec_param("text", "evaluate"),
        data=input_dir("data"),
        run_dir=input_dir("train"),
        results=results_root,
    shell:
        stage_shell("text-evaluate")


rule text_sample:
    input:
        train=f"{TEXT_RUN}/train.json",
        data=f"{TEXT_TOKENS}/manifest.json",
    output:
        f"{TEXT_RUN}/samples.txt",
        f"{TEXT_RUN}/samples.json",
    log:
        f"{R}/logs/text_sample/{{exp}}-{{seed}}.log",
    threads: CFG["eval_threads"]
    resources:
        **resources_of("sample"),
    params:
        spec=spec_param("text", "sample"),
        data=input_dir("data"),
        run_dir=input_dir("train"),
        results=results_root,
        samples=TEXT["eval"]["samples"],
        length=TEXT["eval"]["sample_length"],
        temperature=TEXT["eval"]["temperature"],
        top_k=f"--top-k {TEXT['eval']['top_k']}" if TEXT["eval"]["top_k"] else "",
    shell:
        stage_shell(
            "text-sample",
            "--samples {params.samples} --length {params.length} " "--temperature {params.temperature} {params.top_k}",
        )


if GENPPL_EVALUATOR:
    EVALUATOR_RUN = f"{R}/text/{GENPPL_EVALUATOR}/{CFG['seeds'][0]}"

    rule text_genppl:
        input:
            samples=f"{TEXT_RUN}/samples.json",
            evaluator=f"{EVALUATOR_RUN}/train.json",
            data=f"{TEXT_TOKENS}/manifest.json",
        output:
            f"{TEXT_RUN}/genppl.json",
        log:
            f"{R}/logs/text_genppl/{{exp}}-{{seed}}.log",
        threads: CFG["eval_threads"]
        resources:
            **resources_of("evaluate"),
        params:
            spec=spec_param("text", "sample"),
            data=input_dir("data"),
            run_dir=input_dir("samples"),
            results=results_root,
            evaluator=input_dir("evaluator"),
        shell:
            stage_shell("text-genppl", "--evaluator {params.evaluator:q}")
