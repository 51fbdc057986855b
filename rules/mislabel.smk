# The class-pair mislabel study: populations per pair -> tidy table -> statistics -> figures.


rule train_population:
    input:
        checks=ancient("results/data/checks/mislabel.json"),
        train="results/data/train.npz",
        test="results/data/test.npz",
        code=code("mislabel/train_population.py"),
    output:
        weights="results/mislabel/populations/{pairs}/{block}/weights.safetensors",
        metrics="results/mislabel/populations/{pairs}/{block}/metrics.parquet",
        history="results/mislabel/populations/{pairs}/{block}/history.csv",
    log:
        "results/logs/mislabel/train_population/{pairs}/{block}.log",
    benchmark:
        "results/benchmarks/mislabel/train_population/{pairs}/{block}.tsv"
    conda:
        "../envs/torch.yaml"
    resources:
        gpu=config["resources"]["train_gpu"],
        mem_mb=lambda wildcards, attempt: config["resources"]["train_mem_mb"] * attempt,
        runtime=lambda wildcards, attempt: config["resources"]["train_runtime"]
        * attempt,
    params:
        seed=config["seed"],
        num_classes=NUM_CLASSES,
        fraction=config["mislabel"]["fraction"],
        padding=config["model"]["padding"],
        train=config["train"],
        engine=config["engine"],
        checkpoints="results/checkpoints/mislabel/{pairs}/{block}",
    script:
        "../scripts/mislabel/train_population.py"


rule collect_metrics:
    input:
        metrics=expand(
            "results/mislabel/populations/{pairs}/{block}/metrics.parquet",
            pairs=PACKS,
            block=BLOCKS,
        ),
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
        mem_mb=lambda wildcards, attempt: 4000 * attempt,
        runtime=lambda wildcards, attempt: 10 * attempt,
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
        mem_mb=lambda wildcards, attempt: 4000 * attempt,
        runtime=lambda wildcards, attempt: 10 * attempt,
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
        mem_mb=lambda wildcards, attempt: 4000 * attempt,
        runtime=lambda wildcards, attempt: 10 * attempt,
    script:
        "../scripts/mislabel/information_table.py"


rule t_heatmap:
    input:
        welch="results/mislabel/tables/welch_{comparison}.parquet",
        table="results/mislabel/tables/per_model_class.parquet",
        code=code("mislabel/t_heatmap.py"),
    output:
        pdf="results/mislabel/figures/t_heatmap_{comparison}.pdf",
        png=report(
            "results/mislabel/figures/t_heatmap_{comparison}.png",
            caption="../report/t_heatmap.rst",
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
        mem_mb=lambda wildcards, attempt: 2000 * attempt,
        runtime=lambda wildcards, attempt: 10 * attempt,
    params:
        class_groups=config["mislabel"]["class_groups"],
    script:
        "../scripts/mislabel/t_heatmap.py"


rule information_heatmap:
    input:
        information="results/mislabel/tables/information_confused_vs_clean.parquet",
        table="results/mislabel/tables/per_model_class.parquet",
        code=code("mislabel/information_heatmap.py"),
    output:
        pdf="results/mislabel/figures/information_heatmap_{value}.pdf",
        png=report(
            "results/mislabel/figures/information_heatmap_{value}.png",
            caption="../report/information_heatmap.rst",
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
        mem_mb=lambda wildcards, attempt: 2000 * attempt,
        runtime=lambda wildcards, attempt: 10 * attempt,
    params:
        class_groups=config["mislabel"]["class_groups"],
    script:
        "../scripts/mislabel/information_heatmap.py"


rule accuracy_by_pair:
    input:
        table="results/mislabel/tables/per_model_class.parquet",
        code=code("mislabel/accuracy_by_pair.py"),
    output:
        pdf="results/mislabel/figures/accuracy_by_pair.pdf",
        png=report(
            "results/mislabel/figures/accuracy_by_pair.png",
            caption="../report/accuracy_by_pair.rst",
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
        mem_mb=lambda wildcards, attempt: 2000 * attempt,
        runtime=lambda wildcards, attempt: 10 * attempt,
    script:
        "../scripts/mislabel/accuracy_by_pair.py"


rule class_dendrogram:
    input:
        welch="results/mislabel/tables/welch_confused_vs_clean.parquet",
        table="results/mislabel/tables/per_model_class.parquet",
        code=code("mislabel/class_dendrogram.py"),
    output:
        pdf="results/mislabel/figures/class_dendrogram.pdf",
        png=report(
            "results/mislabel/figures/class_dendrogram.png",
            caption="../report/class_dendrogram.rst",
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
        mem_mb=lambda wildcards, attempt: 2000 * attempt,
        runtime=lambda wildcards, attempt: 10 * attempt,
    script:
        "../scripts/mislabel/class_dendrogram.py"
