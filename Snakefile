# nnprobe: what do image classifiers learn? See README.md.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/mislabel.smk"
include: "rules/adversarial.smk"
include: "rules/noise.smk"
include: "rules/visualize.smk"
include: "rules/report.smk"


rule all:
    default_target: True
    input:
        "results/config.yaml",
        mislabel_targets(),
        adversarial_targets(),
        noise_targets(),
        visualize_targets(),


# One target per study: `snakemake adversarial --cores 4` runs that study alone.
rule mislabel:
    input:
        mislabel_targets(),


rule adversarial:
    input:
        adversarial_targets(),


# The adversarial study's networks and examples without its tables: a unit of a long run
# (config/units/), the tables made later from these files.
rule adversarial_networks:
    input:
        adversarial_network_targets(),


rule noise:
    input:
        noise_targets(),


rule visualize:
    input:
        visualize_targets(),
