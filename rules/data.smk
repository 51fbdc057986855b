# Download as its own step: one rule per torchvision dataset, whose outputs are the raw files
# torchvision downloads and checks (and, for MNIST, the project's md5 of the idx files). It runs
# once per dataset even when two studies use it, is skipped when the files are already in place
# (no code input: editing the package never downloads again), and offline fails naming the
# sources that need no internet.
rule download_cifar10:
    output:
        expand("{{root}}/{file}", file=TORCHVISION_RAW_FILES["cifar10"]),
    log:
        "results/logs/data/download_cifar10/{root}.log",
    conda:
        "../envs/torch.yaml"
    resources:
        mem_mb=lambda wildcards, attempt: 4000 * attempt,
        runtime=lambda wildcards, attempt: 60 * attempt,
    params:
        name="cifar10",
        download=lambda wildcards: download_allowed(wildcards.root),
    script:
        "../scripts/data/download_dataset.py"


rule download_mnist:
    output:
        expand("{{root}}/{file}", file=TORCHVISION_RAW_FILES["mnist"]),
    log:
        "results/logs/data/download_mnist/{root}.log",
    conda:
        "../envs/torch.yaml"
    resources:
        mem_mb=lambda wildcards, attempt: 4000 * attempt,
        runtime=lambda wildcards, attempt: 60 * attempt,
    params:
        name="mnist",
        download=lambda wildcards: download_allowed(wildcards.root),
    script:
        "../scripts/data/download_dataset.py"


rule download_fashion_mnist:
    output:
        expand("{{root}}/{file}", file=TORCHVISION_RAW_FILES["fashion_mnist"]),
    log:
        "results/logs/data/download_fashion_mnist/{root}.log",
    conda:
        "../envs/torch.yaml"
    resources:
        mem_mb=lambda wildcards, attempt: 4000 * attempt,
        runtime=lambda wildcards, attempt: 60 * attempt,
    params:
        name="fashion_mnist",
        download=lambda wildcards: download_allowed(wildcards.root),
    script:
        "../scripts/data/download_dataset.py"


rule prepare_dataset:
    input:
        raw=torchvision_raw_files(config["dataset"]),
        code=code("data/prepare_dataset.py"),
    output:
        train="results/data/train.npz",
        test="results/data/test.npz",
        manifest="results/data/manifest.json",
    log:
        "results/logs/data/prepare_dataset.log",
    conda:
        "../envs/torch.yaml"
    resources:
        mem_mb=lambda wildcards, attempt: 8000 * attempt,
        runtime=lambda wildcards, attempt: 30 * attempt,
    params:
        dataset=dataset_params(),
    script:
        "../scripts/data/prepare_dataset.py"


# Does the prepared data fit what a study's config says of it (class names, class count, image
# size)? Checked once the data is prepared, before any network of the study trains: training
# rules take the result as an ancient() input. The check reruns only when the data changes (then
# every network retrains anyway): it has no params or code inputs, and its script reads the
# expectations from the config (nnprobe.core.checks.data_expectations). A rerun here would hide
# the other changes of the same run: Snakemake 9.27 skips the jobs downstream of a job that
# reruns and does not follow ancient() inputs to them (dag.py, update_needrun), so a changed
# model.padding would re-check without retraining. The jobs check what they use themselves (the
# Keras CNN its image size, the figures mislabel.class_groups).
rule check_dataset:
    input:
        manifest="results/data/manifest.json",
    output:
        "results/data/checks/{study}.json",
    log:
        "results/logs/data/check_dataset/{study}.log",
    wildcard_constraints:
        study="mislabel|noise|visualize",
    localrule: True
    conda:
        "../envs/analysis.yaml"
    resources:
        mem_mb=lambda wildcards, attempt: 1000 * attempt,
        runtime=lambda wildcards, attempt: 5 * attempt,
    script:
        "../scripts/data/check_dataset.py"


rule check_adversarial_dataset:
    input:
        manifest="results/adversarial/data/manifest.json",
    output:
        "results/adversarial/data/checks.json",
    log:
        "results/logs/adversarial/check_adversarial_dataset.log",
    localrule: True
    conda:
        "../envs/analysis.yaml"
    resources:
        mem_mb=lambda wildcards, attempt: 1000 * attempt,
        runtime=lambda wildcards, attempt: 5 * attempt,
    script:
        "../scripts/data/check_dataset.py"
