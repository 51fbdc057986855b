"""The MNIST networks of Szegedy et al. (2013) (nnprobe.models.szegedy): hidden layers, the
autoencoder's code, seeded constructors."""

from __future__ import annotations

import pytest
import torch

from nnprobe.models.szegedy import AutoencoderClassifier, ae400_10, fc10, fc_sigmoid


def test_hidden_layers_code_and_reconstruction():
    mlp = fc_sigmoid((100, 100))
    hidden = mlp.hidden(torch.rand(4, 784))
    assert [h.shape for h in hidden] == [(4, 100), (4, 100)]
    assert all(((h > 0) & (h < 1)).all() for h in hidden)  # sigmoid units
    ae = ae400_10()
    assert isinstance(ae, AutoencoderClassifier)
    assert ae.code(torch.rand(2, 784)).shape == (2, 400)
    assert ae.reconstruct(torch.rand(2, 784)).shape == (2, 784)
    assert fc10().hidden(torch.rand(2, 784)) == []


def test_constructors_are_seeded():
    a = fc_sigmoid((10,), num_inputs=16, generator=torch.Generator().manual_seed(5))
    b = fc_sigmoid((10,), num_inputs=16, generator=torch.Generator().manual_seed(5))
    c = fc_sigmoid((10,), num_inputs=16, generator=torch.Generator().manual_seed(6))
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not torch.equal(a.layers[0].weight, c.layers[0].weight)
    with pytest.raises(ValueError, match="hidden must be"):
        fc_sigmoid(())
