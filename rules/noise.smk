# The noise study: ResNet-18s (all classes; two classes) and the mislabel baseline CNNs
# probed with noise images -> per-network tables -> tables across networks -> figures.


rule noise_train:
    input:
        checks=ancient("results/data/checks.json"),
        train="results/data/train.npz",
        test="results/data/test.npz",
        code=code("noise/noise_train.py"),
    output:
        weights="results/noise/models/{task}/seed{seed}/weights.safetensors",
        metrics="results/noise/models/{task}/seed{seed}/metrics.json",
        history="results/noise/models/{task}/seed{seed}/history.csv",
    log:
        "results/logs/noise/noise_train/{task}/seed{seed}.log",
    benchmark:
        "results/benchmarks/noise/noise_train/{task}/seed{seed}.tsv"
    wildcard_constraints:
        task="multiclass|binary",
        seed="0|[1-9][0-9]*",
    conda:
        "../envs/torch.yaml"
    resources:
        **gpu_job(),
    params:
        seed=config["seed"],
        width=config["noise"]["width"],
        train={
            k: v
            for k, v in config["noise"]["train"].items()
            if k not in NOISE_SPEED_KEYS
        },
        # the multiclass networks do not read the binary classes: changing them reruns the binary ones only
        binary_classes=lambda wildcards: (
            config["noise"]["binary_classes"] if wildcards.task == "binary" else None
        ),
        checkpoints="results/checkpoints/noise/{task}/seed{seed}",
    script:
        "../scripts/noise/noise_train.py"


rule noise_probe:
    input:
        train="results/data/train.npz",
        test="results/data/test.npz",
        weights="results/noise/models/{task}/seed{seed}/weights.safetensors",
        code=code("noise/noise_probe.py"),
    output:
        groups="results/noise/probes/{task}/seed{seed}/groups.parquet",
        distances="results/noise/probes/{task}/seed{seed}/distances.parquet",
        mst="results/noise/probes/{task}/seed{seed}/mst.parquet",
    log:
        "results/logs/noise/noise_probe/{task}/seed{seed}.log",
    wildcard_constraints:
        task="multiclass|binary",
        seed="0|[1-9][0-9]*",
    conda:
        "../envs/torch.yaml"
    resources:
        **gpu_job(minutes=30),
    params:
        seed=config["seed"],
        probe=NOISE_PROBE_PARAMS,
    script:
        "../scripts/noise/noise_probe.py"


rule noise_probe_population:
    input:
        train="results/data/train.npz",
        test="results/data/test.npz",
        # The mislabel study's baseline networks (pair "none"), every block of them.
        weights=BASELINE_WEIGHTS,
        code=code("noise/noise_probe_population.py"),
    output:
        groups="results/noise/probes/population/groups.parquet",
        distances="results/noise/probes/population/distances.parquet",
        mst="results/noise/probes/population/mst.parquet",
    log:
        "results/logs/noise/noise_probe_population.log",
    conda:
        "../envs/torch.yaml"
    resources:
        **gpu_job(minutes=30),
    params:
        seed=config["seed"],
        probe=NOISE_PROBE_PARAMS,
    script:
        "../scripts/noise/noise_probe_population.py"


rule noise_input_clutter:
    input:
        test="results/data/test.npz",
        code=code("noise/noise_input_clutter.py"),
    output:
        table="results/noise/probes/input_clutter.parquet",
    log:
        "results/logs/noise/noise_input_clutter.log",
    localrule: True
    conda:
        "../envs/analysis.yaml"
    resources:
        **cpu_job(mem_mb=4000, minutes=10),
    script:
        "../scripts/noise/noise_input_clutter.py"


rule noise_tables:
    input:
        groups=expand("{probe}/groups.parquet", probe=NOISE_PROBES),
        distances=expand("{probe}/distances.parquet", probe=NOISE_PROBES),
        mst=expand("{probe}/mst.parquet", probe=NOISE_PROBES),
        metrics=expand(
            "results/noise/models/{task}/seed{seed}/metrics.json",
            task=NOISE_TASKS,
            seed=NOISE_SEEDS,
        ),
        input_clutter="results/noise/probes/input_clutter.parquet",
        code=code("noise/noise_tables.py"),
    output:
        expand(
            "results/noise/tables/{name}{ext}",
            name=[n for n in NOISE_TABLES if n != "agreement"],
            ext=TABLE_EXTS,
        ),
        agreement_parquet="results/noise/tables/agreement.parquet",
        agreement_csv=report(
            "results/noise/tables/agreement.csv",
            caption="../report/table_noise_agreement.rst",
            category="Noise study",
            subcategory="Tables",
            labels={"table": "agreement of the dominant class"},
        ),
        agreement_md="results/noise/tables/agreement.md",
    log:
        "results/logs/noise/noise_tables.log",
    localrule: True
    conda:
        "../envs/analysis.yaml"
    resources:
        **cpu_job(mem_mb=4000, minutes=10),
    params:
        binary_classes=config["noise"]["binary_classes"],
    script:
        "../scripts/noise/noise_tables.py"


rule noise_predicted_classes:
    input:
        groups="results/noise/tables/groups.parquet",
        agreement="results/noise/tables/agreement.parquet",
        code=code("noise/noise_predicted_classes.py"),
    output:
        **figure(
            "results/noise/figures/predicted_classes_{source}",
            caption="noise_predicted_classes",
            category="Noise study",
            subcategory="Predicted classes",
            labels={"figure": "predicted classes", "source": "{source}"},
        ),
    log:
        "results/logs/noise/noise_predicted_classes/{source}.log",
    wildcard_constraints:
        source="|".join(NOISE_SOURCES),
    localrule: True
    conda:
        "../envs/analysis.yaml"
    resources:
        **cpu_job(mem_mb=2000, minutes=10),
    script:
        "../scripts/noise/noise_predicted_classes.py"


rule noise_mst:
    input:
        distances="results/noise/tables/distances.parquet",
        mst="results/noise/tables/mst.parquet",
        code=code("noise/noise_mst.py"),
    output:
        **figure(
            "results/noise/figures/mst_{probe}",
            caption="noise_mst",
            category="Noise study",
            subcategory="Feature geometry",
            labels={"figure": "mst", "probe set": "{probe}"},
        ),
    log:
        "results/logs/noise/noise_mst/{probe}.log",
    wildcard_constraints:
        probe="|".join(config["noise"]["probe_sets"]),
    localrule: True
    conda:
        "../envs/analysis.yaml"
    resources:
        **cpu_job(mem_mb=2000, minutes=10),
    script:
        "../scripts/noise/noise_mst.py"


rule noise_distance_to_noise:
    input:
        distances="results/noise/tables/distances.parquet",
        code=code("noise/noise_distance_to_noise.py"),
    output:
        **figure(
            "results/noise/figures/distance_to_noise",
            caption="noise_distance_to_noise",
            category="Noise study",
            subcategory="Feature geometry",
            labels={"figure": "distance to noise"},
        ),
    log:
        "results/logs/noise/noise_distance_to_noise.log",
    localrule: True
    conda:
        "../envs/analysis.yaml"
    resources:
        **cpu_job(mem_mb=2000, minutes=10),
    script:
        "../scripts/noise/noise_distance_to_noise.py"


rule noise_binary:
    input:
        binary="results/noise/tables/binary.parquet",
        code=code("noise/noise_binary.py"),
    output:
        **figure(
            "results/noise/figures/binary",
            caption="noise_binary",
            category="Noise study",
            subcategory="Binary networks",
            labels={"figure": "binary"},
        ),
    log:
        "results/logs/noise/noise_binary.log",
    localrule: True
    conda:
        "../envs/analysis.yaml"
    resources:
        **cpu_job(mem_mb=2000, minutes=10),
    script:
        "../scripts/noise/noise_binary.py"


rule noise_auroc:
    input:
        groups="results/noise/tables/groups.parquet",
        code=code("noise/noise_auroc.py"),
    output:
        **figure(
            "results/noise/figures/auroc",
            caption="noise_auroc",
            category="Noise study",
            subcategory="Out-of-distribution score",
            labels={"figure": "auroc"},
        ),
    log:
        "results/logs/noise/noise_auroc.log",
    localrule: True
    conda:
        "../envs/analysis.yaml"
    resources:
        **cpu_job(mem_mb=2000, minutes=10),
    script:
        "../scripts/noise/noise_auroc.py"


rule noise_clutter:
    input:
        clutter="results/noise/tables/clutter.parquet",
        correlations="results/noise/tables/clutter_correlations.parquet",
        code=code("noise/noise_clutter.py"),
    output:
        **figure(
            "results/noise/figures/clutter",
            caption="noise_clutter",
            category="Noise study",
            subcategory="Clutter",
            labels={"figure": "clutter"},
        ),
    log:
        "results/logs/noise/noise_clutter.log",
    localrule: True
    conda:
        "../envs/analysis.yaml"
    resources:
        **cpu_job(mem_mb=2000, minutes=10),
    script:
        "../scripts/noise/noise_clutter.py"
