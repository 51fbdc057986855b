"""Probe sets of the noise study (nnprobe.studies.noise.probes): images without content with the
statistics of the data."""

from __future__ import annotations

import numpy as np
import pytest

from nnprobe.studies.noise import probes as noise

MEAN, STD = np.array([0.49, 0.48, 0.45]), np.array([0.25, 0.24, 0.26])


def test_gaussian_set_matches_the_data_channel_statistics():
    x = noise.gaussian_noise(2000, MEAN, STD, (3, 16, 16), np.random.default_rng(0))
    assert x.shape == (2000, 3, 16, 16) and x.dtype == np.float32
    np.testing.assert_allclose(x.mean(axis=(0, 2, 3)), MEAN, atol=2e-3)
    np.testing.assert_allclose(x.std(axis=(0, 2, 3)), STD, rtol=5e-3)
    # pixels are independent: neighbouring pixels uncorrelated
    a, b = x[:, 0, :, :-1].ravel(), x[:, 0, :, 1:].ravel()
    assert abs(np.corrcoef(a, b)[0, 1]) < 0.01


def test_gaussian_set_statistics_follow_real_data():
    rng = np.random.default_rng(1)
    images = (rng.beta(2, 3, (50, 3, 8, 8)) * 255).astype(np.uint8)
    mean, std = images.mean(axis=(0, 2, 3)) / 255, images.std(axis=(0, 2, 3)) / 255
    sets = noise.probe_sets(["gaussian"], 20000, mean, std, images, seed=3)
    np.testing.assert_allclose(sets["gaussian"].mean(axis=(0, 2, 3)), mean, atol=2e-3)
    np.testing.assert_allclose(sets["gaussian"].std(axis=(0, 2, 3)), std, rtol=5e-3)


def test_uniform_set_covers_the_pixel_range():
    x = noise.uniform_noise(500, (3, 8, 8), np.random.default_rng(0))
    assert x.min() >= 0 and x.max() < 1
    np.testing.assert_allclose(x.mean(), 0.5, atol=0.01)
    np.testing.assert_allclose(x.var(), 1 / 12, rtol=0.03)


def test_shuffled_images_are_permutations_of_the_pixels():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (20, 3, 6, 5), dtype=np.uint8)
    out = noise.shuffled_pixels(images, 20, np.random.default_rng(1))
    flat_in = images.reshape(20, 3, -1).transpose(0, 2, 1)  # (N, pixels, RGB)
    flat_out = np.rint(out * 255).astype(np.uint8).reshape(20, 3, -1).transpose(0, 2, 1)
    matched = 0
    for o in flat_out:
        # each shuffled image is one test image with its RGB triples permuted (colours kept together)
        for i in flat_in:
            if sorted(map(tuple, o)) == sorted(map(tuple, i)):
                matched += 1
                assert not np.array_equal(o, i)  # and really shuffled
                break
    assert matched == 20


def test_shuffled_set_cannot_exceed_the_test_set():
    with pytest.raises(ValueError, match="probe_size"):
        noise.shuffled_pixels(np.zeros((3, 1, 2, 2), np.uint8), 4, np.random.default_rng(0))


def test_lowfreq_noise_is_low_frequency_with_the_data_statistics():
    cutoff = 0.25
    x = noise.lowfreq_noise(400, MEAN, STD, (3, 32, 32), cutoff, np.random.default_rng(0))
    np.testing.assert_allclose(x.mean(axis=(0, 2, 3)), MEAN, atol=1e-6)
    np.testing.assert_allclose(x.std(axis=(0, 2, 3)), STD, rtol=1e-5)
    power = np.abs(np.fft.fft2(x - x.mean(axis=(2, 3), keepdims=True))) ** 2
    radius = np.hypot(*np.meshgrid(np.fft.fftfreq(32), np.fft.fftfreq(32), indexing="ij"))
    above = power[..., radius > cutoff * 0.5 + 1e-9].sum() / power.sum()
    assert above < 1e-10
    # and it is smooth: neighbouring pixels strongly correlated, unlike white noise
    a, b = x[:, 0, :, :-1].ravel(), x[:, 0, :, 1:].ravel()
    assert np.corrcoef(a, b)[0, 1] > 0.8


def test_constant_image_is_the_mean():
    x = noise.constant_image(MEAN, (3, 4, 5))
    assert x.shape == (1, 3, 4, 5)
    for c in range(3):
        np.testing.assert_allclose(x[0, c], MEAN[c], rtol=1e-6)


def test_probe_sets_are_reproducible_and_independent_of_each_other():
    images = np.random.default_rng(0).integers(0, 256, (30, 3, 8, 8), dtype=np.uint8)
    a = noise.probe_sets(noise.PROBE_SETS, 10, MEAN, STD, images, seed=7)
    b = noise.probe_sets(["lowfreq", "gaussian"], 10, MEAN, STD, images, seed=7)
    assert list(a) == list(noise.PROBE_SETS)
    np.testing.assert_array_equal(a["gaussian"], b["gaussian"])
    np.testing.assert_array_equal(a["lowfreq"], b["lowfreq"])
    assert a["constant"].shape[0] == 1 and a["shuffled"].shape[0] == 10
    c = noise.probe_sets(["gaussian"], 10, MEAN, STD, images, seed=8)
    assert not np.array_equal(a["gaussian"], c["gaussian"])
    with pytest.raises(ValueError, match="unknown probe sets"):
        noise.probe_sets(["pink"], 10, MEAN, STD, images, seed=7)
