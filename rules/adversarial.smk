# The adversarial study (Szegedy et al. 2013) on MNIST: model zoo -> minimal adversarial
# examples -> transfer tables -> figures; adversarial training; unit inspection.
rule prepare_adversarial_dataset:
    input:
        raw=torchvision_raw_files(ADV["dataset"]),
        code=code("data/prepare_dataset.py"),
    output:
        train="results/adversarial/data/train.npz",
        test="results/adversarial/data/test.npz",
        manifest="results/adversarial/data/manifest.json",
    log:
        "results/logs/adversarial/prepare_adversarial_dataset.log",
    conda:
        "../envs/torch.yaml"
    resources:
        **cpu_job(mem_mb=8000, minutes=30),
    params:
        dataset=dataset_params(ADV["dataset"]),
    script:
        "../scripts/data/prepare_dataset.py"


rule train_zoo_model:
    input:
        checks=ancient("results/adversarial/data/checks.json"),
        train="results/adversarial/data/train.npz",
        test="results/adversarial/data/test.npz",
        code=code("adversarial/train_zoo_model.py"),
    output:
        weights="results/adversarial/models/{trainset}/{zoo}.safetensors",
        metrics="results/adversarial/models/{trainset}/{zoo}.json",
    log:
        "results/logs/adversarial/train_zoo_model/{trainset}/{zoo}.log",
    benchmark:
        "results/benchmarks/adversarial/train_zoo_model/{trainset}/{zoo}.tsv"
    conda:
        "../envs/torch.yaml"
    resources:
        **gpu_job(),
    params:
        name=lambda wildcards: ZOO_NAMES[wildcards.zoo],
        seed=config["seed"],
        settings={
            key: ADV[key]
            for key in (
                "epochs",
                "ae_epochs",
                "batch_size",
                "lr",
                "schedule",
                "decay_normalization",
                "ae_weight_decay",
                "ae_sparsity_target",
                "ae_sparsity_weight",
                "ae_reconstruction",
                "ae_finetune",
            )
        },
        checkpoints="results/checkpoints/adversarial/{trainset}/{zoo}",
    script:
        "../scripts/adversarial/train_zoo_model.py"


rule attack_zoo_model:
    input:
        weights="results/adversarial/models/{trainset}/{zoo}.safetensors",
        # Tables 1-2 attack the zoo on training images, Tables 3-4 the P1/P2 models on test images.
        images=lambda wildcards: attacked_split(wildcards.trainset),
        code=code("adversarial/attack_zoo_model.py"),
    output:
        "results/adversarial/examples/{trainset}/{zoo}.npz",
    log:
        "results/logs/adversarial/attack_zoo_model/{trainset}/{zoo}.log",
    benchmark:
        "results/benchmarks/adversarial/attack_zoo_model/{trainset}/{zoo}.tsv"
    conda:
        "../envs/torch.yaml"
    resources:
        **gpu_job(),
    params:
        seed=config["seed"],
        attack={k: v for k, v in ADV["attack"].items() if k != "batch_size"},
    script:
        "../scripts/adversarial/attack_zoo_model.py"


rule zoo_table:
    input:
        metrics=expand("results/adversarial/models/full/{zoo}.json", zoo=ZOO_SLUGS),
        examples=expand("results/adversarial/examples/full/{zoo}.npz", zoo=ZOO_SLUGS),
        code=code("adversarial/zoo_table.py"),
    output:
        parquet="results/adversarial/tables/zoo.parquet",
        csv=report(
            "results/adversarial/tables/zoo.csv",
            caption="../report/table_zoo.rst",
            category="Adversarial study",
            subcategory="Tables",
            labels={"table": "zoo (Table 1)"},
        ),
        md="results/adversarial/tables/zoo.md",
    log:
        "results/logs/adversarial/zoo_table.log",
    localrule: True
    conda:
        "../envs/analysis.yaml"
    resources:
        **cpu_job(mem_mb=2000, minutes=10),
    script:
        "../scripts/adversarial/zoo_table.py"


rule cross_model_table:
    input:
        weights=expand(
            "results/adversarial/models/full/{zoo}.safetensors", zoo=ZOO_SLUGS
        ),
        examples=expand("results/adversarial/examples/full/{zoo}.npz", zoo=ZOO_SLUGS),
        images=attacked_split("full"),
        code=code("adversarial/cross_model_table.py"),
    output:
        parquet="results/adversarial/tables/cross_model.parquet",
        csv=report(
            "results/adversarial/tables/cross_model.csv",
            caption="../report/table_cross_model.rst",
            category="Adversarial study",
            subcategory="Tables",
            labels={"table": "cross-model transfer"},
        ),
        md="results/adversarial/tables/cross_model.md",
    log:
        "results/logs/adversarial/cross_model_table.log",
    conda:
        "../envs/torch.yaml"
    resources:
        **cpu_job(mem_mb=4000, minutes=10),
    params:
        names=[ZOO_NAMES[s] for s in ZOO_SLUGS],
        noise_std=ADV["noise_std"],
        clipping=ADV["control_clipping"],
        seed=config["seed"],
    script:
        "../scripts/adversarial/cross_model_table.py"


rule cross_training_set_tables:
    input:
        weights=expand("results/adversarial/models/{file}.safetensors", file=CTS_FILES),
        metrics=expand("results/adversarial/models/{file}.json", file=CTS_FILES),
        examples=expand("results/adversarial/examples/{file}.npz", file=CTS_FILES),
        test="results/adversarial/data/test.npz",
        code=code("adversarial/cross_training_set_tables.py"),
    output:
        models_parquet="results/adversarial/tables/cross_training_set_models.parquet",
        models_csv=report(
            "results/adversarial/tables/cross_training_set_models.csv",
            caption="../report/table_cross_training_set.rst",
            category="Adversarial study",
            subcategory="Tables",
            labels={"table": "P1/P2 models (Table 3)"},
        ),
        models_md="results/adversarial/tables/cross_training_set_models.md",
        matrix_parquet="results/adversarial/tables/cross_training_set.parquet",
        matrix_csv=report(
            "results/adversarial/tables/cross_training_set.csv",
            caption="../report/table_cross_training_set.rst",
            category="Adversarial study",
            subcategory="Tables",
            labels={"table": "cross-training-set transfer"},
        ),
        matrix_md="results/adversarial/tables/cross_training_set.md",
        curve_parquet="results/adversarial/tables/cross_training_set_magnification.parquet",
        curve_csv=report(
            "results/adversarial/tables/cross_training_set_magnification.csv",
            caption="../report/table_magnification.rst",
            category="Adversarial study",
            subcategory="Tables",
            labels={"table": "transfer as examples are magnified"},
        ),
        curve_md="results/adversarial/tables/cross_training_set_magnification.md",
    log:
        "results/logs/adversarial/cross_training_set_tables.log",
    conda:
        "../envs/torch.yaml"
    resources:
        **cpu_job(mem_mb=4000, minutes=10),
    params:
        models=CROSS_TRAINING_SET,
        noise_std=ADV["cross_training_set"]["noise_std"],
        magnify_rms=ADV["cross_training_set"]["magnify_rms"],
        curve_rms=ADV["cross_training_set"]["curve_rms"],
        clipping=ADV["control_clipping"],
        seed=config["seed"],
    script:
        "../scripts/adversarial/cross_training_set_tables.py"


rule paper_comparison:
    input:
        zoo="results/adversarial/tables/zoo.parquet",
        cross_model="results/adversarial/tables/cross_model.parquet",
        cts_models="results/adversarial/tables/cross_training_set_models.parquet",
        cts_matrix="results/adversarial/tables/cross_training_set.parquet",
        code=code("adversarial/paper_comparison.py"),
    output:
        parquet="results/adversarial/tables/paper_comparison.parquet",
        csv=report(
            "results/adversarial/tables/paper_comparison.csv",
            caption="../report/table_paper_comparison.rst",
            category="Adversarial study",
            subcategory="Tables",
            labels={"table": "ours beside the paper"},
        ),
        md="results/adversarial/tables/paper_comparison.md",
        counts_parquet="results/adversarial/tables/paper_comparison_counts.parquet",
        counts_csv=report(
            "results/adversarial/tables/paper_comparison_counts.csv",
            caption="../report/table_paper_comparison.rst",
            category="Adversarial study",
            subcategory="Tables",
            labels={"table": "cells within tolerance"},
        ),
        counts_md="results/adversarial/tables/paper_comparison_counts.md",
    log:
        "results/logs/adversarial/paper_comparison.log",
    localrule: True
    conda:
        "../envs/analysis.yaml"
    resources:
        **cpu_job(mem_mb=2000, minutes=5),
    script:
        "../scripts/adversarial/paper_comparison.py"


rule error_matrix_heatmap:
    input:
        table="results/adversarial/tables/{matrix}.parquet",
        code=code("adversarial/error_matrix_heatmap.py"),
    output:
        **figure(
            "results/adversarial/figures/{matrix}",
            caption="adversarial_error_matrix",
            category="Adversarial study",
            labels={"figure": "{matrix}"},
        ),
    log:
        "results/logs/adversarial/error_matrix_heatmap/{matrix}.log",
    localrule: True
    conda:
        "../envs/analysis.yaml"
    resources:
        **cpu_job(mem_mb=2000, minutes=5),
    script:
        "../scripts/adversarial/error_matrix_heatmap.py"


rule magnification_figure:
    input:
        table="results/adversarial/tables/cross_training_set_magnification.parquet",
        code=code("adversarial/magnification_figure.py"),
    output:
        **figure(
            "results/adversarial/figures/magnification",
            caption="adversarial_magnification",
            category="Adversarial study",
            labels={"figure": "transfer as examples are magnified"},
        ),
    log:
        "results/logs/adversarial/magnification_figure.log",
    localrule: True
    conda:
        "../envs/analysis.yaml"
    resources:
        **cpu_job(mem_mb=2000, minutes=5),
    script:
        "../scripts/adversarial/magnification_figure.py"


rule distortion_figure:
    input:
        examples=expand("results/adversarial/examples/full/{zoo}.npz", zoo=ZOO_SLUGS),
        code=code("adversarial/distortion_figure.py"),
    output:
        **figure(
            "results/adversarial/figures/distortion",
            caption="adversarial_distortion",
            category="Adversarial study",
            labels={"figure": "minimal distortion"},
        ),
    log:
        "results/logs/adversarial/distortion_figure.log",
    localrule: True
    conda:
        "../envs/analysis.yaml"
    resources:
        **cpu_job(mem_mb=2000, minutes=5),
    params:
        names=[ZOO_NAMES[s] for s in ZOO_SLUGS],
    script:
        "../scripts/adversarial/distortion_figure.py"


rule example_grid:
    input:
        examples=expand("results/adversarial/examples/full/{zoo}.npz", zoo=ZOO_SLUGS),
        images=attacked_split("full"),
        code=code("adversarial/example_grid.py"),
    output:
        **figure(
            "results/adversarial/figures/examples",
            caption="adversarial_examples",
            category="Adversarial study",
            labels={"figure": "examples"},
        ),
    log:
        "results/logs/adversarial/example_grid.log",
    localrule: True
    conda:
        "../envs/analysis.yaml"
    resources:
        **cpu_job(mem_mb=2000, minutes=5),
    params:
        names=[ZOO_NAMES[s] for s in ZOO_SLUGS],
        examples=ADV["figures"]["examples"],
        magnify=ADV["figures"]["magnify"],
    script:
        "../scripts/adversarial/example_grid.py"


rule adversarial_training:
    input:
        checks=ancient("results/adversarial/data/checks.json"),
        train="results/adversarial/data/train.npz",
        test="results/adversarial/data/test.npz",
        code=code("adversarial/adversarial_training.py"),
    output:
        record="results/adversarial/training/{regime}/{replicate}.json",
        monitor="results/adversarial/training/{regime}/{replicate}.monitor.parquet",
    log:
        "results/logs/adversarial/adversarial_training/{regime}/{replicate}.log",
    benchmark:
        "results/benchmarks/adversarial/adversarial_training/{regime}/{replicate}.tsv"
    conda:
        "../envs/torch.yaml"
    resources:
        **gpu_job(),
    params:
        seed=config["seed"],
        # Only the keys this regime reads: another regime's keys never retrain it.
        settings=lambda wildcards: regime_settings(ADV, wildcards.regime),
        checkpoints="results/checkpoints/adversarial/training/{regime}/{replicate}",
    script:
        "../scripts/adversarial/adversarial_training.py"


rule adversarial_training_table:
    input:
        results=expand(
            "results/adversarial/training/{regime}/{replicate}.json",
            regime=REGIMES,
            replicate=range(ADV["adversarial_training"]["replicates"]),
        ),
        monitors=expand(
            "results/adversarial/training/{regime}/{replicate}.monitor.parquet",
            regime=REGIMES,
            replicate=range(ADV["adversarial_training"]["replicates"]),
        ),
        code=code("adversarial/adversarial_training_table.py"),
    output:
        **figure(
            "results/adversarial/figures/adversarial_training",
            caption="adversarial_training",
            category="Adversarial study",
            labels={"figure": "adversarial training"},
        ),
        tables_parquet="results/adversarial/tables/adversarial_training.parquet",
        tables_csv=report(
            "results/adversarial/tables/adversarial_training.csv",
            caption="../report/table_adversarial_training.rst",
            category="Adversarial study",
            subcategory="Tables",
            labels={"table": "adversarial training"},
        ),
        tables_md="results/adversarial/tables/adversarial_training.md",
        monitor_pdf="results/adversarial/figures/adversarial_training_monitor.pdf",
        monitor_png=report(
            "results/adversarial/figures/adversarial_training_monitor.png",
            caption="../report/adversarial_training_monitor.rst",
            category="Adversarial study",
            labels={"figure": "adversarial training as it trains"},
        ),
    log:
        "results/logs/adversarial/adversarial_training_table.log",
    localrule: True
    conda:
        "../envs/analysis.yaml"
    resources:
        **cpu_job(mem_mb=2000, minutes=5),
    script:
        "../scripts/adversarial/adversarial_training_table.py"


rule unit_inspection:
    input:
        weights=f"results/adversarial/models/full/{zoo_slug(ADV['units']['model'])}.safetensors",
        test="results/adversarial/data/test.npz",
        code=code("adversarial/unit_inspection.py"),
    output:
        "results/adversarial/units/top_images.npz",
    log:
        "results/logs/adversarial/unit_inspection.log",
    conda:
        "../envs/torch.yaml"
    resources:
        **cpu_job(mem_mb=4000, minutes=10),
    params:
        seed=config["seed"],
        units=ADV["units"],
    script:
        "../scripts/adversarial/unit_inspection.py"


rule units_figure:
    input:
        arrays="results/adversarial/units/top_images.npz",
        code=code("adversarial/units_figure.py"),
    output:
        **figure(
            "results/adversarial/figures/units",
            caption="adversarial_units",
            category="Adversarial study",
            labels={"figure": "units"},
        ),
    log:
        "results/logs/adversarial/units_figure.log",
    localrule: True
    conda:
        "../envs/analysis.yaml"
    resources:
        **cpu_job(mem_mb=2000, minutes=5),
    script:
        "../scripts/adversarial/units_figure.py"
