rule prepare_dataset:
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
