"""The visualize study's networks (nnprobe.models.topdown): the bottom-up CNN, the coarse-to-fine
top-down network (Lelekas et al. 2020) and the wrapper that takes pixels in [0, 1]."""

from __future__ import annotations

import pytest
import torch

from nnprobe.engines.features import capture
from nnprobe.models import count_parameters
from nnprobe.models.topdown import Normalized, StandardCNN, TopDownNet, standard_cnn, topdown_net


@pytest.mark.parametrize("channels,size", [(1, 8), (3, 32), (3, 12)])
def test_topdown_and_standard_shapes_and_sizes(channels, size):
    x = torch.rand(2, channels, size, size)
    for cls in (StandardCNN, TopDownNet):
        net = cls(channels, 10, 8)
        assert net(x).shape == (2, 10)
    # Same widths in reverse order: parameter counts within 10% of each other.
    a, b = count_parameters(standard_cnn(channels, 10, 16)), count_parameters(topdown_net(channels, 10, 16))
    assert 0.9 < a / b < 1.1, (a, b)
    assert count_parameters(standard_cnn(3, 10, 32)) == 288_298


def test_topdown_sees_the_coarse_image_first():
    net = TopDownNet(1, 10, 4)
    assert TopDownNet.scales(32, 32) == [(8, 8), (16, 16), (32, 32)]
    seen = {}
    with capture(Normalized(net, [0.0], [1.0]), ["net.stage1", "net.stage2", "net.stage3"]) as acts:
        net_out = Normalized(net, [0.0], [1.0])(torch.rand(1, 1, 32, 32))
        seen = {k: v.shape[-1] for k, v in acts.items()}
    assert net_out.shape == (1, 10)
    assert seen == {"net.stage1": 8, "net.stage2": 16, "net.stage3": 32}
    with pytest.raises(ValueError, match="at least 4x4"):
        TopDownNet.scales(3, 8)
