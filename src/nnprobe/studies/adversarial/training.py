"""Training the zoo of Szegedy et al. (2013) through the engine.

Two recipes, each a :class:`~nnprobe.engines.classifier.ClassifierTask`:

* :class:`ZooClassifierTask`: mini-batch Adam with a decaying learning rate on the mean
  cross-entropy plus the paper's weight decay
  (:func:`~nnprobe.studies.adversarial.zoo.weight_decay_penalty`);
* :class:`AutoencoderTask`: stage 1 of AE400-10, the sparse autoencoder alone, reconstructing
  the pixels.

Sec. 4.2's adversarial training (pools of adversarial examples) is
:class:`~nnprobe.studies.adversarial.pools.AdversarialPoolTask`.

:func:`train_zoo_model` builds a zoo network from its seed and trains it (AE400-10 in two
stages). Images are float pixels in [0, 1] on the device.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ...engines.classifier import ClassifierTask
from ...engines.training import OptimizerSpec, Step, TrainOptions, fit
from ...models.szegedy import AutoencoderClassifier
from .zoo import (
    ZOO,
    Normalisation,
    build_zoo_model,
    check_sparsity,
    kl_sparsity_penalty,
    weight_decay_penalty,
)

__all__ = ["RECONSTRUCTIONS", "AutoencoderTask", "ZooClassifierTask", "train_zoo_model"]

RECONSTRUCTIONS = ("cross_entropy", "squared_error")
"""The reconstruction losses of :class:`AutoencoderTask` (config key ``adversarial.ae_reconstruction``)."""


class ZooClassifierTask(ClassifierTask):
    """Mini-batch Adam (lr ``lr``, torch's epsilon) on mean cross-entropy + the paper's weight decay.

    ``weight_decay`` is the per-layer lambda of :func:`weight_decay_penalty` with its
    ``normalize`` form; ``schedule`` the engine's per-step learning-rate schedule
    (:func:`~nnprobe.engines.training.step_schedule`: ``"cosine"`` anneals to 0 over the run,
    so that the last epochs settle at a minimum); ``trainable`` restricts training to some
    parameters (AE400-10's softmax).
    """

    def __init__(self, network: nn.Module, images: torch.Tensor, labels: torch.Tensor, *,
                 weight_decay: float | Sequence[float], normalize: Normalisation, batch_size: int, lr: float,
                 order_seed: int, trainable: Sequence[nn.Parameter] | None = None, schedule: str = "constant") -> None:
        super().__init__(network, images, labels, batch_size=batch_size, order_seed=order_seed,
                         optimizer=OptimizerSpec("adam", lr=lr, eps=1e-8), schedule=schedule, trainable=trainable)
        self.weight_decay = weight_decay
        self.normalize = normalize

    def penalty(self) -> torch.Tensor:
        return weight_decay_penalty(self.network, self.weight_decay, self.normalize)


class AutoencoderTask(ClassifierTask):
    """Stage 1 of AE400-10: a sparse autoencoder (encoder and decoder) reconstructs the pixels.

    The paper's AE400-10 is "a single layer sparse autoencoder with sigmoid activations and
    400 nodes with a Softmax classifier", whose first layer was "trained until it got very
    high quality first layer filters" and "not fine-tuned" (Szegedy et al. 2013, the
    experiments of Table 1); the paper gives no objective. We use the sparse autoencoder of
    Ng's CS294A notes ("Sparse autoencoder", 2011) and the UFLDL tutorial, per mini-batch of
    m images:

        J = (1/m) sum_i L(x_i, x_hat_i) + (lambda/2) (||W_enc||^2 + ||W_dec||^2)
            + beta * sum_j KL(rho || rho_hat_j)

    with ``lambda = weight_decay`` (in the form ``normalize`` of :func:`weight_decay_penalty`;
    the default "classic" is UFLDL's (lambda/2) sum W^2), ``rho = sparsity_target``, ``beta
    = sparsity_weight`` and rho_hat the batch mean of the code
    (:func:`~nnprobe.studies.adversarial.zoo.kl_sparsity_penalty`); the defaults rho = 0.1,
    beta = 3, lambda = 3e-3 are UFLDL's for MNIST (its self-taught-learning exercise).
    ``reconstruction``, per image:

    * ``"cross_entropy"`` (default): the binary cross-entropy of each pixel in [0, 1] under
      the sigmoid reconstruction, summed over pixels (the negative log-likelihood of the
      pixels, as in Bengio et al. 2007, "Greedy layer-wise training of deep networks", and
      Vincent et al. 2008 for MNIST autoencoders);
    * ``"squared_error"``: ``1/2 sum_pixels (x_hat - x)^2``, UFLDL's cost.

    Why cross-entropy: on MNIST (30 + 30 epochs, lr 1e-2, cosine, one CPU thread) it gave
    AE400-10 0.95% / 1.82% train / test error with mean code activation 0.113, squared error
    1.91% / 2.10% with 0.104 (paper: 0.57% / 1.9%). Its reconstruction term is larger than
    the squared error's, so the same rho, beta and lambda constrain the code less. With the
    workflow's defaults (60 + 60 epochs): 0.72% / 1.89%, code 0.113. The L2 matters more than
    the loss: with squared error, lambda = 3e-4 gave 2.30% and the paper's 1e-6 4.67% test
    error (a code that reconstructs well, 1.3 squared error per image, but classifies badly).
    ``sparsity_weight=0`` gives a plain (non-sparse) autoencoder. Mini-batch Adam with the
    learning-rate ``schedule``; the classifier layer does not train.
    """

    def __init__(self, network: AutoencoderClassifier, images: torch.Tensor, *, weight_decay: float,
                 normalize: Normalisation, batch_size: int, lr: float, order_seed: int, sparsity_target: float = 0.1,
                 sparsity_weight: float = 3.0, reconstruction: str = "cross_entropy",
                 schedule: str = "constant") -> None:
        if not isinstance(network, AutoencoderClassifier):
            raise TypeError(f"network must be an AutoencoderClassifier (ae400_10), got {type(network).__name__}")
        if reconstruction not in RECONSTRUCTIONS:
            raise ValueError(f"reconstruction (config key adversarial.ae_reconstruction) must be one of "
                             f"{RECONSTRUCTIONS}, got {reconstruction!r}")
        check_sparsity(sparsity_target, sparsity_weight)
        labels = torch.zeros(images.shape[0], dtype=torch.long)
        super().__init__(network, images, labels, batch_size=batch_size, order_seed=order_seed,
                         optimizer=OptimizerSpec("adam", lr=lr, eps=1e-8), schedule=schedule,
                         trainable=[*network.encoder.parameters(), *network.decoder.parameters()])
        self.weight_decay = float(weight_decay if isinstance(weight_decay, (int, float)) else weight_decay[0])
        self.normalize = normalize
        self.sparsity_target, self.sparsity_weight = float(sparsity_target), float(sparsity_weight)
        self.reconstruction = reconstruction

    def training_step(self, idx: torch.Tensor) -> Step:
        net = self.network
        x, _ = self.inputs(idx)
        x = x.flatten(1)
        code = net.code(x)
        logits = net.decoder(code)
        if self.reconstruction == "squared_error":
            error = 0.5 * (torch.sigmoid(logits) - x).pow(2).sum(1).mean()
        else:
            error = F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(1).mean()
        loss = error + kl_sparsity_penalty(code, self.sparsity_target, self.sparsity_weight)
        loss = loss + weight_decay_penalty(net.encoder, self.weight_decay, self.normalize)
        loss = loss + weight_decay_penalty(net.decoder, self.weight_decay, self.normalize)
        return Step(loss, examples=len(idx))


def train_zoo_model(
    name: str,
    images: torch.Tensor,
    labels: torch.Tensor,
    options: TrainOptions,
    *,
    ae_epochs: int | None = None,
    batch_size: int = 128,
    lr: float = 1e-3,
    seed: int = 0,
    normalize: Normalisation = "classic",
    schedule: str = "constant",
    ae_weight_decay: float = 3e-3,
    sparsity_target: float = 0.1,
    sparsity_weight: float = 3.0,
    reconstruction: str = "cross_entropy",
    finetune: bool = False,
    num_classes: int = 10,
    dropout: tuple[float, float] | None = None,
) -> tuple[nn.Module, list[dict]]:
    """Build the zoo model ``name`` (initialised from ``seed``), train it with its weight decay.

    FC models: :class:`ZooClassifierTask` for ``options.epochs`` of Adam at ``lr`` with the
    learning-rate ``schedule`` (the workflow's default, config key ``adversarial.schedule``, is
    ``"cosine"``: annealed to 0, so that every model ends at a minimum of its objective, as
    the paper's 0% training errors of the sigmoid networks and its lambda-driven errors of FC10
    imply; ``"constant"`` here keeps the recipe of callers that do not choose, such as the
    adversarial-training regimes). The paper gives no optimiser, learning rate or epochs.

    AE400-10: (1) the sparse autoencoder (:class:`AutoencoderTask`, ``ae_epochs``, default
    ``options.epochs``) with L2 ``ae_weight_decay``, sparsity target ``sparsity_target``,
    weight ``sparsity_weight`` and loss ``reconstruction``; (2) the softmax on the *frozen*
    code for ``options.epochs``, with the zoo's lambda (1e-6), as the paper's "this layer was
    not fine-tuned" says. ``finetune=True`` (a deviation) trains encoder and softmax together
    in stage 2. Initialisation uses ``seed``, the pre-training data order ``seed + 1`` and the
    classifier's ``seed + 2``. ``dropout = (input_p, hidden_p)`` trains a sigmoid network with
    dropout. Returns the network (eval mode, on ``images.device``) and the classifier's history.
    """
    entry = ZOO.get(name)
    if entry is None:
        raise ValueError(f"model must be one of {sorted(ZOO)}, got {name!r}")
    num_inputs = int(np.prod(images.shape[1:]))
    model = build_zoo_model(name, num_inputs, num_classes, torch.Generator().manual_seed(int(seed)), dropout)
    model = model.to(images.device, images.dtype)
    trainable = None
    if isinstance(model, AutoencoderClassifier):
        stage = options.stage("autoencoder", ae_epochs or options.epochs)
        fit(AutoencoderTask(model, images, weight_decay=ae_weight_decay, normalize=normalize, batch_size=batch_size,
                            lr=lr, order_seed=seed + 1, sparsity_target=sparsity_target,
                            sparsity_weight=sparsity_weight, reconstruction=reconstruction, schedule=schedule), stage)
        trainable = [*model.classifier.parameters()] + ([*model.encoder.parameters()] if finetune else [])
        options = options.stage("classifier", options.epochs, options.history)
    task = ZooClassifierTask(model, images, labels, weight_decay=entry.weight_decay, normalize=normalize,
                             batch_size=batch_size, lr=lr, order_seed=seed + 2, trainable=trainable,
                             schedule=schedule)
    history = fit(task, options)
    return model.eval(), history
