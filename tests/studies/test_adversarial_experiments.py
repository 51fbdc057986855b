"""The Table 4 experiments' pure functions (nnprobe.studies.adversarial.experiments)."""

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from nnprobe.core.seeds import derive_seed
from nnprobe.engines.lbfgs import rms_distortion
from nnprobe.engines.training import TrainOptions
from nnprobe.studies.adversarial.experiments import (
    file_order_halves,
    magnify_below,
    pair_summary,
    replicate_seed,
    train_fc,
    transfer_cells,
)
from nnprobe.studies.adversarial.training import train_zoo_model


def test_replicate_zero_is_the_workflows_seed():
    assert replicate_seed(0, "p1", "FC100-100-10", 0) == derive_seed(0, "train_zoo_model", "p1", "FC100-100-10")
    seeds = {replicate_seed(0, "p1", "FC100-100-10", k) for k in range(4)}
    assert len(seeds) == 4
    with pytest.raises(ValueError, match="replicate"):
        replicate_seed(0, "p1", "FC100-100-10", -1)


def test_file_order_halves():
    first, last = file_order_halves(7)
    np.testing.assert_array_equal(first, [0, 1, 2])
    np.testing.assert_array_equal(last, [3, 4, 5])
    with pytest.raises(ValueError):
        file_order_halves(1)


def test_magnify_below_scales_only_the_small_examples():
    x = torch.full((3, 1, 2, 2), 0.5)
    delta = torch.tensor([0.02, 0.1, 0.3]).view(3, 1, 1, 1) * torch.ones(3, 1, 2, 2)
    out = magnify_below(x + delta, x, 0.1)
    np.testing.assert_allclose(rms_distortion(out, x).numpy(), [0.1, 0.1, 0.3], rtol=1e-5)
    torch.testing.assert_close(out[2], (x + delta)[2])


def test_train_fc_with_the_workflows_order_is_the_workflows_network():
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(64, 1, 4, 4, generator=g), torch.randint(0, 3, (64,), generator=g)
    settings = {"epochs": 2, "batch_size": 16, "lr": 0.01, "schedule": "cosine", "decay_normalization": "classic"}
    ours = train_fc("FC100-100-10", x, y, settings, init_seed=5, order_seed=7, num_classes=3)
    theirs, _ = train_zoo_model("FC100-100-10", x, y, TrainOptions(epochs=2, progress=False), batch_size=16, lr=0.01,
                                seed=5, normalize="classic", schedule="cosine", num_classes=3)
    for a, b in zip(ours.state_dict().values(), theirs.state_dict().values()):
        torch.testing.assert_close(a, b)
    other = train_fc("FC100-100-10", x, y, settings, init_seed=5, order_seed=8, num_classes=3)
    assert not torch.equal(other.out.weight, ours.out.weight)


class _Threshold(nn.Module):
    """Class 1 when the mean pixel is above ``t``."""

    def __init__(self, t):
        super().__init__()
        self.t = t

    def forward(self, x):
        m = x.flatten(1).mean(1, keepdim=True)
        return torch.cat([self.t - m, m - self.t], 1)


def test_transfer_cells_and_pair_summary():
    clean = torch.zeros(4, 1, 2, 2)
    adv = clean + torch.tensor([0.04, 0.06, 0.2, 0.0]).view(4, 1, 1, 1)
    record = {"correct": np.array([True, True, True, False]), "success": np.array([True, True, True, True]),
              "adversarial": adv.numpy(), "label": np.zeros(4, np.int64)}
    models = {"a/r0": _Threshold(0.05), "a/r1": _Threshold(0.12), "b/r0": _Threshold(0.15)}
    cells = transfer_cells(models, {"a/r0": record}, clean)
    made = cells[cells["variant"] == "as made"].set_index("model")
    assert made.loc["a/r0", "n"] == 3  # the already-wrong image is left out
    assert made.loc["a/r0", "errors"] == 2 and made.loc["a/r1", "errors"] == 1 and made.loc["b/r0", "errors"] == 1
    mag = cells[cells["variant"] == "magnified to 0.1"].set_index("model")
    assert mag.loc["a/r1", "errors"] == 0  # all at 0.1: not above a/r1's threshold
    below = cells[cells["variant"] == "magnified below 0.1"].set_index("model")
    assert below.loc["b/r0", "errors"] == 1  # the 0.2 example is kept
    summary = pair_summary(cells, {"a/r0": "A", "a/r1": "A", "b/r0": "B"})
    row = summary[(summary["variant"] == "as made") & (summary["model"] == "A")].iloc[0]
    assert row["pairs"] == 1 and row["mean"] == pytest.approx(100 / 3) and row["own"] == pytest.approx(200 / 3)
    with pytest.raises(ValueError, match="network_of"):
        pair_summary(cells, {"a/r0": "A"})
    assert isinstance(summary, pd.DataFrame)
