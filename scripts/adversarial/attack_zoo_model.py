"""Rule attack_zoo_model: minimal adversarial examples of one zoo network (box-constrained L-BFGS),
on training images for the zoo and test images for the models of P1 and P2."""

from nnprobe.core.devices import network_job
from nnprobe.studies.adversarial.jobs import attack_zoo

smk = snakemake  # noqa: F821  (the object Snakemake hands every script)
with network_job(smk) as job:
    # attack.batch_size (problems per L-BFGS run) changes speed only: read from the config, not a param
    attack = {**smk.params.attack, "batch_size": smk.config["adversarial"]["attack"]["batch_size"]}
    attack_zoo(smk.input.weights, smk.input.images, smk.output[0], device=job.device, seed=smk.params.seed,
               attack=attack)
