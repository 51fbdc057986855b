# Download as its own step: one rule per torchvision dataset, whose outputs are the raw files
# torchvision downloads and checks (and, for MNIST, the project's md5 of the idx files). It runs
# once per dataset even when two studies use it, is skipped when the files are already in place
# (no code input: editing the package never downloads again), and offline fails naming the
# sources that need no internet.
# One download rule per torchvision dataset (download_cifar10, download_mnist, ...). Whether it
# may download (dataset.download) is read by the script from the config: it changes no file.
for dataset in TORCHVISION_RAW_FILES:

    rule:
        name:
            f"download_{dataset}"
        output:
            expand("{{root}}/{file}", file=TORCHVISION_RAW_FILES[dataset]),
        log:
            f"results/logs/data/download_{dataset}/{{root}}.log",
        conda:
            "../envs/torch.yaml"
        resources:
            **cpu_job(mem_mb=4000, minutes=60),
        params:
            name=dataset,
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
        **cpu_job(mem_mb=8000, minutes=30),
    params:
        dataset=dataset_params(config["dataset"]),
    script:
        "../scripts/data/prepare_dataset.py"


# Does the prepared data fit the config: every key that names, counts or sizes its classes and
# images (dataset.num_classes, mislabel.class_groups, noise.binary_classes,
# visualize.backdoor.target_class, the networks' smallest image)? Checked once the data is
# prepared, before any network trains (training rules take the result as an ancient() input),
# every problem in one message. The check reruns only when the data changes: its params never
# change, and its script reads the expectations from the config
# (nnprobe.core.checks.data_expectations). A rerun here would hide the other changes of the same
# run: Snakemake 9.27 skips the jobs downstream of a job that reruns and does not follow ancient()
# inputs to them (dag.py, update_needrun), so a changed model.padding would re-check without
# retraining. A key changed after the check is checked by the job that uses it, and by the
# workflow itself when it is parsed (rules/common.smk, against the prepared data's manifest).
rule check_dataset:
    input:
        manifest="results/data/manifest.json",
    output:
        "results/data/checks.json",
    log:
        "results/logs/data/check_dataset.log",
    localrule: True
    conda:
        "../envs/analysis.yaml"
    resources:
        **cpu_job(mem_mb=1000, minutes=5),
    params:
        dataset="dataset",
        studies=["mislabel", "noise", "visualize"],
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
        **cpu_job(mem_mb=1000, minutes=5),
    params:
        dataset="adversarial.dataset",
        studies=["adversarial"],
    script:
        "../scripts/data/check_dataset.py"
