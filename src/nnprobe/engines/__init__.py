"""The machinery the studies run on: training (every network, on Lightning Fabric) and
optimisation in input space (L-BFGS and gradient attacks, feature visualisation), plus
evaluation of trained networks. Engines import models and core, never a study.
"""
