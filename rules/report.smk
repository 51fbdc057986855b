# What `snakemake --report` bundles besides the figures: the configuration of the run.


rule effective_config:
    input:
        code=code("report/effective_config.py"),
    output:
        report(
            "results/config.yaml",
            caption="../report/config.rst",
            category="Configuration",
            labels={"file": "effective config"},
        ),
    log:
        "results/logs/effective_config.log",
    localrule: True
    conda:
        "../envs/analysis.yaml"
    resources:
        **cpu_job(mem_mb=500, minutes=5),
    params:
        # Config values are params, so a changed config re-runs this rule.
        config=config,
    script:
        "../scripts/report/effective_config.py"
