# The class-pair mislabel study: populations per pair -> tidy table -> statistics -> figures.


# One rule per training job (a pack of pairs x a block of replicates, mislabel.pairs_per_job and
# mislabel.replicates_per_job): its outputs are its networks' own files, named by (pair,
# replicate) alone, so how the study is packed and blocked changes no file name and reruns
# nothing. Speed keys (train.layout, train.compile, engine.*) are read from the config by the
# script, not passed as params: only what changes a network reruns it (README, "What reruns").
for job in MISLABEL_JOBS:

    rule:
        name:
            f"train_population__{job.slug}"
        input:
            checks=ancient("results/data/checks.json"),
            train="results/data/train.npz",
            test="results/data/test.npz",
            code=code("mislabel/train_population.py"),
        output:
            [f for name in job.networks for f in network_files(NETWORKS, name)],
        log:
            f"results/logs/mislabel/train_population/{job.label}.log",
        benchmark:
            f"results/benchmarks/mislabel/train_population/{job.label}.tsv"
        conda:
            "../envs/torch.yaml"
        resources:
            **gpu_job(),
        params:
            seed=config["seed"],
            num_classes=NUM_CLASSES,
            # the baseline's labels are clean: it does not read the fraction
            fraction=(
                None if job.pairs == (BASELINE,) else config["mislabel"]["fraction"]
            ),
            design=config["mislabel"]["design"],
            model=mislabel_model(),
            train={k: config["train"][k] for k in RESULT_KEYS},
        script:
            "../scripts/mislabel/train_population.py"


rule collect_metrics:
    input:
        metrics=[f"{NETWORKS}/{name}/metrics.parquet" for name in MISLABEL_NETWORKS],
        code=code("mislabel/collect_metrics.py"),
    output:
        table="results/mislabel/tables/per_model_class.parquet",
        csv="results/mislabel/tables/per_model_class.csv",
    log:
        "results/logs/mislabel/collect_metrics.log",
    localrule: True
    conda:
        "../envs/analysis.yaml"
    resources:
        **cpu_job(mem_mb=4000, minutes=10),
    script:
        "../scripts/mislabel/collect_metrics.py"


rule welch_table:
    input:
        table="results/mislabel/tables/per_model_class.parquet",
        code=code("mislabel/welch_table.py"),
    output:
        parquet="results/mislabel/tables/welch_{comparison}.parquet",
        csv=report(
            "results/mislabel/tables/welch_{comparison}.csv",
            caption="../report/table_welch.rst",
            category="Mislabel study",
            subcategory="Tables",
            labels={"table": "Welch t", "comparison": "{comparison}"},
        ),
        md="results/mislabel/tables/welch_{comparison}.md",
    log:
        "results/logs/mislabel/welch_table/{comparison}.log",
    localrule: True
    conda:
        "../envs/analysis.yaml"
    resources:
        **cpu_job(mem_mb=4000, minutes=10),
    params:
        fdr_alpha=config["mislabel"]["fdr_alpha"],
    script:
        "../scripts/mislabel/welch_table.py"


rule information_table:
    input:
        table="results/mislabel/tables/per_model_class.parquet",
        code=code("mislabel/information_table.py"),
    output:
        parquet="results/mislabel/tables/information_{comparison}.parquet",
        csv=report(
            "results/mislabel/tables/information_{comparison}.csv",
            caption="../report/table_information.rst",
            category="Mislabel study",
            subcategory="Tables",
            labels={"table": "information (bits)", "comparison": "{comparison}"},
        ),
        md="results/mislabel/tables/information_{comparison}.md",
    log:
        "results/logs/mislabel/information_table/{comparison}.log",
    localrule: True
    conda:
        "../envs/analysis.yaml"
    resources:
        **cpu_job(mem_mb=4000, minutes=10),
    script:
        "../scripts/mislabel/information_table.py"


rule t_heatmap:
    input:
        welch="results/mislabel/tables/welch_{comparison}.parquet",
        # the run's other comparisons: one colour scale for all its t heatmaps
        scale=expand(
            "results/mislabel/tables/welch_{comparison}.parquet",
            comparison=COMPARISONS,
        ),
        table="results/mislabel/tables/per_model_class.parquet",
        code=code("mislabel/t_heatmap.py"),
    output:
        **figure(
            "results/mislabel/figures/t_heatmap_{comparison}",
            caption="t_heatmap",
            category="Mislabel study",
            subcategory="Welch t",
            labels={"figure": "t heatmap", "comparison": "{comparison}"},
        ),
    log:
        "results/logs/mislabel/t_heatmap/{comparison}.log",
    localrule: True
    conda:
        "../envs/analysis.yaml"
    resources:
        **cpu_job(mem_mb=2000, minutes=10),
    params:
        class_groups=config["mislabel"]["class_groups"],
        fdr_alpha=config["mislabel"]["fdr_alpha"],
    script:
        "../scripts/mislabel/t_heatmap.py"


rule information_heatmap:
    input:
        information="results/mislabel/tables/information_confused_vs_clean.parquet",
        table="results/mislabel/tables/per_model_class.parquet",
        code=code("mislabel/information_heatmap.py"),
    output:
        **figure(
            "results/mislabel/figures/information_heatmap_{value}",
            caption="information_heatmap",
            category="Mislabel study",
            subcategory="Information (bits)",
            labels={"figure": "information heatmap", "value": "{value}"},
        ),
    log:
        "results/logs/mislabel/information_heatmap/{value}.log",
    localrule: True
    conda:
        "../envs/analysis.yaml"
    resources:
        **cpu_job(mem_mb=2000, minutes=10),
    params:
        class_groups=config["mislabel"]["class_groups"],
    script:
        "../scripts/mislabel/information_heatmap.py"


rule accuracy_by_pair:
    input:
        table="results/mislabel/tables/per_model_class.parquet",
        code=code("mislabel/accuracy_by_pair.py"),
    output:
        **figure(
            "results/mislabel/figures/accuracy_by_pair",
            caption="accuracy_by_pair",
            category="Mislabel study",
            subcategory="Accuracy",
            labels={"figure": "accuracy by pair"},
        ),
    log:
        "results/logs/mislabel/accuracy_by_pair.log",
    localrule: True
    conda:
        "../envs/analysis.yaml"
    resources:
        **cpu_job(mem_mb=2000, minutes=10),
    script:
        "../scripts/mislabel/accuracy_by_pair.py"


rule class_dendrogram:
    input:
        welch="results/mislabel/tables/welch_confused_vs_clean.parquet",
        table="results/mislabel/tables/per_model_class.parquet",
        code=code("mislabel/class_dendrogram.py"),
    output:
        **figure(
            "results/mislabel/figures/class_dendrogram",
            caption="class_dendrogram",
            category="Mislabel study",
            subcategory="Clustering",
            labels={"figure": "class dendrogram"},
        ),
    log:
        "results/logs/mislabel/class_dendrogram.log",
    localrule: True
    conda:
        "../envs/analysis.yaml"
    resources:
        **cpu_job(mem_mb=2000, minutes=10),
    script:
        "../scripts/mislabel/class_dendrogram.py"


# The paired design (mislabel.design: paired): replicate r of every pair shares its initialisation
# and data order, so within-replicate contrasts are tested over replicates (nnprobe.studies.mislabel.
# paired), beside the Welch tables. rule all asks for these only in the paired design; the tables
# refuse networks of the independent design.
rule paired_table:
    input:
        table="results/mislabel/tables/per_model_class.parquet",
        code=code("mislabel/paired_table.py"),
    output:
        parquet="results/mislabel/tables/paired_{comparison}.parquet",
        csv=report(
            "results/mislabel/tables/paired_{comparison}.csv",
            caption="../report/table_paired.rst",
            category="Mislabel study",
            subcategory="Tables",
            labels={"table": "paired t", "comparison": "{comparison}"},
        ),
        md="results/mislabel/tables/paired_{comparison}.md",
    log:
        "results/logs/mislabel/paired_table/{comparison}.log",
    localrule: True
    conda:
        "../envs/analysis.yaml"
    resources:
        **cpu_job(mem_mb=4000, minutes=30),
    params:
        fdr_alpha=config["mislabel"]["fdr_alpha"],
    script:
        "../scripts/mislabel/paired_table.py"


rule paired_information_table:
    input:
        table="results/mislabel/tables/per_model_class.parquet",
        code=code("mislabel/paired_information_table.py"),
    output:
        parquet="results/mislabel/tables/paired_information_{comparison}.parquet",
        csv=report(
            "results/mislabel/tables/paired_information_{comparison}.csv",
            caption="../report/table_paired_information.rst",
            category="Mislabel study",
            subcategory="Tables",
            labels={
                "table": "paired information (bits)",
                "comparison": "{comparison}",
            },
        ),
        md="results/mislabel/tables/paired_information_{comparison}.md",
    log:
        "results/logs/mislabel/paired_information_table/{comparison}.log",
    localrule: True
    conda:
        "../envs/analysis.yaml"
    resources:
        **cpu_job(mem_mb=4000, minutes=10),
    params:
        fdr_alpha=config["mislabel"]["fdr_alpha"],
    script:
        "../scripts/mislabel/paired_information_table.py"


rule paired_t_heatmap:
    input:
        paired="results/mislabel/tables/paired_{comparison}.parquet",
        scale=expand(
            "results/mislabel/tables/paired_{comparison}.parquet",
            comparison=COMPARISONS,
        ),
        table="results/mislabel/tables/per_model_class.parquet",
        code=code("mislabel/paired_t_heatmap.py"),
    output:
        **figure(
            "results/mislabel/figures/paired_t_heatmap_{comparison}",
            caption="paired_t_heatmap",
            category="Mislabel study",
            subcategory="Paired t",
            labels={"figure": "paired t heatmap", "comparison": "{comparison}"},
        ),
    log:
        "results/logs/mislabel/paired_t_heatmap/{comparison}.log",
    localrule: True
    conda:
        "../envs/analysis.yaml"
    resources:
        **cpu_job(mem_mb=2000, minutes=10),
    params:
        class_groups=config["mislabel"]["class_groups"],
        fdr_alpha=config["mislabel"]["fdr_alpha"],
    script:
        "../scripts/mislabel/paired_t_heatmap.py"


rule paired_information_heatmap:
    input:
        information="results/mislabel/tables/paired_information_confused_vs_clean.parquet",
        table="results/mislabel/tables/per_model_class.parquet",
        code=code("mislabel/paired_information_heatmap.py"),
    output:
        **figure(
            "results/mislabel/figures/paired_information_heatmap_{value}",
            caption="paired_information_heatmap",
            category="Mislabel study",
            subcategory="Information (bits)",
            labels={"figure": "paired information heatmap", "value": "{value}"},
        ),
    log:
        "results/logs/mislabel/paired_information_heatmap/{value}.log",
    localrule: True
    conda:
        "../envs/analysis.yaml"
    resources:
        **cpu_job(mem_mb=2000, minutes=10),
    params:
        class_groups=config["mislabel"]["class_groups"],
        fdr_alpha=config["mislabel"]["fdr_alpha"],
    script:
        "../scripts/mislabel/paired_information_heatmap.py"
