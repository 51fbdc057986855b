"""Feature visualization: what does a class, a unit or a layer respond to?

Three optimisations in input space, each batched (every class, layer or image of a model in one
run of the optimiser):

* :func:`activation_maximization`: images that maximise a class logit (Erhan, Bengio,
  Courville & Vincent 2009; Simonyan, Vedaldi & Zisserman 2014), one per (class, seed).
* :func:`caricature`: start from a real image and amplify what a layer, a channel or one unit
  already sees in it ("deep dream", Mordvintsev, Olah & Tyka 2015; caricatures, Mahendran &
  Vedaldi 2016).
* :func:`invert`: an image whose representation at a layer matches that of a real image,
  under an alpha-norm and a total-variation prior (Mahendran & Vedaldi 2015, "Understanding
  Deep Image Representations by Inverting Them"):
  ``||phi(x) - phi(x0)||^2 / ||phi(x0)||^2 + a * N_alpha(x) + b * TV_beta(x)``.

Natural-image regularisers, each switchable (:class:`Regularizers`): random jitter, scale and
rotation of the image before every step (transformation robustness, Olah, Mordvintsev &
Schubert 2017, "Feature Visualization", Distill), periodic Gaussian blur (Yosinski, Clune,
Nguyen, Fuchs & Lipson 2015), a total-variation penalty, and the image parameterised in a
decorrelated space: a scaled Fourier basis (spectrum scaled by ``1/f``) and colours
decorrelated by the square root of the data's colour covariance (Olah et al. 2017). A sigmoid
keeps every image in ``[0, 1]``.

Models take images in ``[0, 1]`` (see :class:`nnprobe.models.topdown.Normalized`); a layer's
representation is the ReLU of the named module's output (a no-op for modules that end in a
ReLU).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

__all__ = [
    "Regularizers",
    "ImageParam",
    "colour_matrix",
    "fourier_scale",
    "total_variation",
    "alpha_norm",
    "gaussian_blur",
    "random_transform",
    "capture",
    "optimize_images",
    "activation_maximization",
    "caricature",
    "invert",
    "layer_objective",
]


@dataclass(frozen=True)
class Regularizers:
    """Switchable natural-image priors; a zero turns one off.

    ``jitter`` pixels of random translation, ``scale`` maximal relative zoom (0.1: factors in
    [0.9, 1.1]), ``rotate`` maximal rotation in degrees, ``blur_sigma`` of a Gaussian blur applied to
    the image every ``blur_every`` steps, ``tv`` weight of the total-variation penalty,
    ``fourier`` and ``decorrelate`` choose the parameterisation.
    """

    jitter: int = 1
    scale: float = 0.05
    rotate: float = 5.0
    blur_sigma: float = 0.0
    blur_every: int = 4
    tv: float = 0.0
    fourier: bool = True
    decorrelate: bool = True


# --------------------------------------------------------------------------- parameterization


def colour_matrix(images_u8: np.ndarray) -> np.ndarray:
    """``C x C`` square root of the pixel colour covariance, ``U sqrt(S)``, scaled so that its
    largest column norm is 1 (Olah et al. 2017 use ImageNet's; here it comes from the data).

    Decorrelated colours ``z`` give colours ``M z`` with the data's correlations. For one channel
    it is ``[[1]]``.
    """
    c = images_u8.shape[1]
    if c == 1:
        return np.ones((1, 1))
    sample = images_u8[: 2000].transpose(1, 0, 2, 3).reshape(c, -1).astype(np.float64) / 255.0
    cov = np.cov(sample)
    u, s, _ = np.linalg.svd(cov)
    m = u * np.sqrt(s)
    return m / np.linalg.norm(m, axis=0).max()


def fourier_scale(height: int, width: int, decay: float = 1.0) -> torch.Tensor:
    """``1 / max(f, 1 / max(H, W)) ** decay`` on ``rfft2``'s frequency grid ``(H, W // 2 + 1)``:
    a white spectrum in these coordinates is an image with natural ``1/f`` statistics."""
    fy = torch.fft.fftfreq(height).view(-1, 1)
    fx = torch.fft.rfftfreq(width).view(1, -1)
    freq = torch.sqrt(fy**2 + fx**2)
    return 1.0 / freq.clamp_min(1.0 / max(height, width)) ** decay


class ImageParam(nn.Module):
    """A batch of images ``(N, C, H, W)`` in ``[0, 1]`` as a differentiable function of ``raw``.

    ``image = sigmoid(M @ y)`` per pixel, with ``M`` the colour matrix (identity unless
    ``decorrelate``) and ``y`` either ``raw`` itself (pixel basis) or
    ``irfft2(raw * fourier_scale)`` (``fourier``: ``raw`` is the real and imaginary parts of a
    scaled spectrum). :meth:`from_images` inverts this map, so an optimisation can start from
    real images in either basis.
    """

    def __init__(self, shape: Sequence[int], *, fourier: bool, colour: np.ndarray | None, device: torch.device | str = "cpu",
                 generator: torch.Generator | None = None, init_std: float = 0.01) -> None:
        super().__init__()
        n, c, h, w = shape
        self.shape = (n, c, h, w)
        self.fourier = fourier
        matrix = torch.eye(c) if colour is None else torch.as_tensor(colour, dtype=torch.float32)
        if matrix.shape != (c, c):
            raise ValueError(f"colour matrix must be {c}x{c} for {c}-channel images, got {tuple(matrix.shape)}")
        self.register_buffer("colour", matrix.to(device))
        self.register_buffer("scale", fourier_scale(h, w).to(device))
        raw_shape = (n, c, h, w // 2 + 1, 2) if fourier else (n, c, h, w)
        noise = torch.randn(raw_shape, generator=generator, device=device)
        self.raw = nn.Parameter(noise * init_std)

    def decorrelated(self) -> torch.Tensor:
        """The pre-colour, pre-sigmoid image ``y``."""
        if not self.fourier:
            return self.raw
        spectrum = torch.view_as_complex(self.raw.contiguous()) * self.scale
        return torch.fft.irfft2(spectrum, s=self.shape[-2:], norm="ortho")

    def forward(self) -> torch.Tensor:
        y = self.decorrelated()
        return torch.sigmoid(torch.einsum("ij,njhw->nihw", self.colour, y))

    @torch.no_grad()
    def from_images(self, images: torch.Tensor, eps: float = 1e-3) -> "ImageParam":
        """Set ``raw`` so that ``self()`` returns ``images`` (clamped to ``[eps, 1 - eps]``)."""
        if tuple(images.shape) != self.shape:
            raise ValueError(f"images of shape {tuple(images.shape)} do not fit a parameter of shape {self.shape}")
        logits = torch.logit(images.clamp(eps, 1 - eps))
        y = torch.einsum("ij,njhw->nihw", torch.linalg.inv(self.colour), logits)
        if self.fourier:
            spectrum = torch.fft.rfft2(y, norm="ortho") / self.scale
            self.raw.copy_(torch.view_as_real(spectrum))
        else:
            self.raw.copy_(y)
        return self

    @torch.no_grad()
    def blur_(self, sigma: float) -> None:
        """Gaussian-blur the decorrelated image in place (Yosinski et al. 2015): a convolution in
        the pixel basis, a multiplication by ``exp(-2 pi^2 sigma^2 f^2)`` in the Fourier basis."""
        if sigma <= 0:
            return
        if self.fourier:
            h, w = self.shape[-2:]
            fy = torch.fft.fftfreq(h, device=self.raw.device).view(-1, 1)
            fx = torch.fft.rfftfreq(w, device=self.raw.device).view(1, -1)
            self.raw.mul_(torch.exp(-2 * math.pi**2 * sigma**2 * (fy**2 + fx**2)).unsqueeze(-1))
        else:
            self.raw.copy_(gaussian_blur(self.raw, sigma))


# --------------------------------------------------------------------------- priors and transforms


def total_variation(x: torch.Tensor, beta: float = 2.0) -> torch.Tensor:
    """Mean over images of ``sum_ij ((x[i, j+1] - x[i, j])^2 + (x[i+1, j] - x[i, j])^2)^(beta / 2)``
    divided by the number of pixels (Mahendran & Vedaldi 2015, Eq. 4). Zero for a constant image."""
    dx = x[..., :-1, 1:] - x[..., :-1, :-1]
    dy = x[..., 1:, :-1] - x[..., :-1, :-1]
    tv = (dx**2 + dy**2 + 1e-12).pow(beta / 2) if beta != 2 else dx**2 + dy**2
    return tv.flatten(1).sum(1).mean() / (x.shape[-1] * x.shape[-2])


def alpha_norm(x: torch.Tensor, alpha: float = 6.0, centre: float = 0.5) -> torch.Tensor:
    """Mean over images and pixels of ``|x - centre|^alpha`` (Mahendran & Vedaldi 2015, Eq. 3),
    a prior that keeps pixel values in a bounded range."""
    return (x - centre).abs().pow(alpha).flatten(1).mean(1).mean()


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of ``(N, C, H, W)`` images (kernel radius ``ceil(2 sigma)``, reflect padding)."""
    if sigma <= 0:
        return x
    radius = max(1, math.ceil(2 * sigma))
    radius = min(radius, x.shape[-1] - 1, x.shape[-2] - 1)
    t = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    kernel = torch.exp(-(t**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    c = x.shape[1]
    h = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode="reflect"), kernel.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    return F.conv2d(F.pad(h, (0, 0, radius, radius), mode="reflect"), kernel.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


def random_transform(x: torch.Tensor, jitter: int, scale: float, rotate: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Each image shifted by up to ``jitter`` pixels, zoomed by a factor in ``[1 - scale, 1 + scale]``
    and rotated by up to ``rotate`` degrees, drawn independently per image; one differentiable
    ``grid_sample`` with reflection padding (transformation robustness, Olah et al. 2017)."""
    if jitter == 0 and scale == 0 and rotate == 0:
        return x
    n, _, h, w = x.shape

    def uniform(low: float, high: float) -> torch.Tensor:
        return low + (high - low) * torch.rand(n, generator=generator, device=x.device)

    angle = uniform(-rotate, rotate) * math.pi / 180
    zoom = uniform(1 - scale, 1 + scale)
    tx, ty = uniform(-jitter, jitter) * 2 / w, uniform(-jitter, jitter) * 2 / h
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


# --------------------------------------------------------------------------- hooks


@contextlib.contextmanager
def capture(model: nn.Module, layers: Sequence[str]) -> Iterator[dict[str, torch.Tensor]]:
    """Record ``relu(output)`` of each named submodule (``model.get_submodule(name)``) while inside the block."""
    store: dict[str, torch.Tensor] = {}
    handles = []
    for name in layers:
        try:
            module = model.get_submodule(name)
        except AttributeError:
            names = [n for n, _ in model.named_modules() if n]
            raise ValueError(f"layer {name!r} is not a submodule of {type(model).__name__}; its modules are {names}") from None

        def hook(_module: nn.Module, _inputs: object, output: torch.Tensor, name: str = name) -> None:
            store[name] = torch.relu(output)

        handles.append(module.register_forward_hook(hook))
    try:
        yield store
    finally:
        for handle in handles:
            handle.remove()


# --------------------------------------------------------------------------- the optimiser


def optimize_images(
    model: nn.Module,
    param: ImageParam,
    loss_fn: Callable[[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]], torch.Tensor],
    layers: Sequence[str],
    *,
    steps: int,
    lr: float,
    reg: Regularizers,
    seed: int,
    progress: bool = False,
) -> tuple[torch.Tensor, list[float]]:
    """Minimise ``loss_fn(x, logits, activations) + reg.tv * TV(x)`` over ``param`` with Adam.

    ``x = param()`` is the image batch; the model sees ``random_transform(x)``; ``loss_fn`` returns
    one loss per image (summed, so every image gets its own gradient). The model's parameters are
    frozen and the model is in eval mode. Returns the final images and the mean loss per step.
    """
    generator = torch.Generator(param.raw.device).manual_seed(seed)
    optimizer = torch.optim.Adam(param.parameters(), lr=lr)
    requires = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    was_training = model.training
    model.eval()
    history = []
    try:
        with capture(model, layers) as acts:
            for step in tqdm(range(steps), desc="input optimisation", disable=not progress):
                x = param()
                logits = model(random_transform(x, reg.jitter, reg.scale, reg.rotate, generator))
                per_image = loss_fn(x, logits, acts)
                loss = per_image.sum()
                if reg.tv > 0:
                    loss = loss + reg.tv * total_variation(x) * len(x)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                if reg.blur_sigma > 0 and (step + 1) % reg.blur_every == 0:
                    param.blur_(reg.blur_sigma)
                history.append(per_image.mean().item())
    finally:
        for p, r in zip(model.parameters(), requires):
            p.requires_grad_(r)
        model.train(was_training)
    return param().detach(), history


def _param(shape: Sequence[int], reg: Regularizers, colour: np.ndarray | None, device: torch.device | str, seed: int) -> ImageParam:
    generator = torch.Generator(device).manual_seed(seed)
    return ImageParam(shape, fourier=reg.fourier, colour=colour if reg.decorrelate else None, device=device, generator=generator)


def activation_maximization(
    model: nn.Module,
    num_classes: int,
    image_shape: Sequence[int],
    *,
    seeds: int,
    steps: int,
    lr: float,
    reg: Regularizers,
    seed: int,
    colour: np.ndarray | None = None,
    l2: float = 0.0,
    device: torch.device | str = "cpu",
    progress: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, list[float]]:
    """Images ``(classes, seeds, C, H, W)`` maximising each class logit ``z_c(x) - l2 * ||x - 0.5||^2``
    (Simonyan et al. 2014), from ``seeds`` random starts per class, all in one batch.

    Returns the images, their final logits ``(classes, seeds, classes)`` on the untransformed
    images, and the mean objective per step.
    """
    c, h, w = image_shape
    n = num_classes * seeds
    targets = torch.arange(num_classes, device=device).repeat_interleave(seeds)
    param = _param((n, c, h, w), reg, colour, device, seed)

    def loss_fn(x: torch.Tensor, logits: torch.Tensor, _acts: dict) -> torch.Tensor:
        loss = -logits.gather(1, targets.view(-1, 1)).squeeze(1)
        if l2 > 0:
            loss = loss + l2 * (x - 0.5).pow(2).flatten(1).sum(1)
        return loss

    images, history = optimize_images(model, param, loss_fn, (), steps=steps, lr=lr, reg=reg, seed=seed, progress=progress)
    with torch.no_grad():
        logits = model(images)
    return images.view(num_classes, seeds, c, h, w), logits.view(num_classes, seeds, -1), [-v for v in history]


def layer_objective(acts: torch.Tensor, target: str, channel: int = 0) -> torch.Tensor:
    """Per image: mean of ``a^2`` over a layer (``"layer"``, deep dream), mean of one channel
    (``"channel"``), or the unit of that channel at the centre of the map (``"unit"``).
    Dense layers ``(N, D)`` are read as ``(N, D, 1, 1)``."""
    a = acts if acts.dim() == 4 else acts.view(*acts.shape, 1, 1)
    if target == "layer":
        return a.pow(2).flatten(1).mean(1)
    if channel >= a.shape[1]:
        raise ValueError(f"channel {channel} does not exist in a layer of {a.shape[1]} channels")
    if target == "channel":
        return a[:, channel].flatten(1).mean(1)
    if target == "unit":
        return a[:, channel, a.shape[2] // 2, a.shape[3] // 2]
    raise ValueError(f"caricature target must be 'layer', 'channel' or 'unit', got {target!r}")


def caricature(
    model: nn.Module,
    images: torch.Tensor,
    layers: Sequence[str],
    *,
    target: str,
    channel: int,
    steps: int,
    lr: float,
    reg: Regularizers,
    seed: int,
    colour: np.ndarray | None = None,
    progress: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Caricatures ``(layers, N, C, H, W)`` of ``images`` ``(N, C, H, W)`` in [0, 1]: starting from each
    image, maximise :func:`layer_objective` of one layer, every (layer, image) pair in one batch.

    Returns the caricatures and the objective ``(layers, N)`` before and after as ``(2, layers, N)``.
    """
    n = len(images)
    start = images.repeat(len(layers), 1, 1, 1)
    param = _param(start.shape, reg, colour, images.device, seed).from_images(start)
    blocks = [slice(i * n, (i + 1) * n) for i in range(len(layers))]

    def objective(acts: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.cat([layer_objective(acts[name][block], target, channel) for name, block in zip(layers, blocks)])

    def loss_fn(_x: torch.Tensor, _logits: torch.Tensor, acts: dict[str, torch.Tensor]) -> torch.Tensor:
        return -objective(acts)

    with torch.no_grad(), capture(model, layers) as acts:
        model(start)
        before = objective(acts)
    result, _ = optimize_images(model, param, loss_fn, layers, steps=steps, lr=lr, reg=reg, seed=seed, progress=progress)
    with torch.no_grad(), capture(model, layers) as acts:
        model(result)
        after = objective(acts)
    shape = (len(layers), n)
    return result.view(len(layers), *images.shape), torch.stack([before.view(shape), after.view(shape)])


def invert(
    model: nn.Module,
    images: torch.Tensor,
    layers: Sequence[str],
    *,
    steps: int,
    lr: float,
    reg: Regularizers,
    seed: int,
    alpha: float = 6.0,
    alpha_weight: float = 1.0,
    tv_weight: float = 1.0,
    colour: np.ndarray | None = None,
    progress: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Inversions ``(layers, N, C, H, W)`` of the representations of ``images`` at each layer
    (Mahendran & Vedaldi 2015), from random starts, every (layer, image) pair in one batch:

        ``||phi_l(x) - phi_l(x0)||^2 / ||phi_l(x0)||^2 + alpha_weight * N_alpha(x) + tv_weight * TV_2(x)``

    Returns the inversions and the final relative representation error ``(layers, N)``.
    """
    n = len(images)
    with torch.no_grad(), capture(model, layers) as acts:
        model(images)
        reference = {name: acts[name].detach().clone() for name in layers}
    param = _param((len(layers) * n, *images.shape[1:]), reg, colour, images.device, seed)
    blocks = [slice(i * n, (i + 1) * n) for i in range(len(layers))]

    def relative_error(acts: dict[str, torch.Tensor]) -> torch.Tensor:
        errors = []
        for name, block in zip(layers, blocks):
            ref = reference[name].flatten(1)
            diff = (acts[name][block].flatten(1) - ref).pow(2).sum(1)
            errors.append(diff / ref.pow(2).sum(1).clamp_min(1e-12))
        return torch.cat(errors)

    def loss_fn(x: torch.Tensor, _logits: torch.Tensor, acts: dict[str, torch.Tensor]) -> torch.Tensor:
        prior = alpha_weight * (x - 0.5).abs().pow(alpha).flatten(1).mean(1)
        if tv_weight > 0:
            dx = x[..., :-1, 1:] - x[..., :-1, :-1]
            dy = x[..., 1:, :-1] - x[..., :-1, :-1]
            prior = prior + tv_weight * (dx**2 + dy**2).flatten(1).mean(1)
        return relative_error(acts) + prior

    # The representation is matched on the untransformed image: inversion uses no jitter.
    plain = Regularizers(jitter=0, scale=0.0, rotate=0.0, blur_sigma=reg.blur_sigma, blur_every=reg.blur_every,
                         tv=0.0, fourier=reg.fourier, decorrelate=reg.decorrelate)
    result, _ = optimize_images(model, param, loss_fn, layers, steps=steps, lr=lr, reg=plain, seed=seed, progress=progress)
    with torch.no_grad(), capture(model, layers) as acts:
        model(result)
        error = relative_error(acts)
    return result.view(len(layers), *images.shape), error.view(len(layers), n)
