# The last rule: summary.parquet (one row per experiment x seed, plus mean/std over seeds) and a
# human report with tables and plots. `snakemake --report` picks up the report() outputs.
ALL_RUN_DIRS = [d for fam in ("text",) for d in run_dirs(fam)]
GENPPL_FILES = ([f"{d}/genppl.json" for d in run_dirs("text")]
                if "text" in CFG and CFG["text"]["eval"]["genppl_evaluator"] else [])

rule report:
    input:
        metrics=[f"{d}/metrics.json" for d in ALL_RUN_DIRS],
        samples=[f"{d}/samples.txt" for d in ALL_RUN_DIRS],
        genppl=GENPPL_FILES,
    output:
        summary=f"{R}/summary.parquet",
        markdown=f"{R}/report/report.md",
        table=report(f"{R}/report/summary.csv", caption="../report/summary.rst", category="Summary"),
        text_curves=report(f"{R}/report/text_val_bpc.png", caption="../report/text_val_bpc.rst", category="Text"),
    params:
        out=f"{R}/report",
        runs=" ".join(f"'{d}'" for d in ALL_RUN_DIRS),
    log:
        f"{R}/logs/report.log",
    shell:
        "dagzoo report --results {R:q} --out {params.out:q} --runs {params.runs} > {log:q} 2>&1"
