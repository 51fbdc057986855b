"""Szegedy et al. (2013), "Intriguing properties of neural networks", on MNIST.

The package core of the adversarial study: the paper's MNIST model zoo, its layer-normalised
weight decay, the disjoint halves P1/P2 of the training set, minimal adversarial examples by
box-constrained L-BFGS (Sec. 4.1) with a per-example search over ``c``, a simple iterative
gradient baseline, Gaussian-noise controls, the cross-model error matrix (Tables 1-3) and
the top images along natural-basis units and random directions (Sec. 3).

Conventions (all functions):

* Images are raw pixels in ``[0, 1]`` (no mean/std standardisation), any shape ``(N, ...)``;
  every model flattens them. The attack's box ``[0, 1]^m`` and the distortion are therefore
  in the paper's pixel units.
* Distortion is the per-example RMS ``sqrt(sum((x' - x)^2) / n)``, ``n`` the number of
  pixels (:func:`rms_distortion`), the paper's measure in Tables 1-3.
* Apart from the training functions, which train the model they are given, functions are
  pure: a model is evaluated in eval mode (its mode is restored after) and never changed;
  randomness comes from an explicit seed.

Reference: C. Szegedy, W. Zaremba, I. Sutskever, J. Bruna, D. Erhan, I. Goodfellow,
R. Fergus. Intriguing properties of neural networks. arXiv:1312.6199 (ICLR 2014).

This module imports no other ``nnprobe`` module except :mod:`nnprobe.models`. It uses
``scipy.optimize`` (a pinned dependency) for L-BFGS-B.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np
import torch
from scipy.optimize import Bounds, minimize
from torch import nn
from torch.nn import functional as F

from .models import count_parameters, glorot_init_

__all__ = [
    "SoftmaxRegression",
    "SigmoidMLP",
    "AutoencoderClassifier",
    "fc10",
    "fc_sigmoid",
    "ae400_10",
    "ZooEntry",
    "ZOO",
    "build_zoo_model",
    "zoo_slug",
    "decayed_layers",
    "weight_decay_penalty",
    "fit_classifier",
    "pretrain_autoencoder",
    "train_zoo_model",
    "AdversarialPool",
    "train_with_adversarial_pool",
    "p1_p2_split",
    "unit_pixels",
    "attacked_subset",
    "error_rate",
    "save_zoo_model",
    "load_zoo_model",
    "rms_distortion",
    "rescale_to_rms",
    "AdversarialResult",
    "DEFAULT_C_GRID",
    "halving_c_grid",
    "minimal_adversarial_lbfgs",
    "minimal_adversarial_any_target",
    "iterative_gradient_attack",
    "gaussian_noise_control",
    "ErrorMatrix",
    "cross_model_error_matrix",
    "random_directions",
    "top_activating_images",
    "count_parameters",
]

# --------------------------------------------------------------------------- model zoo


class SoftmaxRegression(nn.Module):
    """FC10: one dense layer from the flattened pixels to the class logits (softmax output)."""

    def __init__(self, num_inputs: int = 784, num_classes: int = 10) -> None:
        super().__init__()
        self.fc = nn.Linear(num_inputs, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.flatten(1))

    def hidden(self, x: torch.Tensor) -> list[torch.Tensor]:
        """No hidden layer: an empty list."""
        return []


class SigmoidMLP(nn.Module):
    """FC{h1}-{h2}-...-{classes}: dense sigmoid hidden layers, a dense softmax output layer."""

    def __init__(
        self,
        hidden: Sequence[int] = (100, 100),
        num_inputs: int = 784,
        num_classes: int = 10,
        input_dropout: float = 0.0,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        hidden = tuple(int(h) for h in hidden)
        if not hidden or any(h < 1 for h in hidden):
            raise ValueError(f"hidden must be a non-empty sequence of positive layer sizes, got {hidden!r}")
        for name, p in (("input_dropout", input_dropout), ("dropout", dropout)):
            if not 0.0 <= p < 1.0:
                raise ValueError(f"{name} must be a drop probability in [0, 1), got {p!r}")
        sizes = (num_inputs, *hidden)
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.out = nn.Linear(sizes[-1], num_classes)
        # Dropout (Hinton et al. 2012) acts in train mode only: on the pixels and on every
        # hidden layer's output. hidden() returns the activations before dropout.
        self.input_dropout = nn.Dropout(input_dropout)
        self.dropout = nn.Dropout(dropout)

    def _activations(self, x: torch.Tensor, drop: bool) -> list[torch.Tensor]:
        h = x.flatten(1)
        if drop:
            h = self.input_dropout(h)
        acts = []
        for layer in self.layers:
            a = torch.sigmoid(layer(h))
            acts.append(a)
            h = self.dropout(a) if drop else a
        return acts if not drop else [*acts[:-1], h]

    def hidden(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The sigmoid activations of every hidden layer, ``[(N, h1), (N, h2), ...]``."""
        return self._activations(x, drop=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self._activations(x, drop=True)[-1])


class AutoencoderClassifier(nn.Module):
    """AE{code}-{classes}: a one-hidden-layer sigmoid autoencoder and a softmax classifier on its code.

    ``encoder`` (pixels -> code, sigmoid), ``decoder`` (code -> pixels, sigmoid; used only for
    pre-training) and ``classifier`` (code -> logits). ``forward`` gives the class logits.
    """

    def __init__(self, code: int = 400, num_inputs: int = 784, num_classes: int = 10) -> None:
        super().__init__()
        self.encoder = nn.Linear(num_inputs, code)
        self.decoder = nn.Linear(code, num_inputs)
        self.classifier = nn.Linear(code, num_classes)

    def code(self, x: torch.Tensor) -> torch.Tensor:
        """The sigmoid code ``(N, code)``."""
        return torch.sigmoid(self.encoder(x.flatten(1)))

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """The reconstruction ``(N, num_inputs)``, pixels in (0, 1)."""
        return torch.sigmoid(self.decoder(self.code(x)))

    def hidden(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The code, as the single hidden layer: ``[(N, code)]``."""
        return [self.code(x)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.code(x))


def fc10(num_inputs: int = 784, num_classes: int = 10, generator: torch.Generator | None = None) -> SoftmaxRegression:
    """FC10(lambda) of Szegedy et al. (2013), Table 1: softmax regression, 784 -> 10.

    One dense layer on the flattened 28x28 pixels with a softmax output: 784*10 + 10 = 7,850
    parameters. The paper trains it with weight decay lambda in {1e-4, 1e-2, 1} (see
    :data:`ZOO` and :func:`weight_decay_penalty`). Glorot-uniform weights, zero biases.
    """
    return glorot_init_(SoftmaxRegression(num_inputs, num_classes), generator)


def fc_sigmoid(
    hidden: Sequence[int] = (100, 100),
    num_inputs: int = 784,
    num_classes: int = 10,
    generator: torch.Generator | None = None,
    input_dropout: float = 0.0,
    dropout: float = 0.0,
) -> SigmoidMLP:
    """FC100-100-10, FC200-200-10 and FC123-456-10 of Szegedy et al. (2013), Tables 1-2.

    Fully connected network 784 -> hidden[0] -> hidden[1] -> ... -> 10 with logistic-sigmoid
    hidden units and a softmax output. FC100-100-10 has 784*100+100 + 100*100+100 + 100*10+10
    = 89,610 parameters; FC200-200-10 199,210; FC123-456-10 158,301. The paper's weight decay
    is lambda = 1e-5, 1e-5, 1e-6 for the three layers. Glorot-uniform weights, zero biases.
    ``input_dropout``/``dropout`` (default 0: none) drop pixels / hidden units in training,
    for the dropout arm of the adversarial-training comparison (Sec. 4.3).
    """
    return glorot_init_(SigmoidMLP(hidden, num_inputs, num_classes, input_dropout, dropout), generator)


def ae400_10(
    code: int = 400,
    num_inputs: int = 784,
    num_classes: int = 10,
    generator: torch.Generator | None = None,
) -> AutoencoderClassifier:
    """AE400-10 of Szegedy et al. (2013), Table 1: a softmax classifier on a 400-unit autoencoder.

    Encoder 784 -> 400 (sigmoid), decoder 400 -> 784 (sigmoid, for pre-training only),
    classifier 400 -> 10 (softmax); weight decay lambda = 1e-6. The paper says only "a
    classifier trained on top of an autoencoder"; we implement that literally, in two stages
    (:func:`train_zoo_model`): (1) the autoencoder is pre-trained alone with the pixel-wise
    binary cross-entropy between input and reconstruction, (2) the encoder is frozen and the
    softmax classifier is trained on the code. Stage (2) can optionally fine-tune the encoder
    too (``finetune=True``); the frozen version is the default because it is what "on top of"
    describes, and it keeps the code an unsupervised representation, which is what makes
    the AE row of Table 1 a different kind of model. The adversarial examples attack the
    composed classifier (encoder then softmax); the decoder plays no part in them.
    784*400+400 + 400*784+784 + 400*10+10 = 631,594 parameters, 318,010 of them on the
    classification path.
    """
    return glorot_init_(AutoencoderClassifier(code, num_inputs, num_classes), generator)


class ZooEntry(NamedTuple):
    """A model of the paper's zoo: ``(constructor, weight_decay, description)``.

    ``constructor(num_inputs=..., num_classes=..., generator=...)`` builds the network;
    ``weight_decay`` is the per-layer lambda of :func:`weight_decay_penalty` (one value per
    layer of :func:`decayed_layers`, or one value for all of them).
    """

    constructor: Callable[..., nn.Module]
    weight_decay: float | tuple[float, ...]
    description: str


ZOO: dict[str, ZooEntry] = {
    "FC10(1e-4)": ZooEntry(fc10, 1e-4, "Softmax with lambda = 1e-4"),
    "FC10(1e-2)": ZooEntry(fc10, 1e-2, "Softmax with lambda = 1e-2"),
    "FC10(1)": ZooEntry(fc10, 1.0, "Softmax with lambda = 1"),
    "FC100-100-10": ZooEntry(
        functools.partial(fc_sigmoid, (100, 100)), (1e-5, 1e-5, 1e-6), "Sigmoid network lambda = 1e-5, 1e-5, 1e-6"
    ),
    "FC200-200-10": ZooEntry(
        functools.partial(fc_sigmoid, (200, 200)), (1e-5, 1e-5, 1e-6), "Sigmoid network lambda = 1e-5, 1e-5, 1e-6"
    ),
    # Table 2 (cross-training-set generalisation) does not restate its decay: FC100-100-10's.
    "FC123-456-10": ZooEntry(
        functools.partial(fc_sigmoid, (123, 456)), (1e-5, 1e-5, 1e-6), "Sigmoid network lambda = 1e-5, 1e-5, 1e-6"
    ),
    "AE400-10": ZooEntry(ae400_10, 1e-6, "Autoencoder with Softmax lambda = 1e-6"),
}
"""The MNIST models of Szegedy et al. (2013), Tables 1 and 2, by the paper's names."""


def build_zoo_model(
    name: str,
    num_inputs: int = 784,
    num_classes: int = 10,
    generator: torch.Generator | None = None,
    dropout: tuple[float, float] | None = None,
) -> nn.Module:
    """Construct the zoo model ``name`` (a key of :data:`ZOO`) for inputs of ``num_inputs`` pixels.

    ``dropout = (input_p, hidden_p)`` adds dropout to a sigmoid network (FC...-10 only).
    """
    if name not in ZOO:
        raise ValueError(f"model must be one of {sorted(ZOO)}, got {name!r}")
    extra = {}
    if dropout is not None and any(dropout):
        constructor = ZOO[name].constructor
        if not (isinstance(constructor, functools.partial) and constructor.func is fc_sigmoid):
            raise ValueError(f"dropout applies to the sigmoid networks (FC...-...-10) only, not to {name!r}")
        extra = {"input_dropout": float(dropout[0]), "dropout": float(dropout[1])}
    return ZOO[name].constructor(num_inputs=num_inputs, num_classes=num_classes, generator=generator, **extra)


def zoo_slug(name: str) -> str:
    """A file-name form of a zoo name: ``"FC10(1e-4)"`` -> ``"fc10_1e-4"``, ``"AE400-10"`` -> ``"ae400-10"``."""
    return re.sub(r"[^a-z0-9.-]+", "_", name.lower()).strip("_")


# --------------------------------------------------------------------------- weight decay

Normalisation = Literal["weights", "units", "none"]


def decayed_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The layers whose weights are decayed: every ``nn.Linear``/``nn.Conv2d``, in module order.

    For the zoo: FC10 ``[fc]``; FC-sigmoid ``[layers.0, layers.1, ..., out]``; AE400-10
    ``[encoder, decoder, classifier]``.
    """
    return [(name, m) for name, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))]


def weight_decay_penalty(
    model: nn.Module,
    lambdas: float | Sequence[float],
    normalize: Normalisation = "units",
) -> torch.Tensor:
    """Layer-normalised L2 weight decay of Szegedy et al. (2013), Sec. 4.3 and Table 1.

    The paper gives each layer its own lambda and divides the layer's sum of squared weights
    by the size of the layer, "lambda * sum w^2 / k", without defining k further. We
    implement, by default (``normalize="units"``),

        penalty = sum over decayed layers l of  lambda_l * sum_i w_{l,i}^2 / k_l,

    with ``k_l`` the number of units of layer l, i.e. its outputs (``weight.shape[0]``: 10
    for FC10, 100, 100 and 10 for FC100-100-10). The penalty is added to the *mean*
    cross-entropy of a mini-batch. Biases are not decayed.

    ``normalize="weights"`` divides by the number of weights of the layer instead
    (``weight.numel()``: lambda_l times the *mean* squared weight, 7,840 for FC10);
    ``normalize="none"`` is plain ``lambda * sum(w^2)``. Why "units" is the default:
    trained on MNIST (4 epochs of Adam, lr 3e-3, batch 128), FC10 with lambda = 1e-4,
    1e-2, 1 reached training errors 7.4%, 8.8%, 17.7% with "units" and 7.3%, 7.3%, 7.7%
    with "weights", against the paper's 6.7%, 10%, 21.2%: only "units" reproduces the
    effect of lambda that Table 1 shows (with "weights" even lambda = 1 barely regularises).
    For the sigmoid networks (lambda 1e-5, 1e-6) both readings give a negligible decay.

    ``lambdas`` is one value per layer of :func:`decayed_layers` (FC100-100-10:
    ``(1e-5, 1e-5, 1e-6)``) or a single value for every layer. Returns a differentiable
    scalar on the model's device.
    """
    layers = decayed_layers(model)
    if not layers:
        raise ValueError(f"{type(model).__name__} has no nn.Linear or nn.Conv2d layer to decay")
    if isinstance(lambdas, (int, float)) and not isinstance(lambdas, bool):
        lambdas = [float(lambdas)] * len(layers)
    lambdas = [float(v) for v in lambdas]
    if len(lambdas) != len(layers):
        raise ValueError(
            f"lambdas has {len(lambdas)} values but {type(model).__name__} has {len(layers)} decayed layers "
            f"{[name for name, _ in layers]}; give one value per layer or a single value"
        )
    if any(not math.isfinite(v) or v < 0 for v in lambdas):
        raise ValueError(f"lambdas must be finite and >= 0, got {lambdas}")
    if normalize not in ("weights", "units", "none"):
        raise ValueError(f"normalize must be 'weights', 'units' or 'none', got {normalize!r}")
    total = torch.zeros((), dtype=layers[0][1].weight.dtype, device=layers[0][1].weight.device)
    for lam, (_, layer) in zip(lambdas, layers):
        w = layer.weight
        size = {"weights": w.numel(), "units": w.shape[0], "none": 1}[normalize]
        total = total + lam * w.pow(2).sum() / size
    return total


# --------------------------------------------------------------------------- training


def _check_images(x: torch.Tensor, name: str = "x") -> None:
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point torch.Tensor of pixels in [0, 1], got {_describe(x)}")
    if x.ndim < 2 or x.shape[0] == 0:
        raise ValueError(f"{name} must have shape (N, ...) with N >= 1, got {tuple(x.shape)}")
    lo, hi = float(x.min()), float(x.max())
    if lo < 0 or hi > 1 or not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"{name} must hold pixels in [0, 1] (divide uint8 images by 255), got values in [{lo}, {hi}]")


def _describe(x: object) -> str:
    if isinstance(x, (torch.Tensor, np.ndarray)):
        return f"{type(x).__name__} of dtype {x.dtype} and shape {tuple(x.shape)}"
    return type(x).__name__


def _check_labels(y: torch.Tensor, n: int, name: str, num_classes: int | None = None) -> torch.Tensor:
    y = torch.as_tensor(y)
    if y.is_floating_point() or y.dtype == torch.bool or y.ndim != 1 or y.shape[0] != n:
        raise ValueError(f"{name} must be {n} integer class labels of shape ({n},), got {_describe(y)}")
    if num_classes is not None and y.numel() and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        raise ValueError(f"{name} must be in [0, {num_classes}), got values in [{int(y.min())}, {int(y.max())}]")
    return y.long()


def _set_trainable(model: nn.Module, params: Sequence[nn.Parameter]) -> tuple[list[nn.Parameter], list[bool]]:
    """Freeze every parameter of ``model`` not in ``params``; return the trainable ones and the old flags."""
    keep = {id(p) for p in params}
    flags = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(id(p) in keep)
    return [p for p in model.parameters() if id(p) in keep], flags


def _restore_trainable(model: nn.Module, flags: Sequence[bool]) -> None:
    for p, flag in zip(model.parameters(), flags):
        p.requires_grad_(flag)


def _minibatch_adam(
    model: nn.Module,
    params: list[torch.Tensor],
    batch_loss: Callable[[torch.Tensor], torch.Tensor],
    n: int,
    device: torch.device,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
) -> list[float]:
    """Mini-batch Adam over ``params`` with a seeded order of ``n`` examples; each epoch's mean loss.

    ``batch_loss(idx)`` returns the loss of the examples ``idx``. Parameters of ``model`` not in
    ``params`` are frozen for the call (every ``requires_grad`` flag is restored after). The
    model is in train mode while training and in eval mode afterwards.
    """
    params, flags = _set_trainable(model, params)
    optimizer = torch.optim.Adam(params, lr=lr)
    generator = torch.Generator().manual_seed(int(seed))
    history = []
    model.train()
    try:
        for _ in range(epochs):
            perm = torch.randperm(n, generator=generator).to(device)
            losses = []
            for start in range(0, n, batch_size):
                loss = batch_loss(perm[start : start + batch_size])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                losses.append(loss.detach())
            history.append(float(torch.stack(losses).mean()))
    finally:
        model.eval()
        _restore_trainable(model, flags)
    return history


def fit_classifier(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    weight_decay: float | Sequence[float],
    *,
    epochs: int,
    batch_size: int = 128,
    lr: float = 1e-3,
    seed: int = 0,
    normalize: Normalisation = "units",
    params: Sequence[nn.Parameter] | None = None,
) -> list[float]:
    """Train ``model`` in place by mini-batch Adam on mean cross-entropy + :func:`weight_decay_penalty`.

    The batch order of epoch e is a permutation drawn from ``torch.Generator(seed)``, on the
    CPU, so it is the same on every device. ``params`` restricts training to those parameters
    (the others are frozen for the call; every ``requires_grad`` flag is restored after).
    The model is left in eval mode. Returns each epoch's mean loss.
    """
    if epochs < 1 or batch_size < 1 or not lr > 0:
        raise ValueError(f"epochs, batch_size and lr must be positive, got {epochs}, {batch_size}, {lr}")
    _check_images(images, "images")
    labels = _check_labels(labels, images.shape[0], "labels").to(images.device)
    trainable = list(params) if params is not None else list(model.parameters())

    def batch_loss(idx: torch.Tensor) -> torch.Tensor:
        loss = F.cross_entropy(model(images[idx]), labels[idx])
        return loss + weight_decay_penalty(model, weight_decay, normalize)

    return _minibatch_adam(model, trainable, batch_loss, images.shape[0], images.device,
                           epochs=epochs, batch_size=batch_size, lr=lr, seed=seed)


def pretrain_autoencoder(
    model: AutoencoderClassifier,
    images: torch.Tensor,
    weight_decay: float,
    *,
    epochs: int,
    batch_size: int = 128,
    lr: float = 1e-3,
    seed: int = 0,
    normalize: Normalisation = "units",
) -> list[float]:
    """Stage 1 of AE400-10: train encoder and decoder to reconstruct the pixels.

    Loss: binary cross-entropy between the input pixels (in [0, 1]) and the sigmoid
    reconstruction, averaged over pixels and images, plus the weight decay of encoder and
    decoder (same form as :func:`weight_decay_penalty`). Mini-batch Adam, seeded batch order.
    Returns each epoch's mean loss.
    """
    if not isinstance(model, AutoencoderClassifier):
        raise TypeError(f"model must be an AutoencoderClassifier (ae400_10), got {type(model).__name__}")
    if epochs < 1 or batch_size < 1 or not lr > 0:
        raise ValueError(f"epochs, batch_size and lr must be positive, got {epochs}, {batch_size}, {lr}")
    _check_images(images, "images")
    ae_params = [*model.encoder.parameters(), *model.decoder.parameters()]
    lam = float(weight_decay if isinstance(weight_decay, (int, float)) else weight_decay[0])

    def batch_loss(idx: torch.Tensor) -> torch.Tensor:
        x = images[idx].flatten(1)
        loss = F.binary_cross_entropy_with_logits(model.decoder(model.code(x)), x)
        loss = loss + weight_decay_penalty(model.encoder, lam, normalize)
        return loss + weight_decay_penalty(model.decoder, lam, normalize)

    return _minibatch_adam(model, ae_params, batch_loss, images.shape[0], images.device,
                           epochs=epochs, batch_size=batch_size, lr=lr, seed=seed)


def train_zoo_model(
    name: str,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    epochs: int,
    ae_epochs: int | None = None,
    batch_size: int = 128,
    lr: float = 1e-3,
    seed: int = 0,
    normalize: Normalisation = "units",
    finetune: bool = False,
    num_classes: int = 10,
    dropout: tuple[float, float] | None = None,
) -> nn.Module:
    """Build the zoo model ``name`` (initialised from ``seed``) and train it with its weight decay.

    FC models: :func:`fit_classifier` for ``epochs``. AE400-10: :func:`pretrain_autoencoder`
    for ``ae_epochs`` (default ``epochs``), then the softmax classifier on the frozen code
    (or, with ``finetune=True``, encoder and classifier together) for ``epochs``.
    Initialisation uses ``seed``, the pre-training batch order ``seed + 1`` and the
    classifier's batch order ``seed + 2``. ``dropout = (input_p, hidden_p)`` trains a sigmoid
    network with dropout (see :func:`build_zoo_model`). Returns the model in eval mode on
    ``images.device``.
    """
    entry = ZOO.get(name)
    if entry is None:
        raise ValueError(f"model must be one of {sorted(ZOO)}, got {name!r}")
    num_inputs = int(np.prod(images.shape[1:]))
    model = build_zoo_model(name, num_inputs, num_classes, torch.Generator().manual_seed(int(seed)), dropout)
    model = model.to(images.device, images.dtype)
    if isinstance(model, AutoencoderClassifier):
        pretrain_autoencoder(
            model,
            images,
            entry.weight_decay,
            epochs=ae_epochs or epochs,
            batch_size=batch_size,
            lr=lr,
            seed=seed + 1,
            normalize=normalize,
        )
        params = [*model.classifier.parameters()] + ([*model.encoder.parameters()] if finetune else [])
    else:
        params = list(model.parameters())
    fit_classifier(
        model,
        images,
        labels,
        entry.weight_decay,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        seed=seed + 2,
        normalize=normalize,
        params=params,
    )
    return model.eval()


@dataclass
class AdversarialPool:
    """The pool of :func:`train_with_adversarial_pool`: examples, true labels, sources, counts.

    ``sources[i]`` is the index of the training image that example i was made from.

    ``generated`` / ``failed`` count the attacked training images whose attack reached / did
    not reach its target (images the model already put in the target class count in neither);
    ``distortions`` holds the RMS distortion of every example added.
    """

    images: torch.Tensor
    labels: torch.Tensor
    sources: torch.Tensor
    generated: int = 0
    failed: int = 0
    distortions: list[float] = dataclasses.field(default_factory=list)

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def train_with_adversarial_pool(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    weight_decay: float | Sequence[float],
    *,
    epochs: int,
    pool_size: int,
    refresh_every: int,
    refresh_size: int,
    pool_fraction: float = 0.5,
    batch_size: int = 128,
    lr: float = 1e-3,
    seed: int = 0,
    normalize: Normalisation = "units",
    attack: Mapping[str, object] | None = None,
) -> tuple[list[float], AdversarialPool]:
    """Adversarial training with a continually refreshed pool (Szegedy et al. 2013, Sec. 4.3).

    The paper trained a 100-100-10 network "by keeping a pool of adversarial examples a random
    subset of which is continuously replaced by newly generated adversarial examples and which
    is mixed into the original training set all the time", with weight decay and no dropout,
    and reached a test error below 1.2% (weight decay alone: 1.6%; dropout: about 1.3%).

    Here: every ``refresh_every`` optimizer steps (and before the first), ``refresh_size``
    random training images get one random wrong target each and are attacked with
    :func:`minimal_adversarial_lbfgs` (keyword arguments ``attack``; a smaller budget than
    the tables' attacks keeps this affordable) against the model as it is at that step; the
    successful examples, with their *true* labels, are appended to the pool until it holds
    ``pool_size`` examples and then replace random pool entries. Each step trains on a
    clean mini-batch of ``batch_size`` plus ``round(pool_fraction * batch_size)`` examples
    drawn from the pool, with mean cross-entropy over both plus :func:`weight_decay_penalty`.
    All random choices come from ``seed`` (a CPU generator): clean batch order as in
    :func:`fit_classifier`, attacked images, targets, pool draws and replacements.

    Returns each epoch's mean loss and the final :class:`AdversarialPool`; the model is left
    in eval mode.
    """
    if epochs < 1 or batch_size < 1 or not lr > 0:
        raise ValueError(f"epochs, batch_size and lr must be positive, got {epochs}, {batch_size}, {lr}")
    if pool_size < 1 or refresh_every < 1 or refresh_size < 1:
        raise ValueError(
            f"pool_size, refresh_every and refresh_size must be >= 1, got {pool_size}, {refresh_every}, {refresh_size}"
        )
    if not 0 < pool_fraction <= 1:
        raise ValueError(f"pool_fraction must be in (0, 1] (pool examples per clean example), got {pool_fraction}")
    _check_images(images, "images")
    labels = _check_labels(labels, images.shape[0], "labels").to(images.device)
    num_classes = _num_classes(model, images)
    rng = torch.Generator().manual_seed(int(seed) + 1)
    pool = AdversarialPool(images[:0].clone(), labels[:0].clone(), labels[:0].clone())
    per_step = max(1, round(pool_fraction * batch_size))
    step = 0

    def refresh() -> None:
        idx = torch.randperm(images.shape[0], generator=rng)[:refresh_size].to(images.device)
        shift = torch.randint(1, num_classes, (idx.numel(),), generator=rng).to(images.device)
        target = (labels[idx] + shift) % num_classes
        res = minimal_adversarial_lbfgs(model, images[idx], target, **dict(attack or {}))
        # An image the model already puts in the target class comes back unchanged: no example.
        keep = res.success & (res.distortion > 0)
        new_x, new_y, new_s = res.adversarial[keep], labels[idx][keep], idx[keep]
        pool.generated += int(keep.sum())
        pool.failed += int((~res.success).sum())
        pool.distortions.extend(res.distortion[keep].tolist())
        room = pool_size - len(pool)
        if room > 0:
            pool.images = torch.cat([pool.images, new_x[:room]])
            pool.labels = torch.cat([pool.labels, new_y[:room]])
            pool.sources = torch.cat([pool.sources, new_s[:room]])
            new_x, new_y, new_s = new_x[room:], new_y[room:], new_s[room:]
        if new_x.shape[0]:
            slots = torch.randperm(len(pool), generator=rng)[: new_x.shape[0]].to(images.device)
            pool.images[slots] = new_x
            pool.labels[slots] = new_y
            pool.sources[slots] = new_s

    def batch_loss(idx: torch.Tensor) -> torch.Tensor:
        nonlocal step
        if step % refresh_every == 0:
            refresh()
            model.train()  # the attack evaluates the model in eval mode and restores the mode
        step += 1
        x, y = images[idx], labels[idx]
        if len(pool):
            draw = torch.randint(0, len(pool), (per_step,), generator=rng).to(images.device)
            x, y = torch.cat([x, pool.images[draw]]), torch.cat([y, pool.labels[draw]])
        loss = F.cross_entropy(model(x), y)
        return loss + weight_decay_penalty(model, weight_decay, normalize)

    history = _minibatch_adam(
        model,
        list(model.parameters()),
        batch_loss,
        images.shape[0],
        images.device,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
    )
    return history, pool


# --------------------------------------------------------------------------- P1 / P2


def p1_p2_split(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two disjoint random halves P1 and P2 of ``range(n)`` (Szegedy et al. 2013, Table 2).

    The paper splits the 60,000 MNIST training images into P1 and P2 of 30,000 each. Here a
    permutation from ``numpy.random.default_rng(seed)`` is cut in two; each half has
    ``n // 2`` indices (for odd ``n`` the last index of the permutation is in neither) and is
    returned sorted, as int64. Same ``(n, seed)``, same halves, on every machine.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2:
        raise ValueError(f"n must be an integer >= 2 (the number of training images), got {n!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    perm = np.random.default_rng(int(seed)).permutation(int(n))
    half = int(n) // 2
    return np.sort(perm[:half]).astype(np.int64), np.sort(perm[half : 2 * half]).astype(np.int64)


def unit_pixels(images: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """uint8 images ``(N, C, H, W)`` (a prepared split's) as float32 pixels in [0, 1] on ``device``."""
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise TypeError(f"images must be uint8 (a prepared split's), got {images.dtype}")
    # torch.tensor copies: prepared splits may be read-only arrays, which from_numpy warns about.
    return torch.tensor(images).to(device=device, dtype=torch.float32).div_(255.0)


def attacked_subset(n: int, count: int, seed: int) -> np.ndarray:
    """The sorted indices of ``min(count, n)`` images drawn without replacement from ``range(n)``.

    Every model of a table is attacked on the same images, so that the rows of the
    cross-model matrix differ only by the model that made them.
    """
    if n < 1 or count < 1:
        raise ValueError(f"n and count must be >= 1, got {n}, {count}")
    rng = np.random.default_rng(int(seed))
    return np.sort(rng.choice(int(n), size=min(int(count), int(n)), replace=False)).astype(np.int64)


@torch.no_grad()
def error_rate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 4096) -> float:
    """Fraction of ``x`` that ``model`` (in eval mode, restored after) does not classify as ``y``."""
    was_training = model.training
    model.eval()
    try:
        pred = torch.cat([_predict(model, x[s : s + batch_size]) for s in range(0, x.shape[0], batch_size)])
    finally:
        model.train(was_training)
    return float((pred != y.to(pred.device)).double().mean())


def save_zoo_model(model: nn.Module, path: str | Path) -> None:
    """Write the model's state dict as safetensors (reload with :func:`load_zoo_model`)."""
    from safetensors.torch import save_file

    save_file({k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}, str(path))


def load_zoo_model(
    name: str, path: str | Path, num_inputs: int, num_classes: int = 10, device: torch.device | str = "cpu"
) -> nn.Module:
    """Rebuild the zoo model ``name`` and load the weights of :func:`save_zoo_model`; eval mode."""
    from safetensors.torch import load_file

    model = build_zoo_model(name, num_inputs, num_classes)
    state = load_file(str(path))
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in state.items()}
    if expected != found:
        raise ValueError(
            f"{path} does not hold the weights of {name!r} for {num_inputs} inputs and {num_classes} classes: "
            f"expected tensors {expected}, found {found}; re-run the rule that trains it"
        )
    model.load_state_dict(state)
    return model.to(device).eval()


# --------------------------------------------------------------------------- distortion


def rms_distortion(x_adv: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Per-example RMS distortion ``sqrt(sum_i (x'_i - x_i)^2 / n)``, ``n`` pixels per example.

    Szegedy et al. (2013), Table 1: pixels in [0, 1], so Gaussian noise of stddev s has
    distortion about s. Inputs ``(N, ...)``; returns ``(N,)`` in x's floating dtype.
    """
    x_adv, x = torch.as_tensor(x_adv), torch.as_tensor(x)
    if x_adv.shape != x.shape or x.ndim < 1:
        raise ValueError(
            f"x_adv and x must have the same shape (N, ...), got {tuple(x_adv.shape)} and {tuple(x.shape)}"
        )
    dtype = x.dtype if x.is_floating_point() else torch.float64
    diff = (x_adv.to(dtype) - x.to(dtype)).reshape(x.shape[0], -1)
    return diff.pow(2).mean(dim=1).sqrt()


def rescale_to_rms(x_adv: torch.Tensor, x: torch.Tensor, rms: float, steps: int = 50) -> torch.Tensor:
    """Rescale each perturbation ``x' - x`` so that the clipped result has RMS distortion ``rms``.

    Szegedy et al. (2013), Table 2, also feed the adversarial examples rescaled to RMS
    distortion 0.1 to every model. We return ``clip(x + s * (x' - x), 0, 1)`` with a per-example ``s > 0``
    found by bisection (``steps`` halvings): the RMS of the clipped image is non-decreasing in
    ``s``, so this hits ``rms`` exactly unless clipping saturates first (then the largest
    reachable RMS is returned). Examples with ``x' == x`` are returned unchanged.
    """
    if not rms > 0:
        raise ValueError(f"rms must be > 0, got {rms}")
    d = rms_distortion(x_adv, x)
    delta = x_adv.to(x.dtype) - x
    moving = d > 0
    scale_shape = (-1,) + (1,) * (x.ndim - 1)

    def at(s: torch.Tensor) -> torch.Tensor:
        return (x + s.view(scale_shape) * delta).clamp(0, 1)

    lo = torch.zeros_like(d)
    hi = torch.where(moving, rms / d.clamp_min(1e-30), torch.zeros_like(d))
    for _ in range(60):  # grow hi until the clipped RMS reaches the target (or saturates)
        short = moving & (rms_distortion(at(hi), x) < rms)
        if not short.any():
            break
        lo = torch.where(short, hi, lo)
        hi = torch.where(short, hi * 2, hi)
    for _ in range(steps):
        mid = (lo + hi) / 2
        below = rms_distortion(at(mid), x) < rms
        lo = torch.where(below, mid, lo)
        hi = torch.where(below, hi, mid)
    return torch.where(moving.view(scale_shape), at(hi), x)


# --------------------------------------------------------------------------- attacks


@dataclass(frozen=True)
class AdversarialResult:
    """Targeted adversarial examples for a batch ``x`` of N images.

    ``adversarial`` has x's shape, dtype and device. ``success[i]`` is True iff the model
    classifies ``adversarial[i]`` as ``target[i]`` (checked on the returned tensor).
    ``distortion[i]`` is its RMS distortion (:func:`rms_distortion`), NaN where ``success``
    is False (there ``adversarial[i]`` is the last attempt, not an adversarial example).
    ``c[i]`` is the c of the kept L-BFGS solution (inf if ``x[i]`` was already classified as
    its target, NaN for failures and for the gradient baseline).
    """

    adversarial: torch.Tensor
    target: torch.Tensor
    success: torch.Tensor
    distortion: torch.Tensor
    c: torch.Tensor

    @property
    def failed(self) -> torch.Tensor:
        """Indices of the examples that never reached their target."""
        return torch.nonzero(~self.success).flatten()


DEFAULT_C_GRID: tuple[float, ...] = tuple(2.0**k for k in range(6, -13, -1))
"""c = 64, 32, ..., 2^-12 (19 values): the coarse search of :func:`minimal_adversarial_lbfgs`."""


def halving_c_grid(c_max: float, c_min: float) -> tuple[float, ...]:
    """``c_max, c_max/2, c_max/4, ...`` down to the last value >= ``c_min`` (a coarse c search)."""
    if not (math.isfinite(c_max) and math.isfinite(c_min) and 0 < c_min <= c_max):
        raise ValueError(f"need 0 < c_min <= c_max (finite), got c_min={c_min}, c_max={c_max}")
    steps = int(math.floor(math.log2(c_max / c_min) + 1e-9))
    return tuple(c_max / 2.0**k for k in range(steps + 1))


@torch.no_grad()
def _predict(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return model(x).argmax(dim=1)


@torch.no_grad()
def _margin(model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """logit[target] - max over the other classes; > 0 iff the prediction is ``target`` (no tie)."""
    logits = model(x)
    t = logits.gather(1, target[:, None]).squeeze(1)
    others = logits.scatter(1, target[:, None], float("-inf")).amax(dim=1)
    return t - others


@torch.no_grad()
def _num_classes(model: nn.Module, x: torch.Tensor) -> int:
    """The number of logits of ``model`` on ``x[:1]``, evaluated in eval mode."""
    was_training = model.training
    model.eval()
    try:
        return int(model(x[:1]).shape[1])
    finally:
        model.train(was_training)


def _check_attack_inputs(model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    _check_images(x, "x")
    return _check_labels(target, x.shape[0], "target", _num_classes(model, x)).to(x.device)


def _attack_loss(logits: torch.Tensor, target: torch.Tensor, temperature: float) -> torch.Tensor:
    """Per-example ``loss_f = T * CE(z / T, l)``: the cross-entropy of the logits at temperature T."""
    return temperature * F.cross_entropy(logits / temperature, target, reduction="none")


def _lbfgsb_solve(
    model64: nn.Module,
    x0: torch.Tensor,
    start: torch.Tensor,
    target: torch.Tensor,
    c: torch.Tensor,
    max_iter: int,
    memory: int,
    temperature: float,
) -> torch.Tensor:
    """One L-BFGS-B problem: min over x' in [0,1]^(N*m) of sum_i c_i |x'_i - x0_i|^2 + loss_f(x'_i, t_i).

    The N per-example problems are independent, so their sum is minimised by minimising each;
    one L-BFGS-B run over the concatenated variables solves them together, with every
    objective and gradient evaluation one torch forward/backward of the whole batch.
    """
    shape, device, dtype = x0.shape, x0.device, next(model64.parameters()).dtype
    x0 = x0.to(dtype)
    c = c.to(device, dtype)

    def objective(z: np.ndarray) -> tuple[float, np.ndarray]:
        xp = torch.from_numpy(z).to(device, dtype).view(shape).requires_grad_(True)
        sq = (xp - x0).pow(2).flatten(1).sum(dim=1)
        value = _attack_loss(model64(xp), target, temperature).sum() + (c * sq).sum()
        (grad,) = torch.autograd.grad(value, xp)
        return float(value.detach()), grad.detach().to("cpu", torch.float64).numpy().ravel()

    z0 = start.detach().to("cpu", torch.float64).numpy().ravel().clip(0.0, 1.0)
    n = z0.size
    res = minimize(
        objective,
        z0,
        jac=True,
        method="L-BFGS-B",
        bounds=Bounds(np.zeros(n), np.ones(n)),
        # The iteration budget, not the tolerances, ends a solve: the tolerances are for the
        # *sum* over the batch, so loose ones would stop easy examples' partners early.
        options={
            "maxiter": int(max_iter),
            "maxfun": 2 * int(max_iter) + 20,
            "maxcor": int(memory),
            "ftol": 1e-15,
            "gtol": 1e-12,
        },
    )
    return torch.from_numpy(res.x).view(shape).to(start.device, start.dtype).clamp_(0, 1)


def minimal_adversarial_lbfgs(
    model: nn.Module,
    x: torch.Tensor,
    target: torch.Tensor,
    c_grid: Sequence[float] = DEFAULT_C_GRID,
    max_iter: int = 100,
    bisection_steps: int = 8,
    refine_steps: int = 20,
    batch_size: int = 512,
    memory: int = 10,
    dtype: torch.dtype = torch.float64,
    boundary_margin: float = 1e-4,
    temperature: float = 0.03,
) -> AdversarialResult:
    """Minimal targeted adversarial examples by box-constrained L-BFGS (Szegedy et al. 2013, Sec. 4.1).

    For an image x (pixels in [0, 1]^m) and a target label l, the paper minimises
    ``c |r| + loss_f(x + r, l)`` subject to ``x + r in [0, 1]^m``, with a line search over c
    for the smallest distortion whose minimiser is classified as l; ``loss_f`` is only
    required to be "a continuous loss function associated with the classifier". We minimise

        c * |r|_2^2 + loss_f(x + r, l)    subject to  0 <= x + r <= 1,

    the *squared* L2 norm, as later implementations of the method do: it is smooth at r = 0,
    so L-BFGS-B needs no special care there, and it changes only the parametrisation of the
    trade-off, not its points (a stationary point of ``c |r| + loss_f`` with r != 0 is one of
    ``c' |r|^2 + loss_f`` with ``c' = c / (2 |r|)``), so the search over c reaches the same
    examples. The box is exact: scipy's L-BFGS-B (Byrd et al. 1995) with bounds [0, 1] on
    every pixel.

    ``loss_f`` is the cross-entropy of the model's logits z at a temperature T
    (``temperature``): ``loss_f(x', l) = T * CE(z(x') / T, l)``. T = 1 is the classifier's
    own loss. CE equals ``softplus(logsumexp_{j != l} z_j - z_l)``, a *soft* maximum over all
    other classes, so at T = 1 the minimiser also pushes down every class that has some
    probability and is not the point of the target region closest to x; as T -> 0 the loss
    tends to the hinge ``max(0, max_{j != l} z_j - z_l)``, whose penalised minimiser *is*
    that closest point for small enough c. The default T = 0.03 keeps the objective smooth
    (what L-BFGS needs) and the answer minimal in practice. Measured on 60 examples of
    softmax regression over 8x8 digits, where the exact minimum is a quadratic program, the
    mean (max) excess over the exact minimum was 2.7% (8.7%) at T = 1, 0.5% (2.1%) at
    T = 0.3, 0.16% (0.7%) at T = 0.1 and 0.05% (0.2%) at T = 0.03; at T = 1 the result was
    above a fine-step iterative gradient attack on 39 of the 60 examples, at T <= 0.3 on
    none. The hinge itself (tried) is not smooth: L-BFGS stalls at its kinks, and on
    FC100-100-10 over MNIST 1 to 2 of 100 examples came out far (up to 0.02 RMS) above the
    gradient attack; at T = 0.1, 0.03 and 0.01 none did (mean RMS 0.047, the gradient
    attack's 0.051).

    Batching: the per-example problems are independent, so the problem of a batch is one
    L-BFGS-B run over the concatenation of all its examples' pixels whose objective is the
    sum of the per-example objectives (each with its own c). Its minimiser is the tuple of
    per-example minimisers; the gradient of the whole batch is one torch forward/backward (on
    the model's device, in ``dtype``: float64 by default, on a copy of the model, so that the
    line searches are not limited by float32 rounding). The price of batching is that the
    L-BFGS curvature memory and line search are shared by the batch (on the digits the
    batched and one-example-at-a-time answers agreed to 1e-7 in RMS distortion).

    Search over c, per example (larger c = smaller perturbation):

    1. coarse: c runs down ``c_grid`` (default 64, 32, ..., 2^-12: halving); each example
       stops at its first c whose solution the model classifies as l. Every solve is
       warm-started from the example's previous solution.
    2. bisection: ``bisection_steps`` geometric bisections of c between the last failing
       and the first succeeding c (doubling c when the first grid value already succeeded),
       warm-started from the best success.
    3. refinement: ``refine_steps`` bisections of t in [0, 1] on the segment x + t r* of the
       best solution r*, keeping the smallest t still classified as l with a logit margin of
       at least ``boundary_margin`` (the segment stays in the box, which is convex). This
       moves the example onto the decision boundary along its own direction (the minimiser
       lies a little beyond it, where the loss still pulls); ``refine_steps=0`` skips it.

    Among all successful solutions the one with the smallest RMS distortion is kept. The
    model (in its own dtype) decides success on the returned tensor. Examples already
    classified as l are returned unchanged (distortion 0, c = inf).

    Iteration budget: each solve runs at most ``max_iter`` L-BFGS-B iterations (and
    ``2 * max_iter + 20`` objective evaluations), with tolerances too small to stop it
    earlier unless the batch has converged; an example takes part in at most
    ``len(c_grid) + bisection_steps`` solves (defaults: 19 + 8 = 27 solves, at most 2,700
    iterations), plus ``refine_steps`` forward passes. Examples are processed in chunks of
    ``batch_size``. Examples whose target no c of the grid reached are reported in
    ``result.failed`` (``success`` False, distortion NaN).
    """
    target = _check_attack_inputs(model, x, target)
    c_grid = [float(c) for c in c_grid]
    if not c_grid or any(not (math.isfinite(c) and c > 0) for c in c_grid):
        raise ValueError(f"c_grid must be a non-empty sequence of positive finite values, got {c_grid}")
    if any(a <= b for a, b in zip(c_grid[:-1], c_grid[1:])):
        raise ValueError(f"c_grid must be strictly decreasing (from large c, small perturbations), got {c_grid}")
    for name, value in (("max_iter", max_iter), ("batch_size", batch_size), ("memory", memory)):
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    if not (math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature must be a positive number (1 = the model's cross-entropy), got {temperature}")
    if bisection_steps < 0 or refine_steps < 0:
        raise ValueError(f"bisection_steps and refine_steps must be >= 0, got {bisection_steps}, {refine_steps}")
    was_training = model.training
    model.eval()
    try:
        model64 = copy.deepcopy(model).to(dtype).eval().requires_grad_(False)
        parts = [
            _lbfgs_chunk(
                model,
                model64,
                x[s : s + batch_size],
                target[s : s + batch_size],
                c_grid,
                max_iter,
                bisection_steps,
                refine_steps,
                memory,
                boundary_margin,
                temperature,
            )
            for s in range(0, x.shape[0], batch_size)
        ]
    finally:
        model.train(was_training)
    return AdversarialResult(*(torch.cat(items) for items in zip(*parts)))


def _lbfgs_chunk(
    model: nn.Module,
    model64: nn.Module,
    x: torch.Tensor,
    target: torch.Tensor,
    c_grid: list[float],
    max_iter: int,
    bisection_steps: int,
    refine_steps: int,
    memory: int,
    boundary_margin: float,
    temperature: float,
) -> tuple[torch.Tensor, ...]:
    n, device = x.shape[0], x.device
    best = x.clone()
    best_d = torch.full((n,), math.inf, dtype=torch.float64, device=device)
    c_best = torch.full((n,), math.nan, dtype=torch.float64, device=device)
    already = _predict(model, x) == target
    best_d[already] = 0.0
    c_best[already] = math.inf

    def attempt(idx: torch.Tensor, start: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Solve for examples ``idx`` at per-example ``c``; keep improvements; return (solution, ok)."""
        sol = _lbfgsb_solve(model64, x[idx], start, target[idx], c, max_iter, memory, temperature)
        ok = _predict(model, sol) == target[idx]
        d = rms_distortion(sol, x[idx]).double()
        better = ok & (d < best_d[idx])
        best[idx[better]] = sol[better]
        best_d[idx[better]] = d[better]
        c_best[idx[better]] = c.to(c_best)[better]
        return sol, ok

    # 1. coarse search down the grid, warm-started from each example's previous solution
    current = x.clone()
    c_lo = torch.full((n,), math.nan, dtype=torch.float64, device=device)  # largest c that succeeded
    c_hi = torch.full((n,), math.inf, dtype=torch.float64, device=device)  # smallest c that failed above it
    active = ~already
    for c in c_grid:
        idx = torch.nonzero(active).flatten()
        if idx.numel() == 0:
            break
        sol, ok = attempt(idx, current[idx], torch.full((idx.numel(),), c, dtype=torch.float64))
        current[idx] = sol
        c_lo[idx[ok]] = c
        c_hi[idx[~ok]] = c
        active[idx[ok]] = False

    # 2. geometric bisection of c between the last failure and the first success
    found = ~already & torch.isfinite(best_d)
    idx = torch.nonzero(found).flatten()
    for _ in range(bisection_steps if idx.numel() else 0):
        lo, hi = c_lo[idx], c_hi[idx]
        mid = torch.where(torch.isfinite(hi), (lo * hi).sqrt(), lo * 2)
        _, ok = attempt(idx, best[idx], mid.cpu())
        c_lo[idx] = torch.where(ok, mid, lo)
        c_hi[idx] = torch.where(ok, hi, mid)

    # 3. move along the best perturbation to the decision boundary
    if refine_steps and idx.numel():
        x0, delta = x[idx], best[idx] - x[idx]
        shape = (-1,) + (1,) * (x.ndim - 1)
        t_lo = torch.zeros(idx.numel(), dtype=x.dtype, device=device)
        t_hi = torch.ones(idx.numel(), dtype=x.dtype, device=device)
        for _ in range(refine_steps):
            t = (t_lo + t_hi) / 2
            ok = _margin(model, (x0 + t.view(shape) * delta).clamp(0, 1), target[idx]) >= boundary_margin
            t_hi = torch.where(ok, t, t_hi)
            t_lo = torch.where(ok, t_lo, t)
        best[idx] = (x0 + t_hi.view(shape) * delta).clamp(0, 1)

    # Failures: return the last attempt (closest to the target) for inspection.
    failed = ~already & ~found
    best[failed] = current[failed]
    success = _predict(model, best) == target
    distortion = rms_distortion(best, x).double()
    distortion[~success] = math.nan
    c_best[~success] = math.nan
    return best, target, success, distortion, c_best


def minimal_adversarial_any_target(
    model: nn.Module, x: torch.Tensor, labels: torch.Tensor, **kwargs
) -> AdversarialResult:
    """The smallest-distortion L-BFGS adversarial example over all targets ``l != label``.

    Runs :func:`minimal_adversarial_lbfgs` (with ``kwargs``) for every wrong label of every
    example, in one batched call, and keeps per example the successful target with the
    smallest distortion: the "minimum distortion to reach 0% accuracy" of Table 1 is the
    mean of this over the attacked set. ``result.target`` holds the chosen targets.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    _check_images(x, "x")
    num_classes = _num_classes(model, x)
    labels = _check_labels(labels, x.shape[0], "labels", num_classes).to(x.device)
    n, k = x.shape[0], num_classes - 1
    offsets = torch.arange(1, num_classes, device=x.device)
    targets = (labels[:, None] + offsets[None, :]) % num_classes  # (N, K): every wrong label
    res = minimal_adversarial_lbfgs(model, x.repeat_interleave(k, dim=0), targets.flatten(), **kwargs)
    d = torch.where(res.success, res.distortion, torch.full_like(res.distortion, math.inf)).view(n, k)
    pick = d.argmin(dim=1) + torch.arange(n, device=x.device) * k
    return AdversarialResult(
        res.adversarial[pick], res.target[pick], res.success[pick], res.distortion[pick], res.c[pick]
    )


def iterative_gradient_attack(
    model: nn.Module,
    x: torch.Tensor,
    target: torch.Tensor,
    steps: int = 200,
    step_size: float = 0.05,
    norm: Literal["l2", "linf"] = "l2",
) -> AdversarialResult:
    """A simple targeted baseline: iterative gradient descent on the target's cross-entropy.

    ``x' <- clip(x' - a * g / |g|_2, 0, 1)`` (``norm="l2"``: ``a = step_size`` is the L2 length
    of a step over the whole image) or ``x' <- clip(x' - a * sign(g), 0, 1)`` (``norm="linf"``,
    the targeted basic iterative method of Kurakin et al. 2016), ``g`` the gradient of
    ``CE(f(x'), target)``; each example stops as soon as the model classifies it as its target
    (examples already classified so are returned unchanged). At most ``steps`` steps. No
    minimality is sought, so it is an upper bound the L-BFGS attack should not exceed.
    """
    target = _check_attack_inputs(model, x, target)
    if steps < 1 or not step_size > 0:
        raise ValueError(f"steps must be >= 1 and step_size > 0, got {steps}, {step_size}")
    if norm not in ("l2", "linf"):
        raise ValueError(f"norm must be 'l2' or 'linf', got {norm!r}")
    was_training = model.training
    model.eval()
    try:
        adv = x.detach().clone()
        done = _predict(model, adv) == target
        shape = (-1,) + (1,) * (x.ndim - 1)
        for _ in range(steps):
            idx = torch.nonzero(~done).flatten()
            if idx.numel() == 0:
                break
            xi = adv[idx].clone().requires_grad_(True)
            loss = F.cross_entropy(model(xi), target[idx], reduction="sum")
            (g,) = torch.autograd.grad(loss, xi)
            if norm == "l2":
                step = g / g.flatten(1).norm(dim=1).clamp_min(1e-12).view(shape)
            else:
                step = g.sign()
            adv[idx] = (xi.detach() - step_size * step).clamp(0, 1)
            done[idx] = _predict(model, adv[idx]) == target[idx]
        success = _predict(model, adv) == target
    finally:
        model.train(was_training)
    distortion = rms_distortion(adv, x).double()
    distortion[~success] = math.nan
    c = torch.full_like(distortion, math.nan)
    return AdversarialResult(adv, target, success, distortion, c)


# --------------------------------------------------------------------------- controls, transfer


def gaussian_noise_control(x: torch.Tensor, std: float, seed: int) -> torch.Tensor:
    """``clip(x + N(0, std^2), 0, 1)``, the noise rows of Szegedy et al. (2013), Tables 1-3.

    The noise is drawn on the CPU from ``torch.Generator().manual_seed(seed)`` (same values
    on every device), in x's dtype. Clipping makes the realised RMS distortion somewhat
    smaller than ``std``; measure it with :func:`rms_distortion`.
    """
    if not (math.isfinite(std) and std >= 0):
        raise ValueError(f"std must be finite and >= 0, got {std}")
    _check_images(x, "x")
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(int(seed)), dtype=x.dtype)
    return (x + std * noise.to(x.device)).clamp(0, 1)


@dataclass(frozen=True)
class ErrorMatrix:
    """``error[i, j]``: error rate of example set ``rows[i]`` fed to model ``columns[j]``."""

    rows: tuple[str, ...]
    columns: tuple[str, ...]
    error: np.ndarray  # (len(rows), len(columns)), float64 in [0, 1]

    def frame(self, distortion: Mapping[str, float], sizes: Mapping[str, int]):
        """A pandas DataFrame: columns ``examples``, ``distortion``, ``n``, then one per model."""
        import pandas as pd

        table = pd.DataFrame(
            {"examples": list(self.rows), "distortion": [distortion[r] for r in self.rows], "n": [sizes[r] for r in self.rows]}
        )
        return pd.concat([table, pd.DataFrame(self.error, columns=list(self.columns))], axis=1)

    def as_dict(self) -> dict[str, dict[str, float]]:
        """``{row: {column: error}}``."""
        return {r: {c: float(self.error[i, j]) for j, c in enumerate(self.columns)} for i, r in enumerate(self.rows)}


@torch.no_grad()
def cross_model_error_matrix(
    models: Mapping[str, nn.Module],
    examples_by_model: Mapping[str, torch.Tensor],
    labels: torch.Tensor | Mapping[str, torch.Tensor],
    batch_size: int = 1000,
) -> ErrorMatrix:
    """Cross-model generalisation of adversarial examples (Szegedy et al. 2013, Tables 1-3).

    ``examples_by_model`` maps a row name to an example set: the adversarial examples made
    for a model (named like it), or any other set such as Gaussian-noise controls or
    rescaled examples. Entry ``(i, j)`` is the fraction of set i that model j does *not*
    classify as the true label, ``mean(argmax f_j(x) != y)``. ``labels`` are the true labels,
    one tensor for every set or a mapping from row name to labels. Rows and columns keep
    the mappings' order. Models are evaluated in eval mode, in chunks of ``batch_size``.
    """
    if not models or not examples_by_model:
        raise ValueError("models and examples_by_model must each hold at least one entry")
    error = np.zeros((len(examples_by_model), len(models)))
    for i, (row, xs) in enumerate(examples_by_model.items()):
        if isinstance(labels, Mapping) and row not in labels:
            raise ValueError(f"labels has no entry for example set {row!r}; it has {sorted(labels)}")
        y = labels[row] if isinstance(labels, Mapping) else labels
        y = _check_labels(y, xs.shape[0], f"labels of {row!r}").to(xs.device)
        for j, model in enumerate(models.values()):
            error[i, j] = error_rate(model, xs, y, batch_size)
    return ErrorMatrix(tuple(examples_by_model), tuple(models), error)


# --------------------------------------------------------------------------- units (Sec. 3)


def random_directions(dim: int, count: int, seed: int) -> np.ndarray:
    """``count`` random unit vectors in R^dim (normalised Gaussians), ``(count, dim)`` float64."""
    if dim < 1 or count < 1:
        raise ValueError(f"dim and count must be >= 1, got {dim}, {count}")
    v = np.random.default_rng(int(seed)).standard_normal((count, dim))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def top_activating_images(
    activations: torch.Tensor | np.ndarray, direction: int | Sequence[float] | np.ndarray, k: int = 8
) -> np.ndarray:
    """Indices of the k images maximising ``<phi(x), v>`` (Szegedy et al. 2013, Sec. 3).

    ``activations`` is ``phi(x)`` of a hidden layer for N images, ``(N, D)``. ``direction``
    is a unit index i (the natural basis vector e_i: the paper's "unit" inspection) or a
    vector v of length D (a random direction; its scale does not change the ranking).
    Returns k int64 indices, the highest projection first (ties: lower index first).
    """
    a = (
        activations.detach().cpu().double().numpy()
        if isinstance(activations, torch.Tensor)
        else np.asarray(activations, dtype=np.float64)
    )
    if a.ndim != 2 or a.shape[0] == 0:
        raise ValueError(f"activations must have shape (N, D) with N >= 1, got {a.shape}")
    if isinstance(direction, (int, np.integer)) and not isinstance(direction, bool):
        if not 0 <= direction < a.shape[1]:
            raise ValueError(f"unit index must be in [0, {a.shape[1]}), got {direction}")
        scores = a[:, int(direction)]
    else:
        v = np.asarray(direction, dtype=np.float64)
        if v.shape != (a.shape[1],) or not np.all(np.isfinite(v)) or not np.any(v):
            raise ValueError(
                f"direction must be a unit index or a finite non-zero vector of length {a.shape[1]}, got shape {v.shape}"
            )
        scores = a @ v
    if not 1 <= k <= a.shape[0]:
        raise ValueError(f"k must be in [1, {a.shape[0]}] (the number of images), got {k}")
    return np.argsort(-scores, kind="stable")[:k].astype(np.int64)
