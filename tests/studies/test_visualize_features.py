"""The visualize study's feature visualisations (nnprobe.studies.visualize.features): which test
images it shows, the mislabel study's baseline network it reads, and the arrays it returns."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from nnprobe.core.weights import save_weights
from nnprobe.engines.evaluation import predict
from nnprobe.models.keras_cnn import KerasCNN, keras_cnn
from nnprobe.models.topdown import Normalized, standard_cnn
from nnprobe.studies.visualize.features import mislabel_baseline, pick_images, visualize_features


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


class Lookup(nn.Module):
    """Predicts the class written in an image's first pixel (images (N, 1, 1, 1) of class indices)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.one_hot(x.flatten(1)[:, 0].round().long(), 3).float()


def lookup_data(predicted: list[int], labels: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.tensor(predicted, dtype=torch.float32).view(-1, 1, 1, 1), torch.tensor(labels)


# --------------------------------------------------------------------------- pick_images


def test_pick_images_cycles_over_the_classes():
    #             index:  0  1  2  3  4  5  6  7
    images, labels = lookup_data([1, 1, 0, 2, 0, 0, 2, 1], [0, 1, 0, 2, 1, 0, 2, 1])
    # correct: 1, 2, 3, 5, 6, 7; class 0 -> 2, 5; class 1 -> 1, 7; class 2 -> 3, 6
    picks = pick_images(Lookup(), images, labels, 5)
    assert picks.dtype == torch.long and picks.tolist() == [2, 1, 3, 5, 7]
    assert pick_images(Lookup(), images, labels, 2).tolist() == [2, 1]
    assert pick_images(Lookup(), images, labels, 9).tolist() == [2, 1, 3, 5, 7, 6]  # none left after 6
    assert pick_images(Lookup(), images, labels, 0).tolist() == []


def test_pick_images_skips_a_class_without_a_correct_image():
    images, labels = lookup_data([0, 0, 2, 2, 0], [0, 1, 2, 1, 0])  # class 1 is never right
    assert pick_images(Lookup(), images, labels, 4).tolist() == [0, 2, 4]


def test_pick_images_looks_among_all_images():
    """Test sets stored class by class (an image folder) have their last classes far down."""
    predicted = [1] * 2500 + [0]
    images, labels = lookup_data(predicted, [0] * 2500 + [0])  # the one correct image is number 2500
    assert pick_images(Lookup(), images, labels, 3).tolist() == [2500]


# --------------------------------------------------------------------------- mislabel_baseline

C, H, K = 1, 8, 10


def network_file(tmp_path, name: str, seed: int = 100):
    """One network of the mislabel study as its training job writes it (nnprobe.studies.mislabel.jobs)."""
    pair, replicate = name.split("/")
    architecture = {"name": "keras_cnn", "in_channels": C, "num_classes": K, "input_size": [H, H], "padding": 1}
    model = keras_cnn(C, K, H, 1, torch.Generator().manual_seed(seed))
    path = save_weights(tmp_path / f"{pair}-{replicate}.safetensors", model.state_dict(), architecture=architecture,
                        extra={"network": name, "pair": pair, "replicate": int(replicate[1:])})
    return path, model.eval()


def test_mislabel_baseline_takes_unit_pixels_and_probes_the_architecture_s_layers(tmp_path):
    path, own = network_file(tmp_path, "none/r000")
    mean, std = np.array([0.3]), np.array([0.2])
    model = mislabel_baseline(str(path), mean, std)
    assert isinstance(model, Normalized) and isinstance(model.net, KerasCNN) and not model.training
    assert model.layers == ("net.conv1", "net.conv2", "net.conv3", "net.fc1")
    images = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (6, C, H, H), dtype=np.uint8))
    x = images.float() / 255
    with torch.no_grad():
        torch.testing.assert_close(model(x), own((x - 0.3) / 0.2))


def test_mislabel_baseline_refuses_a_network_of_a_pair(tmp_path):
    path, _ = network_file(tmp_path, "0-1/r000")
    with pytest.raises(ValueError, match=r"holds network '0-1/r000', expected one of the mislabel study's baseline"):
        mislabel_baseline(str(path), np.array([0.5]), np.array([0.25]))


# --------------------------------------------------------------------------- visualize_features

FEATURES = {"seeds": 2, "steps": 2, "lr": 0.05, "l2": 0.0, "images": 3, "caricature_steps": 2,
            "caricature_target": "layer", "caricature_channel": 0, "inversion_steps": 2, "alpha": 6,
            "alpha_weight": 1.0, "tv_weight": 0.5}
REGULARIZERS = {"jitter": 2, "scale": 0.05, "rotate": 5, "blur_sigma": 0.5, "blur_every": 8, "tv": 0.05,
                "fourier": True, "decorrelate": True}


@pytest.mark.parametrize("target", ["layer", "channel"])
def test_visualize_features_returns_the_arrays_of_the_figures(target):
    model = Normalized(standard_cnn(3, 3, 2, torch.Generator().manual_seed(0)), [0.4, 0.5, 0.6], [0.3, 0.2, 0.25])
    rng = np.random.default_rng(0)
    train = rng.integers(0, 256, (20, 3, 8, 8), dtype=np.uint8)
    test = torch.from_numpy(rng.integers(0, 256, (40, 3, 8, 8), dtype=np.uint8))
    with torch.no_grad():  # centre the logits, so that the untrained network predicts every class somewhere
        model.net.head.bias -= model(test.float() / 255).median(0).values
    labels = predict(model, test)  # every test image correct
    assert set(labels.tolist()) == {0, 1, 2}, labels  # the fixture: every class has a correct image
    features = {**FEATURES, "caricature_target": target, "caricature_channel": 1}
    arrays = visualize_features(model, train, test, labels, ["cat", "dog", "fox"], features=features,
                                regularizers=REGULARIZERS, seeds={"am": 1, "caricature": 2, "inversion": 3},
                                progress=False, name="natural")
    expected = {
        "am_images": ((3, 2, 3, 8, 8), np.float32), "am_logits": ((3, 2, 3), np.float32),
        "am_history": ((2,), np.float32), "originals": ((3, 3, 8, 8), np.float32),
        "original_labels": ((3,), np.int64), "original_index": ((3,), np.int64),
        "caricatures": ((3, 3, 3, 8, 8), np.float32), "caricature_objective": ((2, 3, 3), np.float32),
        "inversions": ((3, 3, 3, 8, 8), np.float32), "inversion_error": ((3, 3), np.float32),
    }
    assert set(arrays) == set(expected) | {"layers", "classes", "model", "caricature_target"}
    for key, (shape, dtype) in expected.items():
        assert arrays[key].shape == shape and arrays[key].dtype == dtype, (key, arrays[key].shape, arrays[key].dtype)
        assert np.isfinite(arrays[key]).all(), key
    picks = arrays["original_index"]
    assert arrays["original_labels"].tolist() == [0, 1, 2]  # one correct image of each class, in class order
    assert picks.tolist() == [int(torch.nonzero(labels == c)[0]) for c in range(3)]  # the first of each class
    np.testing.assert_array_equal(arrays["originals"], test[picks].numpy() / np.float32(255))
    for key in ("am_images", "caricatures", "inversions"):
        assert arrays[key].min() >= 0 and arrays[key].max() <= 1, key  # pixels in [0, 1]
    assert arrays["layers"].tolist() == ["stage1", "stage2", "stage3"]
    assert arrays["classes"].tolist() == ["cat", "dog", "fox"]
    assert arrays["model"].shape == () and str(arrays["model"]) == "natural"
    assert str(arrays["caricature_target"]) == ("layer" if target == "layer" else "channel 1")
    assert all(a.dtype != object for a in arrays.values())  # np.savez without pickles


def test_pick_images_of_a_network_at_chance_falls_back_to_the_first_of_each_class():
    images, labels = lookup_data([1, 2, 0, 1, 2], [0, 1, 2, 0, 1])  # not one right
    assert pick_images(Lookup(), images, labels, 3).tolist() == [0, 1, 2]
