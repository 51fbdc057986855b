"""Probe sets of the noise study: images without content, with the statistics of the data.

Gaussian noise with the data's per-channel mean and std, uniform noise, per-image
pixel-shuffled test images, band-limited low-frequency noise and the constant mean image.
Probe images are float32 arrays ``(N, C, H, W)`` on the [0, 1] pixel scale, *not* clipped or
quantised, so that the Gaussian set has exactly the requested moments; the networks
normalise them like uint8 images divided by 255. Pure numpy.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["PROBE_SETS", "gaussian_noise", "uniform_noise", "shuffled_pixels", "lowfreq_noise", "constant_image",
           "probe_sets"]

#: The probe sets, in the order of the figures.
PROBE_SETS: tuple[str, ...] = ("gaussian", "uniform", "shuffled", "lowfreq", "constant")


def _check_stats(mean: Sequence[float], std: Sequence[float], shape: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    mean, std = np.asarray(mean, dtype=np.float64), np.asarray(std, dtype=np.float64)
    if len(shape) != 3:
        raise ValueError(f"image shape must be (C, H, W), got {tuple(shape)}")
    if mean.shape != (shape[0],) or std.shape != (shape[0],):
        raise ValueError(
            f"mean and std need one value per channel ({shape[0]} for shape {tuple(shape)}), got "
            f"{mean.shape} and {std.shape}; compute them with nnprobe.core.splits.channel_stats"
        )
    if (std <= 0).any():
        raise ValueError(f"std must be positive per channel, got {std}")
    return mean, std


def gaussian_noise(n: int, mean: Sequence[float], std: Sequence[float], shape: Sequence[int],
                   rng: np.random.Generator) -> np.ndarray:
    """``n`` images of i.i.d. Gaussian pixels, ``x_c ~ N(mean_c, std_c^2)`` per channel (not clipped).

    After normalisation by the same mean and std (as every network here does) this is white
    standard-normal noise: the "noise with the training set's statistics" of the anecdote.
    """
    mean, std = _check_stats(mean, std, shape)
    z = rng.standard_normal((n, *shape))
    return (z * std[None, :, None, None] + mean[None, :, None, None]).astype(np.float32)


def uniform_noise(n: int, shape: Sequence[int], rng: np.random.Generator) -> np.ndarray:
    """``n`` images of i.i.d. pixels uniform on the full pixel range [0, 1]."""
    return rng.random((n, *shape)).astype(np.float32)


def shuffled_pixels(images_u8: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` test images (drawn without replacement) with their pixel positions permuted.

    Each image gets its own permutation of its ``H*W`` positions; a pixel keeps its colour
    (channels move together). Colour histogram kept, spatial structure destroyed.
    """
    images_u8 = np.asarray(images_u8)
    if n > len(images_u8):
        raise ValueError(f"cannot draw {n} shuffled images from {len(images_u8)} test images; lower noise.probe_size")
    chosen = rng.choice(len(images_u8), size=n, replace=False)
    flat = images_u8[chosen].reshape(n, images_u8.shape[1], -1)
    perms = np.argsort(rng.random((n, flat.shape[2])), axis=1)
    shuffled = np.take_along_axis(flat, perms[:, None, :], axis=2)
    return (shuffled.reshape(n, *images_u8.shape[1:]) / 255.0).astype(np.float32)


def lowfreq_noise(n: int, mean: Sequence[float], std: Sequence[float], shape: Sequence[int],
                  cutoff: float, rng: np.random.Generator) -> np.ndarray:
    """Band-limited Gaussian noise: white noise with every spatial frequency above ``cutoff`` removed.

    ``cutoff`` is a fraction of the Nyquist frequency (0.5 cycles per pixel): the 2-D FFT of
    white noise is zeroed where ``sqrt(fy^2 + fx^2) > cutoff * 0.5`` (frequencies in cycles
    per pixel), transformed back, and every channel of the set is then scaled to the data's
    mean and std (over all images and pixels of the set).
    """
    mean, std = _check_stats(mean, std, shape)
    if not 0 < cutoff <= 1:
        raise ValueError(f"noise.lowfreq_cutoff must be in (0, 1] (a fraction of Nyquist), got {cutoff}")
    _, h, w = shape
    radius = np.hypot(*np.meshgrid(np.fft.fftfreq(h), np.fft.rfftfreq(w), indexing="ij"))
    keep = radius <= cutoff * 0.5
    keep[0, 0] = True
    spectrum = np.fft.rfft2(rng.standard_normal((n, *shape)), axes=(-2, -1)) * keep
    x = np.fft.irfft2(spectrum, s=(h, w), axes=(-2, -1))
    x = (x - x.mean(axis=(0, 2, 3), keepdims=True)) / x.std(axis=(0, 2, 3), keepdims=True)
    return (x * std[None, :, None, None] + mean[None, :, None, None]).astype(np.float32)


def constant_image(mean: Sequence[float], shape: Sequence[int]) -> np.ndarray:
    """The one image whose every pixel is the data's mean colour, shape ``(1, C, H, W)``."""
    mean, _ = _check_stats(mean, np.ones(len(mean)), shape)
    return np.broadcast_to(mean[None, :, None, None], (1, *shape)).astype(np.float32)


def probe_sets(names: Sequence[str], n: int, mean: Sequence[float], std: Sequence[float],
               test_images_u8: np.ndarray, seed: int, lowfreq_cutoff: float = 0.25) -> dict[str, np.ndarray]:
    """The named probe sets (``PROBE_SETS``), ``n`` images each (the constant set: one image).

    Every set is drawn from its own generator ``default_rng([seed, index of the set in
    PROBE_SETS])``, so a set does not change when others are added or removed and every
    network of the study sees the same images.
    """
    unknown = sorted(set(names) - set(PROBE_SETS))
    if unknown:
        raise ValueError(f"unknown probe sets {unknown}; allowed are {list(PROBE_SETS)}")
    shape = test_images_u8.shape[1:]
    out = {}
    for name in names:
        rng = np.random.default_rng([int(seed), PROBE_SETS.index(name)])
        if name == "gaussian":
            out[name] = gaussian_noise(n, mean, std, shape, rng)
        elif name == "uniform":
            out[name] = uniform_noise(n, shape, rng)
        elif name == "shuffled":
            out[name] = shuffled_pixels(test_images_u8, min(n, len(test_images_u8)), rng)
        elif name == "lowfreq":
            out[name] = lowfreq_noise(n, mean, std, shape, lowfreq_cutoff, rng)
        else:
            out[name] = constant_image(mean, shape)
    return out
