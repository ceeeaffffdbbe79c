# The last rule: summary.parquet (one row per experiment x seed, plus mean/std over seeds) and a
# human report with tables and plots. `snakemake --report` picks up the report() outputs.
ALL_RUN_DIRS = [d for fam in ("text", "image") for d in run_dirs(fam)]
GENPPL_FILES = ([f"{d}/genppl.json" for d in run_dirs("text")]
                if "text" in CFG and CFG["text"]["eval"]["genppl_evaluator"] else [])
REPORT_FIGURES = {}
if "text" in CFG:
    REPORT_FIGURES["text_curves"] = report(f"{R}/report/text_val_bpc.png", caption="../report/text_val_bpc.rst",
                                           category="Text")
if "image" in CFG:
    REPORT_FIGURES["image_fid_nfe"] = report(f"{R}/report/image_fid_nfe.png", caption="../report/image_fid_nfe.rst",
                                             category="Images")
    REPORT_FIGURES["image_samples"] = report(f"{R}/report/image_samples.png", caption="../report/image_samples.rst",
                                             category="Images")

rule report:
    input:
        metrics=[f"{d}/metrics.json" for d in ALL_RUN_DIRS],
        samples=[f"{d}/samples.txt" for d in run_dirs("text")],
        genppl=GENPPL_FILES,
        real_vs_real=[f"{R}/image/real_vs_real.json"] if "image" in CFG else [],
    output:
        summary=f"{R}/summary.parquet",
        markdown=f"{R}/report/report.md",
        table=report(f"{R}/report/summary.csv", caption="../report/summary.rst", category="Summary"),
        **REPORT_FIGURES,
    params:
        out=f"{R}/report",
        runs=" ".join(f"'{d}'" for d in ALL_RUN_DIRS),
    log:
        f"{R}/logs/report.log",
    shell:
        "dagzoo report --results {R:q} --out {params.out:q} --runs {params.runs} > {log:q} 2>&1"
