"""The ground floor: seeds, config checks, data sources and splits, files, weights, names, runtime.

Nothing here imports another layer of nnprobe; ``naming`` and ``config`` import no torch, so
``rules/common.smk`` can use them wherever Snakemake runs.
"""
