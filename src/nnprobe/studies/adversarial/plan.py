"""The regimes of the adversarial-training comparison and the config keys each reads (torch-free).

``rules/adversarial.smk`` imports this module wherever Snakemake runs: a regime's job gets as
params exactly the keys of :func:`regime_settings`, so that changing one regime's keys reruns
that regime's networks and no other.

The regimes, all FC100-100-10 with the zoo's recipe (Szegedy et al. 2013, Sec. 4.2: "a two layer
100-100-10 non-convolutional neural network"; its weight decay unless said otherwise):

* ``weight_decay``: weight decay alone (the paper: 1.6% test error);
* ``dropout``: dropout on the pixels and the hidden units (the paper: "about 1.3%" with
  "carefully applied dropout"), for ``dropout_epochs``;
* ``adversarial_pool``: the paper's per-layer pools as first built here (``layers``,
  ``pool_size``, ``refresh_every``, ``refresh_size``, ``pool_fraction``; the paper: below 1.2%);
* ``capped_pool``: the same with the keys of ``capped_pool`` (a distortion cap per layer and a
  refresh rate at which every example is drawn a few times, not dozens);
* ``recomputed_pool``: ``capped_pool`` whose hidden-layer examples are recomputed through the
  current lower layers (the source image and the perturbation are stored);
* ``gradient_sign``: Goodfellow et al. (2014)'s on-the-fly fast gradient sign objective (PGD
  with ``steps > 1``), keys ``gradient_sign``;
* ``random_sign``: its control, random signs of the same size (``gradient_sign``'s epsilon and
  weight, one step).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["POOL_REGIMES", "REGIMES", "regime_settings"]

REGIMES = ("weight_decay", "dropout", "adversarial_pool", "capped_pool", "recomputed_pool", "gradient_sign",
           "random_sign")
"""Every regime of the comparison, in the order of its tables and figures."""

POOL_REGIMES = ("adversarial_pool", "capped_pool", "recomputed_pool")
"""The regimes that keep pools of minimal adversarial examples (Szegedy et al.'s method)."""

#: The zoo's recipe keys (config section ``adversarial``) every regime trains with.
RECIPE_KEYS = ("batch_size", "lr", "schedule", "decay_normalization")
#: The pool attack's keys (section ``adversarial.adversarial_training``).
ATTACK_KEYS = ("c_grid", "max_iter", "bisection_steps", "refine_steps", "temperature", "solver")
#: The pool keys of ``adversarial_pool`` that ``capped_pool`` may set otherwise.
POOL_KEYS = ("pool_size", "refresh_every", "refresh_size", "pool_fraction")


def regime_settings(adversarial: Mapping[str, Any], regime: str) -> dict[str, Any]:
    """What the job of ``regime`` reads from the config's ``adversarial`` section, with defaults filled.

    Always: the recipe (batch_size, lr, schedule, decay_normalization), ``epochs`` (the
    regime's own: ``dropout_epochs`` for dropout) and ``monitor_images``. Then, per regime:
    ``dropout``; the pools' ``layers``, ``warmup_epochs``, pool keys, ``max_distortion``
    (None for ``adversarial_pool``), ``recompute`` and ``attack``; or the perturbation's
    ``direction``, ``epsilon``, ``adversarial_weight``, ``steps`` and ``step_size``.
    """
    if regime not in REGIMES:
        raise ValueError(f"regime must be one of {list(REGIMES)} (config key adversarial.adversarial_training.regimes), "
                         f"got {regime!r}")
    cfg = adversarial["adversarial_training"]
    settings: dict[str, Any] = {key: adversarial[key] for key in RECIPE_KEYS}
    settings["epochs"] = cfg["dropout_epochs"] if regime == "dropout" else cfg["epochs"]
    settings["monitor_images"] = cfg["monitor_images"]
    if regime == "dropout":
        settings["dropout"] = list(cfg["dropout"])
    elif regime in POOL_REGIMES:
        pools = {key: cfg[key] for key in POOL_KEYS}
        capped = regime != "adversarial_pool"
        if capped:
            pools.update({key: cfg["capped_pool"][key] for key in POOL_KEYS})
        settings.update(layers=list(cfg["layers"]), warmup_epochs=cfg["warmup_epochs"], **pools,
                        max_distortion=list(cfg["capped_pool"]["max_distortion"]) if capped else None,
                        recompute=regime == "recomputed_pool", attack={key: cfg[key] for key in ATTACK_KEYS})
        if capped and len(settings["max_distortion"]) != len(settings["layers"]):
            raise ValueError(
                f"config key adversarial.adversarial_training.capped_pool.max_distortion must hold one cap per layer "
                f"of adversarial.adversarial_training.layers {settings['layers']}, got {settings['max_distortion']}")
    elif regime in ("gradient_sign", "random_sign"):
        sign = cfg["gradient_sign"]
        settings.update(direction="gradient" if regime == "gradient_sign" else "random", epsilon=sign["epsilon"],
                        adversarial_weight=sign["adversarial_weight"],
                        steps=sign["steps"] if regime == "gradient_sign" else 1,
                        step_size=sign["step_size"] if regime == "gradient_sign" else None)
    return settings
