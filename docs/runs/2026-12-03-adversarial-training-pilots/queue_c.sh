#!/bin/bash
cd /work/wt/issue-19
while kill -0 $(cat results/pilots/queue_b.pid) 2>/dev/null; do sleep 30; done
export PYTHONPATH=/work/wt/issue-19/src OMP_NUM_THREADS=1
P=".venv/bin/python bench/adversarial_training_pilots.py"
C='"refresh_every": 50, "refresh_size": 32, "pool_fraction": 0.05'
$P --regime gradient_sign --set 'gradient_sign.epsilon=0.03'
$P --regime capped_pool --epochs 20 --set "capped_pool={$C, \"max_distortion\": [0.05, 0.1, 0.1]}" --name "capped strict caps [0.05, 0.1, 0.1]"
$P --regime capped_pool --epochs 20 --set 'layers=["input"]' --set "capped_pool={$C, \"max_distortion\": [0.1]}" --name "capped input only"
$P --regime capped_pool --epochs 20 --set 'layers=[1]' --set "capped_pool={$C, \"max_distortion\": [0.2]}" --name "capped hidden 1 only"
$P --regime gradient_sign --set 'gradient_sign.epsilon=0.05' --seed 1
$P --regime weight_decay --seed 1
$P --regime capped_pool --epochs 20 --set "capped_pool={$C}" --set 'temperature=1.0' --set 'refine_steps=0' --name "capped paper attack (T=1, no projection)"
