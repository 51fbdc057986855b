"""The CIFAR ResNet-18 (nnprobe.models.resnet): size, stem, seeded initialisation."""

from __future__ import annotations

import torch

from nnprobe.models.resnet import resnet18_cifar


def test_resnet18_parameter_count():
    assert sum(p.numel() for p in resnet18_cifar().parameters()) == 11_173_962
    model = resnet18_cifar(num_classes=10, in_channels=1, width=8)
    assert model.feature_dim == 64
    assert model(torch.zeros(2, 1, 8, 8)).shape == (2, 10)
    # the CIFAR stem: 3x3 stride-1 convolution, no max-pool, so a 32x32 input reaches 4x4 in the last stage
    assert model.conv1.kernel_size == (3, 3) and model.conv1.stride == (1, 1)
    assert not any(isinstance(m, torch.nn.MaxPool2d) for m in model.modules())


def test_resnet_init_is_seeded_and_leaves_the_global_rng_alone():
    state = torch.get_rng_state()
    a, b = resnet18_cifar(width=4, seed=3), resnet18_cifar(width=4, seed=3)
    assert torch.equal(state, torch.get_rng_state())
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)
    c = resnet18_cifar(width=4, seed=4)
    assert not torch.equal(a.conv1.weight, c.conv1.weight)
