#!/bin/bash
cd /work/wt/issue-19
export PYTHONPATH=/work/wt/issue-19/src OMP_NUM_THREADS=1
P=".venv/bin/python bench/adversarial_training_pilots.py"
$P --regime weight_decay --epochs 20
$P --regime capped_pool --epochs 20 --set 'capped_pool={"refresh_every": 50, "refresh_size": 32, "pool_fraction": 0.05}'
$P --regime adversarial_pool --epochs 20
$P --regime recomputed_pool --epochs 20 --set 'capped_pool={"refresh_every": 50, "refresh_size": 32, "pool_fraction": 0.05}'
$P --regime capped_pool --epochs 20 --set 'capped_pool={"refresh_every": 25, "refresh_size": 32, "pool_fraction": 0.1}'
