# The visualize study: four networks -> evaluation, class-wise patterns, visualizations -> figures.


rule visualize_train:
    input:
        checks=ancient("results/data/checks.json"),
        train="results/data/train.npz",
        test="results/data/test.npz",
        code=code("visualize/visualize_train.py"),
    output:
        weights="results/visualize/models/{model}/weights.safetensors",
        history="results/visualize/models/{model}/history.csv",
        metrics="results/visualize/models/{model}/metrics.parquet",
    log:
        "results/logs/visualize/visualize_train/{model}.log",
    benchmark:
        "results/benchmarks/visualize/visualize_train/{model}.tsv"
    wildcard_constraints:
        model="|".join(VISUALIZE_TRAINED),
    conda:
        "../envs/torch.yaml"
    resources:
        **gpu_job(),
    params:
        seed=config["seed"],
        train=config["visualize"]["train"],
        backdoor=config["visualize"]["backdoor"],
        # the PGD training keys only for the network PGD trains; every network is evaluated by PGD
        adversarial=lambda wildcards: {
            k: v
            for k, v in config["visualize"]["adversarial"].items()
            if wildcards.model == "adversarial" or not k.startswith("train_")
        },
        checkpoints="results/checkpoints/visualize/{model}",
    script:
        "../scripts/visualize/visualize_train.py"


rule visualize_features:
    input:
        train="results/data/train.npz",
        test="results/data/test.npz",
        weights=lambda wildcards: VISUALIZE_WEIGHTS[wildcards.model],
        code=code("visualize/visualize_features.py"),
    output:
        "results/visualize/features/{model}.npz",
    log:
        "results/logs/visualize/visualize_features/{model}.log",
    benchmark:
        "results/benchmarks/visualize/visualize_features/{model}.tsv"
    wildcard_constraints:
        model="|".join(VISUALIZE_WEIGHTS),
    conda:
        "../envs/torch.yaml"
    resources:
        **gpu_job(),
    params:
        seed=config["seed"],
        features=config["visualize"]["features"],
        regularizers=config["visualize"]["regularizers"],
    script:
        "../scripts/visualize/visualize_features.py"


rule visualize_feature_figures:
    input:
        arrays="results/visualize/features/{model}.npz",
        code=code("visualize/visualize_feature_figures.py"),
    output:
        am_pdf="results/visualize/figures/activation_maximization_{model}.pdf",
        am_png=report(
            "results/visualize/figures/activation_maximization_{model}.png",
            caption="../report/visualize_activation_maximization.rst",
            category="Visualize study",
            subcategory="Activation maximization",
            labels={"figure": "class images", "model": "{model}"},
        ),
        caricature_pdf="results/visualize/figures/caricature_{model}.pdf",
        caricature_png=report(
            "results/visualize/figures/caricature_{model}.png",
            caption="../report/visualize_caricature.rst",
            category="Visualize study",
            subcategory="Caricatures",
            labels={"figure": "caricatures", "model": "{model}"},
        ),
        inversion_pdf="results/visualize/figures/inversion_{model}.pdf",
        inversion_png=report(
            "results/visualize/figures/inversion_{model}.png",
            caption="../report/visualize_inversion.rst",
            category="Visualize study",
            subcategory="Inversions",
            labels={"figure": "inversions", "model": "{model}"},
        ),
    log:
        "results/logs/visualize/visualize_feature_figures/{model}.log",
    wildcard_constraints:
        model="|".join(VISUALIZE_WEIGHTS),
    localrule: True
    conda:
        "../envs/analysis.yaml"
    resources:
        **cpu_job(mem_mb=2000, minutes=10),
    script:
        "../scripts/visualize/visualize_feature_figures.py"


rule visualize_patterns:
    input:
        train="results/data/train.npz",
        test="results/data/test.npz",
        weights="results/visualize/models/{model}/weights.safetensors",
        code=code("visualize/visualize_patterns.py"),
    output:
        table="results/visualize/patterns/{model}.parquet",
        arrays="results/visualize/patterns/{model}.npz",
    log:
        "results/logs/visualize/visualize_patterns/{model}.log",
    benchmark:
        "results/benchmarks/visualize/visualize_patterns/{model}.tsv"
    wildcard_constraints:
        model="|".join(VISUALIZE_PATTERN_MODELS),
    conda:
        "../envs/torch.yaml"
    resources:
        **gpu_job(),
    params:
        seed=config["seed"],
        patterns=config["visualize"]["patterns"],
        backdoor=config["visualize"]["backdoor"],
    script:
        "../scripts/visualize/visualize_patterns.py"


rule visualize_patterns_report:
    input:
        tables=expand(
            "results/visualize/patterns/{model}.parquet",
            model=VISUALIZE_PATTERN_MODELS,
        ),
        arrays=expand(
            "results/visualize/patterns/{model}.npz", model=VISUALIZE_PATTERN_MODELS
        ),
        code=code("visualize/visualize_patterns_report.py"),
    output:
        **figure(
            "results/visualize/figures/class_patterns",
            caption="visualize_class_patterns",
            category="Visualize study",
            subcategory="Class-wise patterns",
            labels={"figure": "class-wise patterns"},
        ),
        parquet="results/visualize/tables/class_patterns.parquet",
        csv=report(
            "results/visualize/tables/class_patterns.csv",
            caption="../report/table_class_patterns.rst",
            category="Visualize study",
            subcategory="Tables",
            labels={"table": "class-wise patterns"},
        ),
        md="results/visualize/tables/class_patterns.md",
    log:
        "results/logs/visualize/visualize_patterns_report.log",
    localrule: True
    conda:
        "../envs/analysis.yaml"
    resources:
        **cpu_job(mem_mb=2000, minutes=10),
    script:
        "../scripts/visualize/visualize_patterns_report.py"


rule visualize_models_report:
    input:
        metrics=expand(
            "results/visualize/models/{model}/metrics.parquet", model=VISUALIZE_TRAINED
        ),
        code=code("visualize/visualize_models_report.py"),
    output:
        **figure(
            "results/visualize/figures/robustness",
            caption="visualize_robustness",
            category="Visualize study",
            subcategory="Top-down network",
            labels={"figure": "accuracy under PGD"},
        ),
        parquet="results/visualize/tables/models.parquet",
        csv=report(
            "results/visualize/tables/models.csv",
            caption="../report/table_visualize_models.rst",
            category="Visualize study",
            subcategory="Tables",
            labels={"table": "networks"},
        ),
        md="results/visualize/tables/models.md",
    log:
        "results/logs/visualize/visualize_models_report.log",
    localrule: True
    conda:
        "../envs/analysis.yaml"
    resources:
        **cpu_job(mem_mb=2000, minutes=10),
    script:
        "../scripts/visualize/visualize_models_report.py"
