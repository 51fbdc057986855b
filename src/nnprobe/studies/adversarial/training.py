"""Training the zoo of Szegedy et al. (2013) through the engine.

Three recipes, each a :class:`~nnprobe.engines.classifier.ClassifierTask`:

* :class:`ZooClassifierTask`: mini-batch Adam on the mean cross-entropy plus the paper's
  weight decay (:func:`~nnprobe.studies.adversarial.zoo.weight_decay_penalty`);
* :class:`AutoencoderTask`: stage 1 of AE400-10, the autoencoder alone, reconstructing the
  pixels;
* :class:`AdversarialPoolTask`: Sec. 4.3's adversarial training, the classifier's recipe with
  a continually refreshed pool of minimal adversarial examples mixed into every batch.

:func:`train_zoo_model` builds a zoo network from its seed and trains it (AE400-10 in two
stages). Images are float pixels in [0, 1] on the device.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ...engines.classifier import ClassifierTask
from ...engines.lbfgs import minimal_adversarial_lbfgs
from ...engines.training import OptimizerSpec, Step, TrainOptions, fit
from ...models.szegedy import AutoencoderClassifier
from .zoo import ZOO, Normalisation, build_zoo_model, weight_decay_penalty

__all__ = ["ZooClassifierTask", "AutoencoderTask", "AdversarialPoolTask", "train_zoo_model"]


class ZooClassifierTask(ClassifierTask):
    """Mini-batch Adam (lr ``lr``, torch's epsilon) on mean cross-entropy + the paper's weight decay.

    ``weight_decay`` is the per-layer lambda of :func:`weight_decay_penalty` with its
    ``normalize`` form; ``trainable`` restricts training to some parameters (AE400-10's softmax).
    """

    def __init__(self, network: nn.Module, images: torch.Tensor, labels: torch.Tensor, *,
                 weight_decay: float | Sequence[float], normalize: Normalisation, batch_size: int, lr: float,
                 order_seed: int, trainable: Sequence[nn.Parameter] | None = None) -> None:
        super().__init__(network, images, labels, batch_size=batch_size, order_seed=order_seed,
                         optimizer=OptimizerSpec("adam", lr=lr, eps=1e-8), trainable=trainable)
        self.weight_decay = weight_decay
        self.normalize = normalize

    def penalty(self) -> torch.Tensor:
        return weight_decay_penalty(self.network, self.weight_decay, self.normalize)


class AutoencoderTask(ClassifierTask):
    """Stage 1 of AE400-10: encoder and decoder reconstruct the pixels.

    Loss: binary cross-entropy between the input pixels (in [0, 1]) and the sigmoid
    reconstruction, averaged over pixels and images, plus the weight decay of encoder and
    decoder (the form of :func:`weight_decay_penalty`). Mini-batch Adam; the classifier layer
    does not train.
    """

    def __init__(self, network: AutoencoderClassifier, images: torch.Tensor, *, weight_decay: float,
                 normalize: Normalisation, batch_size: int, lr: float, order_seed: int) -> None:
        if not isinstance(network, AutoencoderClassifier):
            raise TypeError(f"network must be an AutoencoderClassifier (ae400_10), got {type(network).__name__}")
        labels = torch.zeros(images.shape[0], dtype=torch.long)
        super().__init__(network, images, labels, batch_size=batch_size, order_seed=order_seed,
                         optimizer=OptimizerSpec("adam", lr=lr, eps=1e-8),
                         trainable=[*network.encoder.parameters(), *network.decoder.parameters()])
        self.weight_decay = float(weight_decay if isinstance(weight_decay, (int, float)) else weight_decay[0])
        self.normalize = normalize

    def training_step(self, idx: torch.Tensor) -> Step:
        net = self.network
        x = self.images[idx].flatten(1)
        loss = F.binary_cross_entropy_with_logits(net.decoder(net.code(x)), x)
        loss = loss + weight_decay_penalty(net.encoder, self.weight_decay, self.normalize)
        loss = loss + weight_decay_penalty(net.decoder, self.weight_decay, self.normalize)
        return Step(loss, examples=len(idx))


class AdversarialPoolTask(ZooClassifierTask):
    """Adversarial training with a continually refreshed pool (Szegedy et al. 2013, Sec. 4.3).

    The paper trained a 100-100-10 network "by keeping a pool of adversarial examples a random
    subset of which is continuously replaced by newly generated adversarial examples and which
    is mixed into the original training set all the time", with weight decay and no dropout,
    and reached a test error below 1.2% (weight decay alone: 1.6%; dropout: about 1.3%).

    Here: every ``refresh_every`` optimizer steps (and before the first), ``refresh_size``
    random training images get one random wrong target each and are attacked with
    :func:`~nnprobe.engines.lbfgs.minimal_adversarial_lbfgs` (keyword arguments ``attack``; a
    smaller budget than the tables' attacks keeps this affordable) against the network as it is
    at that step; the successful examples, with their *true* labels, are appended to the pool
    until it holds ``pool_size`` examples and then replace random pool entries. Each step trains
    on a clean mini-batch plus ``round(pool_fraction * batch_size)`` examples drawn from the
    pool. Every draw comes from the epoch's generator; the pool and the step count are saved
    in the checkpoint, so a resumed job continues the same pool.

    After training, :attr:`pool` holds ``images``, ``labels``, ``sources`` (the training image
    each example was made from) and the counts ``generated`` / ``failed`` of attacked images
    whose attack reached / did not reach its target (images already in the target class count
    in neither) and ``distortions`` (RMS distortion of every example added).
    """

    def __init__(self, network: nn.Module, images: torch.Tensor, labels: torch.Tensor, *,
                 weight_decay: float | Sequence[float], normalize: Normalisation, batch_size: int, lr: float,
                 order_seed: int, pool_size: int, refresh_every: int, refresh_size: int, pool_fraction: float = 0.5,
                 attack: Mapping[str, Any] | None = None, num_classes: int = 10) -> None:
        if pool_size < 1 or refresh_every < 1 or refresh_size < 1:
            raise ValueError(f"pool_size, refresh_every and refresh_size must be >= 1, got {pool_size}, "
                             f"{refresh_every}, {refresh_size}")
        if not 0 < pool_fraction <= 1:
            raise ValueError(f"pool_fraction must be in (0, 1] (pool examples per clean example), got {pool_fraction}")
        super().__init__(network, images, labels, weight_decay=weight_decay, normalize=normalize,
                         batch_size=batch_size, lr=lr, order_seed=order_seed)
        self.pool_size, self.refresh_every, self.refresh_size = pool_size, refresh_every, refresh_size
        self.per_step = max(1, round(pool_fraction * batch_size))
        self.attack = dict(attack or {})
        self.num_classes = num_classes
        self.step = 0
        self.pool: dict[str, Any] = {"images": self.images[:0].clone(), "labels": self.labels[:0].clone(),
                                     "sources": self.labels[:0].clone(), "generated": 0, "failed": 0,
                                     "distortions": torch.zeros(0, dtype=torch.float64)}

    def get_extra_state(self) -> dict[str, Any]:
        return {"step": self.step, **self.pool}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        state = dict(state)
        self.step = int(state.pop("step"))
        device = self.images.device
        self.pool = {k: v.to(device) if isinstance(v, torch.Tensor) and k != "distortions" else v
                     for k, v in state.items()}

    def _refresh(self) -> None:
        pool, g, device = self.pool, self.generator, self.images.device
        idx = torch.randperm(self.images.shape[0], generator=g, device=device)[: self.refresh_size]
        shift = torch.randint(1, self.num_classes, (idx.numel(),), generator=g, device=device)
        target = (self.labels[idx] + shift) % self.num_classes
        res = minimal_adversarial_lbfgs(self.network, self.images[idx], target, **self.attack)
        # An image the network already puts in the target class comes back unchanged: no example.
        keep = res.success & (res.distortion > 0)
        new_x, new_y, new_s = res.adversarial[keep], self.labels[idx][keep], idx[keep]
        pool["generated"] += int(keep.sum())
        pool["failed"] += int((~res.success).sum())
        pool["distortions"] = torch.cat([pool["distortions"], res.distortion[keep].double().cpu()])
        room = self.pool_size - len(pool["labels"])
        if room > 0:
            pool["images"] = torch.cat([pool["images"], new_x[:room]])
            pool["labels"] = torch.cat([pool["labels"], new_y[:room]])
            pool["sources"] = torch.cat([pool["sources"], new_s[:room]])
            new_x, new_y, new_s = new_x[room:], new_y[room:], new_s[room:]
        if new_x.shape[0]:
            slots = torch.randperm(len(pool["labels"]), generator=g, device=device)[: new_x.shape[0]]
            pool["images"][slots], pool["labels"][slots], pool["sources"][slots] = new_x, new_y, new_s

    def inputs(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.step % self.refresh_every == 0:
            self._refresh()
            self.network.train()  # the attack evaluates the network in eval mode and restores its mode
        self.step += 1
        x, y = super().inputs(idx)
        size = len(self.pool["labels"])
        if size:
            draw = torch.randint(0, size, (self.per_step,), generator=self.generator, device=x.device)
            x, y = torch.cat([x, self.pool["images"][draw]]), torch.cat([y, self.pool["labels"][draw]])
        return x, y


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
    normalize: Normalisation = "units",
    finetune: bool = False,
    num_classes: int = 10,
    dropout: tuple[float, float] | None = None,
) -> tuple[nn.Module, list[dict]]:
    """Build the zoo model ``name`` (initialised from ``seed``), train it with its weight decay.

    FC models: :class:`ZooClassifierTask` for ``options.epochs``. AE400-10: :class:`AutoencoderTask`
    for ``ae_epochs`` (default ``options.epochs``), then the softmax classifier on the frozen code
    (or, with ``finetune=True``, encoder and classifier together). Initialisation uses ``seed``,
    the pre-training data order ``seed + 1`` and the classifier's ``seed + 2``. ``dropout =
    (input_p, hidden_p)`` trains a sigmoid network with dropout. Returns the network (eval mode,
    on ``images.device``) and the classifier's history.
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
        fit(AutoencoderTask(model, images, weight_decay=entry.weight_decay, normalize=normalize,
                            batch_size=batch_size, lr=lr, order_seed=seed + 1), stage)
        trainable = [*model.classifier.parameters()] + ([*model.encoder.parameters()] if finetune else [])
        options = options.stage("classifier", options.epochs, options.history)
    task = ZooClassifierTask(model, images, labels, weight_decay=entry.weight_decay, normalize=normalize,
                             batch_size=batch_size, lr=lr, order_seed=seed + 2, trainable=trainable)
    history = fit(task, options)
    return model.eval(), history
