# The last rule: summary.parquet (one row per experiment x seed), summary_by_experiment.parquet
# (mean/std over seeds), claims.json (the config's declared claims) and a human report with
# tables and plots, for every family in the config. `snakemake --report` picks up the report()
# outputs the families' rules files add to REPORT_FIGURES.
ALL_RUN_DIRS = [d for fam in FAMILIES for d in run_dirs(fam)]


rule report:
    input:
        metrics=[f"{d}/metrics.json" for d in ALL_RUN_DIRS],
        family_files=REPORT_INPUTS,
    output:
        **REPORT_FIGURES,
        summary=f"{R}/summary.parquet",
        by_experiment=f"{R}/summary_by_experiment.parquet",
        claims=f"{R}/claims.json",
        markdown=f"{R}/report/report.md",
        table=report(f"{R}/report/summary.csv", caption="../report/summary.rst", category="Summary"),
        runs=f"{R}/report/runs.txt",
    log:
        f"{R}/logs/report.log",
    params:
        out=job_function(lambda w, output: os.path.dirname(output.markdown)),
        tables=job_function(lambda w, output: os.path.dirname(output.summary)),
        results=results_root,
        claims=json.dumps(CFG["claims"], sort_keys=True),
        runs=ALL_RUN_DIRS,
    run:
        # The list of runs goes in a file, written here, where it is always the current one: on
        # the command line it would pass Linux's 128 KiB cap of one argument (Snakemake runs a
        # job's shell command as one) at about 2,000 runs.
        from dagzoo.io import atomic_write_text

        atomic_write_text(output.runs, "".join(f"{d}\n" for d in params.runs))
        shell(
            "dagzoo report --results {params.results:q} --out {params.out:q} --tables {params.tables:q} "
            "--claims {params.claims:q} --runs-file {output.runs:q} > {log:q} 2>&1"
        )
