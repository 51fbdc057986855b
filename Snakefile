# nnprobe: what do image classifiers learn? See README.md.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/mislabel.smk"
include: "rules/report.smk"


rule all:
    default_target: True
    input:
        "results/config.yaml",
        mislabel_targets(),
