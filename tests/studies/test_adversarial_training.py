"""Training the zoo of Szegedy et al. (2013) through the engine (nnprobe.studies.adversarial.training):
the weight decay, AE400-10's two stages and adversarial training with a pool of examples.

Tiny networks on scikit-learn's 8x8 digits (pixels scaled to [0, 1]), a few seconds on the CPU.
"""

from __future__ import annotations

import pytest
import torch

from nnprobe.engines.lbfgs import rms_distortion
from nnprobe.engines.training import TrainOptions, fit
from nnprobe.models.szegedy import ae400_10, fc10, fc_sigmoid
from nnprobe.studies.adversarial import zoo
from nnprobe.studies.adversarial.training import AdversarialPoolTask, ZooClassifierTask, train_zoo_model
from nnprobe.studies.adversarial.zoo import build_zoo_model


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models: one intra-op thread is faster than several on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def digits() -> dict[str, torch.Tensor]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.tensor(bunch.data / 16.0, dtype=torch.float32)  # (1797, 64) in [0, 1]
    y = torch.tensor(bunch.target, dtype=torch.int64)
    perm = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(0))
    train, test = perm[:1400], perm[1400:]
    return {"x_train": x[train], "y_train": y[train], "x_test": x[test], "y_test": y[test]}


def options(epochs: int) -> TrainOptions:
    return TrainOptions(epochs=epochs, device="cpu", progress=False)


def test_weight_decay_shrinks_weights(digits):
    x, y = digits["x_train"][:300], digits["y_train"][:300]
    norms = []
    for lam in (0.0, 10.0):
        model = fc10(num_inputs=64, generator=torch.Generator().manual_seed(0))
        task = ZooClassifierTask(model, x, y, weight_decay=lam, normalize="units", batch_size=50, lr=1e-2, order_seed=0)
        fit(task, options(5))
        norms.append(float(model.fc.weight.detach().norm()))
    assert norms[1] < 0.7 * norms[0]


def test_train_zoo_model_autoencoder_freezes_the_code(digits, monkeypatch):
    x, y = digits["x_train"][:400], digits["y_train"][:400]
    small = zoo.ZooEntry(
        lambda num_inputs, num_classes, generator: ae400_10(24, num_inputs, num_classes, generator), 1e-6, "tiny AE"
    )
    monkeypatch.setitem(zoo.ZOO, "tiny-AE", small)
    reference = build_zoo_model("tiny-AE", 64, 10, torch.Generator().manual_seed(0))
    model, history = train_zoo_model("tiny-AE", x, y, options(3), ae_epochs=3, batch_size=50, lr=1e-2, seed=0)
    frozen, _ = train_zoo_model("tiny-AE", x, y, options(1), ae_epochs=3, batch_size=50, lr=1e-2, seed=0)
    assert len(history) == 3 and not model.training  # the classifier's history; the network in eval mode
    assert not torch.equal(model.encoder.weight, reference.encoder.weight)  # pre-trained
    # classifier stage leaves the encoder as pre-training left it (same seed, same pre-training)
    assert torch.equal(model.encoder.weight, frozen.encoder.weight)
    assert not torch.equal(model.classifier.weight, frozen.classifier.weight)
    assert all(p.requires_grad for p in model.parameters())


def test_adversarial_pool_holds_true_labels_and_adversarial_examples(digits):
    x, y = digits["x_train"][:400], digits["y_train"][:400]
    attack = {"c_grid": (1.0, 0.25, 0.0625), "max_iter": 20, "bisection_steps": 0, "refine_steps": 0}

    def run():
        model = fc_sigmoid((32,), num_inputs=64, generator=torch.Generator().manual_seed(1))
        task = AdversarialPoolTask(model, x, y, weight_decay=(1e-5, 1e-6), normalize="units", batch_size=50, lr=1e-2,
                                   order_seed=7, pool_size=40, refresh_every=5, refresh_size=16, attack=attack)
        history = fit(task, options(3))
        return model, history, task.pool

    model, history, pool = run()
    # 3 epochs x 8 steps, refreshed at steps 0, 5, ..., 20: 5 refreshes of 16 images.
    assert 0 < pool["generated"] and pool["generated"] + pool["failed"] <= 5 * 16
    assert len(pool["labels"]) == min(40, pool["generated"]) and len(pool["distortions"]) == pool["generated"]
    assert pool["images"].min() >= 0 and pool["images"].max() <= 1
    # Every pool example carries the true label of the training image it was made from, and
    # was adversarial when made: it differs from its source by a small perturbation.
    assert torch.equal(y[pool["sources"]], pool["labels"])
    d = rms_distortion(pool["images"], x[pool["sources"]])
    assert (d > 0).all() and (d < 0.3).all()
    assert history[-1]["loss"] < history[0]["loss"]
    model2, history2, pool2 = run()  # seeded: the same pool and weights again
    assert [r["loss"] for r in history2] == [r["loss"] for r in history]
    assert torch.equal(pool2["sources"], pool["sources"]) and torch.equal(pool2["images"], pool["images"])
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), model2.parameters()))
    with pytest.raises(ValueError, match="pool_fraction"):
        AdversarialPoolTask(model, x, y, weight_decay=0.0, normalize="units", batch_size=50, lr=1e-2, order_seed=0,
                            pool_size=1, refresh_every=1, refresh_size=1, pool_fraction=0)
