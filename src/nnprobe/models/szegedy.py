"""The MNIST networks of Szegedy et al. (2013), "Intriguing properties of neural networks".

Softmax regression (FC10), fully connected sigmoid networks (FC100-100-10, FC200-200-10,
FC123-456-10) and a softmax classifier on a one-hidden-layer sigmoid autoencoder (AE400-10),
each a plain ``nn.Module`` taking pixels in ``[0, 1]`` of any shape ``(N, ...)`` (they flatten),
with ``hidden(x)``: the activations of every hidden layer, for the paper's unit inspection.
The paper's weight decay and training live in :mod:`nnprobe.studies.adversarial`.

Reference: C. Szegedy, W. Zaremba, I. Sutskever, J. Bruna, D. Erhan, I. Goodfellow,
R. Fergus. Intriguing properties of neural networks. arXiv:1312.6199 (ICLR 2014).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .init import glorot_init_

__all__ = ["SoftmaxRegression", "SigmoidMLP", "AutoencoderClassifier", "fc10", "fc_sigmoid", "ae400_10"]


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
    for the dropout arm of the adversarial-training comparison (Sec. 4.2).
    """
    return glorot_init_(SigmoidMLP(hidden, num_inputs, num_classes, input_dropout, dropout), generator)


def ae400_10(
    code: int = 400,
    num_inputs: int = 784,
    num_classes: int = 10,
    generator: torch.Generator | None = None,
) -> AutoencoderClassifier:
    """AE400-10 of Szegedy et al. (2013), Table 1: a softmax classifier on a 400-unit sparse autoencoder.

    Encoder 784 -> 400 (sigmoid), decoder 400 -> 784 (sigmoid, for pre-training only),
    classifier 400 -> 10 (softmax); weight decay lambda = 1e-6. The paper's model is "a single
    layer sparse autoencoder with sigmoid activations and 400 nodes with a Softmax classifier",
    trained "until it got very high quality first layer filters", and "this layer was not
    fine-tuned" (the description of the experiments of Table 1). We train it in two stages
    (:func:`nnprobe.studies.adversarial.training.train_zoo_model`): (1) the autoencoder alone,
    with the KL sparsity penalty of Ng's sparse autoencoder
    (:class:`~nnprobe.studies.adversarial.training.AutoencoderTask`), (2) the softmax on the
    *frozen* code. Fine-tuning the encoder in stage (2) is a named deviation
    (``finetune=True``). The adversarial examples attack the composed classifier (encoder then
    softmax); the decoder plays no part in them. 784*400+400 + 400*784+784 + 400*10+10 =
    631,594 parameters, 318,010 of them on the classification path.
    """
    return glorot_init_(AutoencoderClassifier(code, num_inputs, num_classes), generator)
