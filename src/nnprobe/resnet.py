"""The CIFAR variant of ResNet-18 and a fast single-model training recipe for it.

Architecture (He et al. 2016, "Deep Residual Learning for Image Recognition", with the CIFAR
stem used by most CIFAR-10 reproductions, e.g. kuangliu/pytorch-cifar): a 3x3 stride-1
convolution stem without max-pool, four stages of two BasicBlocks with ``width, 2w, 4w, 8w``
channels (strides 1, 2, 2, 2, projection shortcuts where the shape changes), global average
pooling and one linear layer. ``width=64`` is ResNet-18 (11,173,962 parameters for 3 input
channels and 10 classes); a smaller width makes the same network narrow for CPU demos.

Training recipe (:func:`train_resnet`): SGD with Nesterov momentum, a one-cycle learning-rate
schedule (linear warm-up, linear decay to zero; Smith & Topin 2019), optional label smoothing
(Szegedy et al. 2016), weight decay on convolution and linear weights only, bf16 autocast on
CUDA, channels-last memory on CUDA. The training images live on the device as uint8; augmentation
(random crop of the 4-pixel zero-padded image, horizontal flip) is done on the device from
offsets drawn on the host from the run's own generator, so there is no DataLoader in the hot
loop and a run is determined by its seed.

This module imports nothing from nnprobe (and nothing but torch, numpy and tqdm).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

__all__ = [
    "BasicBlock",
    "CifarResNet",
    "resnet18_cifar",
    "TrainConfig",
    "one_cycle",
    "augment_batch",
    "normalize",
    "train_resnet",
    "embed",
    "accuracy",
]


class BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN plus shortcut, then ReLU (He et al. 2016, Fig. 2)."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:  # projection shortcut (option B)
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """ResNet with a 3x3 stem and no max-pool; ``features`` is the pooled penultimate vector."""

    def __init__(self, blocks: Sequence[int] = (2, 2, 2, 2), width: int = 64, in_channels: int = 3,
                 num_classes: int = 10) -> None:
        super().__init__()
        if width < 1 or num_classes < 2 or in_channels < 1:
            raise ValueError(
                f"CifarResNet needs width >= 1, num_classes >= 2 and in_channels >= 1; got width={width}, "
                f"num_classes={num_classes}, in_channels={in_channels}"
            )
        self.conv1 = nn.Conv2d(in_channels, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        stages, in_planes = [], width
        for i, n in enumerate(blocks):
            planes = width * 2**i
            layers = []
            for j in range(n):
                layers.append(BasicBlock(in_planes, planes, stride=2 if (i > 0 and j == 0) else 1))
                in_planes = planes
            stages.append(nn.Sequential(*layers))
        self.layers = nn.Sequential(*stages)
        self.feature_dim = in_planes
        self.fc = nn.Linear(in_planes, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The ``8 * width``-d vector after global average pooling (the input of ``fc``)."""
        h = F.relu(self.bn1(self.conv1(x)))
        h = self.layers(h)
        return F.adaptive_avg_pool2d(h, 1).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


def resnet18_cifar(num_classes: int = 10, in_channels: int = 3, width: int = 64, seed: int | None = None) -> CifarResNet:
    """ResNet-18 for 32x32 inputs (He et al. 2016; CIFAR stem: 3x3 conv, stride 1, no max-pool).

    PyTorch's default initialisation (Kaiming-uniform convolutions, BN weight 1 bias 0),
    drawn from ``torch.manual_seed(seed)`` inside a forked RNG when ``seed`` is given, so the
    global RNG state is untouched and the same seed gives the same network.
    """
    if seed is None:
        return CifarResNet((2, 2, 2, 2), width, in_channels, num_classes)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        return CifarResNet((2, 2, 2, 2), width, in_channels, num_classes)


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of :func:`train_resnet` (the config's ``noise.train`` keys)."""

    epochs: int = 45
    batch_size: int = 512
    lr: float = 0.2
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    label_smoothing: float = 0.1
    warmup_fraction: float = 0.25
    crop_padding: int = 4
    flip: bool = True
    bf16: bool = True
    channels_last: bool = True
    compile: bool = False
    progress: bool = True


def one_cycle(step: int, total: int, warmup_fraction: float) -> float:
    """Learning-rate factor of a linear one-cycle schedule: 0 -> 1 over the warm-up, 1 -> 0 after.

    Smith & Topin 2019 ("Super-convergence"); the factor at step ``s`` is ``s / w`` for ``s < w``
    and ``(total - s) / (total - w)`` afterwards, with ``w = warmup_fraction * total``.
    """
    warm = max(1.0, warmup_fraction * total)
    if step < warm:
        return (step + 1) / warm
    return max(0.0, (total - step) / max(1.0, total - warm))


def normalize(images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """``(x - mean) / std`` per channel in float32; uint8 images are scaled by 1/255 first.

    Float images are taken to be on the same [0, 1] scale (that is how the noise probe sets
    are generated, unclipped).
    """
    x = images.float()
    if images.dtype == torch.uint8:
        x = x / 255.0
    return (x - mean.float().view(1, -1, 1, 1)) / std.float().view(1, -1, 1, 1)


def augment_batch(padded: torch.Tensor, idx: torch.Tensor, offsets: torch.Tensor, flips: torch.Tensor,
                  size: tuple[int, int]) -> torch.Tensor:
    """Random crops and flips of ``padded[idx]`` on its device, by advanced indexing.

    ``padded`` is ``(N, C, H + 2p, W + 2p)``; ``offsets`` ``(B, 2)`` holds each image's top-left
    corner in ``[0, 2p]`` and ``flips`` ``(B,)`` whether to mirror it left-right. Equals
    ``torchvision.transforms.RandomCrop(size, padding=p)`` followed by ``RandomHorizontalFlip``
    given the same draws.
    """
    h, w = size
    rows = offsets[:, 0:1] + torch.arange(h, device=padded.device)  # (B, H)
    cols = offsets[:, 1:2] + torch.arange(w, device=padded.device)  # (B, W)
    cols = torch.where(flips[:, None], cols.flip(1), cols)
    batch = padded[idx]  # (B, C, H+2p, W+2p)
    b, c = batch.shape[:2]
    return batch[
        torch.arange(b, device=padded.device)[:, None, None, None],
        torch.arange(c, device=padded.device)[None, :, None, None],
        rows[:, None, :, None],
        cols[:, None, None, :],
    ]


def _param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on convolution and linear weights; none on BatchNorm parameters and biases."""
    decay, no_decay = [], []
    for p in model.parameters():
        (decay if p.ndim > 1 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def train_resnet(
    model: nn.Module,
    images_u8: torch.Tensor | np.ndarray,
    labels: torch.Tensor | np.ndarray,
    mean: Sequence[float],
    std: Sequence[float],
    config: TrainConfig,
    seed: int,
    device: torch.device | str = "cpu",
    max_steps: int | None = None,
    log: Callable[[str], None] | None = None,
) -> list[dict]:
    """Train ``model`` in place on ``device``; return one record per epoch (loss, accuracy, lr, seconds).

    The data order and the augmentation draws come from ``torch.Generator().manual_seed(seed)``
    on the host (the same on every device); the last incomplete batch of an epoch is dropped
    (fixed shapes for torch.compile, no BatchNorm batch of one). ``max_steps`` stops early
    (for tests). Seconds are wall-clock time of the epoch, synchronised with the device.
    """
    device = torch.device(device)
    images = torch.as_tensor(images_u8)
    if images.dtype != torch.uint8 or images.ndim != 4:
        raise ValueError(f"train_resnet needs uint8 images (N, C, H, W), got {images.dtype} {tuple(images.shape)}")
    labels = torch.as_tensor(labels).long().to(device)
    n, _, h, w = images.shape
    p = config.crop_padding
    padded = F.pad(images.to(device), (p, p, p, p))  # zero padding, as RandomCrop(padding=p)
    mean_t = torch.as_tensor(mean, dtype=torch.float32, device=device)
    std_t = torch.as_tensor(std, dtype=torch.float32, device=device)
    batch_size = min(config.batch_size, n)
    steps_per_epoch = n // batch_size
    total = config.epochs * steps_per_epoch
    model.to(device)
    # channels-last only on CUDA: on the CPU (torch 2.14) it was slower and not run-to-run deterministic
    memory_format = torch.channels_last if config.channels_last and device.type == "cuda" else torch.contiguous_format
    model.to(memory_format=memory_format)
    optimizer = torch.optim.SGD(_param_groups(model, config.weight_decay), lr=config.lr, momentum=config.momentum,
                                nesterov=config.nesterov)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: one_cycle(s, total, config.warmup_fraction))
    autocast = config.bf16 and device.type == "cuda"
    forward = torch.compile(model) if config.compile else model
    generator = torch.Generator().manual_seed(int(seed))
    history: list[dict] = []
    step = 0
    model.train()
    for epoch in range(config.epochs):
        started = time.perf_counter()
        perm = torch.randperm(n, generator=generator)[: steps_per_epoch * batch_size]
        offsets = torch.randint(0, 2 * p + 1, (perm.numel(), 2), generator=generator)
        flips = torch.rand(perm.numel(), generator=generator) < (0.5 if config.flip else 0.0)
        perm, offsets, flips = perm.to(device), offsets.to(device), flips.to(device)
        losses, correct = [], []
        batches = range(steps_per_epoch)
        if config.progress:
            from tqdm.auto import tqdm

            batches = tqdm(batches, desc=f"epoch {epoch + 1}/{config.epochs}", mininterval=5)
        for b in batches:
            if max_steps is not None and step >= max_steps:
                break
            sl = slice(b * batch_size, (b + 1) * batch_size)
            x = augment_batch(padded, perm[sl], offsets[sl], flips[sl], (h, w))
            x = normalize(x, mean_t, std_t).contiguous(memory_format=memory_format)
            y = labels[perm[sl]]
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
                logits = forward(x)
                loss = F.cross_entropy(logits.float(), y, label_smoothing=config.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            step += 1
            losses.append(loss.detach())
            correct.append((logits.argmax(1) == y).sum())
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - started
        if losses:
            record = {
                "epoch": epoch + 1,
                "loss": float(torch.stack(losses).mean()),
                "train_accuracy": float(torch.stack(correct).sum()) / (len(correct) * batch_size),
                "lr": optimizer.param_groups[0]["lr"],
                "seconds": seconds,
            }
            history.append(record)
            if log is not None:
                log(f"epoch {record['epoch']}: loss {record['loss']:.4f}, train accuracy "
                    f"{record['train_accuracy']:.4f}, {seconds:.1f} s")
        if max_steps is not None and step >= max_steps:
            break
    model.eval()
    return history


@torch.no_grad()
def embed(
    features: Callable[[torch.Tensor], torch.Tensor],
    head: nn.Linear,
    images: torch.Tensor | np.ndarray,
    mean: Sequence[float],
    std: Sequence[float],
    device: torch.device | str = "cpu",
    batch_size: int = 1000,
    bf16: bool = False,
    channels_last: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Penultimate features ``phi(x)`` and logits ``W phi(x) + b`` of every image, float32 on the CPU.

    ``features`` maps a normalised batch to the penultimate vectors (``CifarResNet.features``,
    ``KerasCNN.penultimate``) and ``head`` is the last linear layer. The head is applied in
    float32 to the float32 features, so ``logits == features @ W.T + b`` holds to rounding
    (the bias split of the noise study relies on it). ``images`` are uint8 or float on the
    [0, 1] scale. The modules must already be on ``device`` and in eval mode.
    """
    device = torch.device(device)
    images = torch.as_tensor(images)
    mean_t = torch.as_tensor(mean, dtype=torch.float32, device=device)
    std_t = torch.as_tensor(std, dtype=torch.float32, device=device)
    memory_format = torch.channels_last if channels_last and device.type == "cuda" else torch.contiguous_format
    feats, logits = [], []
    for start in range(0, images.shape[0], batch_size):
        x = normalize(images[start : start + batch_size].to(device), mean_t, std_t).contiguous(memory_format=memory_format)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16 and device.type == "cuda"):
            phi = features(x)
        phi = phi.float()
        feats.append(phi.cpu())
        logits.append(F.linear(phi, head.weight.float(), head.bias.float()).cpu())
    return torch.cat(logits), torch.cat(feats)


def accuracy(logits: torch.Tensor, labels: torch.Tensor | np.ndarray) -> float:
    """Fraction of rows whose argmax is the label."""
    return float((logits.argmax(1) == torch.as_tensor(labels)).float().mean())


def _main(argv: Sequence[str] | None = None) -> None:
    """``python -m nnprobe.resnet --data results/data --epochs 45 --seed 0``: one timed training run."""
    import argparse

    parser = argparse.ArgumentParser(description="Train the CIFAR ResNet-18 once on prepared splits and time it.")
    parser.add_argument("--data", required=True, help="folder with train.npz and test.npz (rule prepare_dataset)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--width", type=int, default=64)
    defaults = TrainConfig()
    for key in ("epochs", "batch_size", "lr", "weight_decay", "label_smoothing", "warmup_fraction"):
        parser.add_argument(f"--{key.replace('_', '-')}", type=type(getattr(defaults, key)), default=getattr(defaults, key))
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--fp32", action="store_true", help="no bf16 autocast")
    args = parser.parse_args(argv)
    splits = {}
    for name in ("train", "test"):
        with np.load(f"{args.data}/{name}.npz", allow_pickle=False) as npz:
            splits[name] = (npz["images"], npz["labels"], npz["classes"])
    images, labels, classes = splits["train"]
    x = images.astype(np.float64) / 255.0
    mean, std = x.mean(axis=(0, 2, 3)), x.std(axis=(0, 2, 3))
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay,
                         label_smoothing=args.label_smoothing, warmup_fraction=args.warmup_fraction,
                         compile=args.compile, bf16=not args.fp32, progress=False)
    model = resnet18_cifar(len(classes), images.shape[1], args.width, seed=args.seed)
    started = time.perf_counter()
    train_resnet(model, images, labels, mean, std, config, args.seed, device, log=print)
    seconds = time.perf_counter() - started
    test_images, test_labels, _ = splits["test"]
    logits, _ = embed(model.features, model.fc, test_images, mean, std, device, bf16=config.bf16,
                      channels_last=config.channels_last)
    print(f"seed {args.seed}: test accuracy {accuracy(logits, test_labels):.4f}, training {seconds:.1f} s on {device} "
          f"({args.epochs} epochs, batch {args.batch_size}, lr {args.lr})")


if __name__ == "__main__":
    _main()
