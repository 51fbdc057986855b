#!/bin/bash
cd /work/wt/issue-19
export PYTHONPATH=/work/wt/issue-19/src OMP_NUM_THREADS=1
P=".venv/bin/python bench/adversarial_training_pilots.py"
$P --regime weight_decay
$P --regime gradient_sign --set 'gradient_sign.epsilon=0.1'
$P --regime random_sign --set 'gradient_sign.epsilon=0.1'
$P --regime gradient_sign --set 'gradient_sign.epsilon=0.2'
$P --regime gradient_sign --set 'gradient_sign.epsilon=0.05'
$P --regime random_sign --set 'gradient_sign.epsilon=0.2'
$P --regime dropout --set 'dropout=[0.2, 0.5]'
$P --regime dropout --set 'dropout=[0.1, 0.25]'
$P --regime dropout --set 'dropout=[0.0, 0.2]'
