"""Szegedy et al. (2013) on MNIST: the model zoo, minimal adversarial examples by box-constrained
L-BFGS, their transfer across models and training sets, adversarial training, units."""
