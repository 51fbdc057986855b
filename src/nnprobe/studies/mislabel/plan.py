"""The names of the mislabel study's tables and figures (torch-free, pandas-free).

``rules/common.smk`` reads them wherever Snakemake runs (wildcards, targets, the training
rules' params), and the study's jobs, statistics and evidence read the same names, so that
each list is written once.

A comparison sets two groups of networks against each other for every (class C, target T):
``confused`` networks trained with C and T half-swapped, ``clean`` networks whose swapped pair
holds neither C nor T, and the ``baseline`` networks trained on clean labels. The information
values are the two columns of the information tables (bits per image of T).
"""

from __future__ import annotations

__all__ = ["COMPARISONS", "COMPARISON_GROUPS", "DESIGNS", "INFORMATION_VALUES", "RESULT_KEYS"]

#: comparison -> (group X, group Y); statistics are always X minus Y.
COMPARISON_GROUPS: dict[str, tuple[str, str]] = {
    "confused_vs_clean": ("confused", "clean"),
    "confused_vs_baseline": ("confused", "baseline"),
    "clean_vs_baseline": ("clean", "baseline"),
}
COMPARISONS = tuple(COMPARISON_GROUPS)
#: The values of an information table, each a heatmap: the difference of log2-losses and the KL divergence.
INFORMATION_VALUES = ("delta_logloss_bits", "kl_bits")
#: The keys of the config's ``train`` section that change a network (the others change speed only:
#: the training rules pass these alone as params, so changing another reruns nothing).
RESULT_KEYS = ("epochs", "batch_size", "optimizer", "lr", "eps", "precision")
#: The designs of the study (config key ``mislabel.design``): ``independent`` seeds every network's
#: initialisation and data order from (seed, pair, replicate); ``paired`` from (seed, replicate),
#: shared by replicate r of every pair, which adds the paired tables and heatmaps.
DESIGNS = ("independent", "paired")
