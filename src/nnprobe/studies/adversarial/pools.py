"""Adversarial training with pools of adversarial examples (Szegedy et al. 2013, Sec. 4.2).

The paper trained FC100-100-10 "by keeping a pool of adversarial examples a random subset of
which is continuously replaced by newly generated adversarial examples and which is mixed into
the original training set all the time", with weight decay and no dropout, and reached a test
error below 1.2% (weight decay alone: 1.6%; dropout: about 1.3%). It adds that it "only got
improvements by generating adversarial examples for each layer outputs which were used to train
all the layers above", the examples of the higher layers being more useful than the input's.

:class:`AdversarialPoolTask` keeps one pool per *layer* of ``layers``: ``"input"`` (the pixels)
or the index ``l`` of a hidden layer of a :class:`~nnprobe.models.szegedy.SigmoidMLP`. An
example of pool ``l`` is a perturbed activation ``h_l + r`` of a training image, minimal in
the sense of :func:`~nnprobe.engines.lbfgs.minimal_adversarial_lbfgs` inside the box
``[0, 1]^width`` (the sigmoid's range; the pixels' for the input), that the network *from layer
l up* (:class:`LayersAbove`) classifies as a wrong target; it is stored with the image's true
label, and trains the layers above ``l`` only. ``layers=("input",)`` is input-only adversarial
training, ``("input", 0, 1)`` the paper's per-layer pools for FC100-100-10.

Two named departures from the pools as first built (regimes ``capped_pool`` and
``recomputed_pool`` of the comparison), each an option of :class:`AdversarialPoolTask`:

* ``max_distortion``: a cap per layer; an example farther than its cap from its source is not
  kept (a large perturbation may have made the image another digit, and its true label is then
  wrong). Fresh examples come from the refresh rate, not from an option: with
  ``refresh_size / refresh_every`` new examples per step and ``per_pool`` drawn, an example is
  drawn about ``per_pool * refresh_every / refresh_size`` times (logged as ``uses``).
* ``recompute``: a hidden layer's example is its source image's activation *under the current
  lower layers* plus its stored perturbation, clipped to the layer's box, instead of the
  activation the lower layers gave when it was made (they have trained since).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from ...engines.lbfgs import minimal_adversarial_lbfgs
from ...engines.training import Step
from ...models.szegedy import SigmoidMLP
from .monitor import TrainingMonitor
from .training import ZooClassifierTask

__all__ = ["INPUT", "AdversarialPoolTask", "LayersAbove", "pool_layers"]

INPUT = "input"
"""The name of the input layer (the pixels) in ``layers``."""

_SAVED = ("examples", "perturbations", "labels", "targets", "sources", "made")
_COUNTS = ("generated", "failed", "capped", "drawn")


def pool_layers(network: nn.Module, layers: Sequence[str | int]) -> tuple[str, ...]:
    """``layers`` as pool names (``"input"``, ``"0"``, ``"1"``, ...), checked against ``network``.

    A hidden layer ``l`` needs a :class:`~nnprobe.models.szegedy.SigmoidMLP` with more than ``l``
    hidden layers.
    """
    layers = list(layers)
    if not layers:
        raise ValueError('layers must name at least one layer: "input" or a hidden layer index such as 0')
    names = []
    for layer in layers:
        if layer == INPUT:
            names.append(INPUT)
            continue
        if isinstance(layer, bool) or not isinstance(layer, int) or layer < 0:
            raise ValueError(f'layers must hold "input" or hidden layer indices >= 0, got {layer!r} in {layers}')
        if not isinstance(network, SigmoidMLP):
            raise TypeError(f"a pool of hidden layer {layer} needs a sigmoid network (FC...-...-10), not "
                             f'{type(network).__name__}; use layers ["input"] for it')
        if layer >= len(network.layers):
            raise ValueError(f"layers has hidden layer {layer}, but the network has {len(network.layers)} hidden "
                             f"layers (0 to {len(network.layers) - 1})")
        names.append(str(layer))
    if len(set(names)) != len(names):
        raise ValueError(f"layers must not repeat a layer, got {layers}")
    return tuple(names)


class LayersAbove(nn.Module):
    """The sigmoid network from hidden layer ``layer`` up: ``h_layer -> logits``.

    Shares the network's parameters (its layers above ``layer``, its output layer and its
    dropout, which acts in train mode only, as in the network itself), so that
    ``LayersAbove(net, l)(net.hidden(x)[l])`` equals ``net(x)`` in eval mode, and a loss on its
    output has no gradient for the layers at or below ``layer``.
    """

    def __init__(self, network: SigmoidMLP, layer: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(network.layers[layer + 1 :])
        self.out = network.out
        self.dropout = network.dropout

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        h = self.dropout(h.flatten(1))
        for layer in self.layers:
            h = self.dropout(torch.sigmoid(layer(h)))
        return self.out(h)


class AdversarialPoolTask(ZooClassifierTask):
    """Weight decay and pools of adversarial examples, one per layer of ``layers`` (Sec. 4.2).

    Schedule: no attack during the first ``warmup_epochs`` epochs (an untrained network's
    adversarial examples are just other digits); from then on, before every ``refresh_every``-th
    step, each pool gets new examples: ``refresh_size`` random training images, each with one
    random wrong target, are attacked at that layer by
    :func:`~nnprobe.engines.lbfgs.minimal_adversarial_lbfgs` (keyword arguments ``attack``)
    against the network as it is at that step. The successes are appended with the images'
    *true* labels; a full pool drops its oldest examples first (FIFO), so it holds the
    ``pool_size`` newest.

    Each step's loss is the mean cross-entropy over the clean mini-batch and, from every
    non-empty pool, ``round(pool_fraction * batch_size / len(layers))`` examples drawn at random
    (the clean images go through the whole network; the examples of pool ``l`` through the
    layers above ``l``, :class:`LayersAbove`), plus :meth:`penalty`. With ``layers=("input",)``
    this is input-only adversarial training. Every draw comes from the epoch's generator; the
    pools and the step counters are saved in the checkpoint, so a resumed job continues the
    same pools. ``recipe`` are :class:`~nnprobe.studies.adversarial.training.ZooClassifierTask`'s
    keyword arguments (weight decay, batch size, learning rate, data order).

    ``max_distortion`` (one cap per layer of ``layers``, RMS in the layer's units, or None)
    keeps out the examples farther than their layer's cap; ``recompute`` draws a hidden layer's
    examples as ``clip(h_l(source) + perturbation, 0, 1)`` with the current lower layers (see
    the module's docstring). ``monitor`` (a :class:`~.monitor.TrainingMonitor`) gets a row
    after every refresh: per pool its size, the mean distortion of what it holds and of what
    the refresh added, the counts below, the mean uses per example so far, and the clean
    training error.

    :attr:`pools` maps each layer's name (``"input"``, ``"0"``, ...) to a dict of ``examples``,
    ``perturbations`` (example minus its source's activation when made), ``labels`` (true),
    ``targets``, ``sources`` (training image index) and ``made`` (the step that made it),
    oldest first; the counts ``generated`` / ``failed`` of attacked images whose attack reached
    / did not reach its target (images already in the target class count in neither),
    ``capped`` (reached it beyond the cap, not kept) and ``drawn`` (examples drawn into
    batches); ``distortions`` (RMS distortion, in the layer's units, of every example kept)
    and ``held_distortions`` (of the examples the pool holds).
    """

    def __init__(self, network: nn.Module, images: torch.Tensor, labels: torch.Tensor, *,
                 layers: Sequence[str | int] = (INPUT,), pool_size: int, refresh_every: int, refresh_size: int,
                 pool_fraction: float = 0.5, warmup_epochs: int = 1, attack: Mapping[str, Any] | None = None,
                 num_classes: int = 10, max_distortion: Sequence[float] | None = None, recompute: bool = False,
                 monitor: TrainingMonitor | None = None, **recipe: Any) -> None:
        if pool_size < 1 or refresh_every < 1 or refresh_size < 1:
            raise ValueError(f"pool_size, refresh_every and refresh_size must be >= 1, got {pool_size}, "
                             f"{refresh_every}, {refresh_size}")
        if not 0 < pool_fraction <= 1:
            raise ValueError(f"pool_fraction must be in (0, 1] (pool examples per clean example), got {pool_fraction}")
        if isinstance(warmup_epochs, bool) or not isinstance(warmup_epochs, int) or warmup_epochs < 0:
            raise ValueError(f"warmup_epochs must be an integer >= 0 (epochs before the first attack), "
                             f"got {warmup_epochs!r}")
        super().__init__(network, images, labels, **recipe)
        self.layers = pool_layers(network, layers)
        if max_distortion is not None:
            caps = [float(c) for c in max_distortion]
            if len(caps) != len(self.layers) or any(not c > 0 for c in caps):
                raise ValueError(f"max_distortion must hold one cap > 0 per layer of layers {list(layers)}, got "
                                 f"{list(max_distortion)}")
            self.max_distortion = dict(zip(self.layers, caps))
        else:
            self.max_distortion = None
        self.recompute = bool(recompute)
        self.monitor = monitor
        self.pool_size, self.refresh_every, self.refresh_size = pool_size, refresh_every, refresh_size
        self.per_pool = max(1, round(pool_fraction * self.batch_size / len(self.layers)))
        self.warmup_epochs = warmup_epochs
        self.attack = dict(attack or {})
        self.num_classes = num_classes
        self.epoch = 0
        self.step = 0  # optimizer steps taken
        self.attack_steps = 0  # optimizer steps taken after the warm-up
        # The modules above each hidden layer share the network's parameters; kept out of the
        # submodules so that state dicts stay those of the network.
        self.__dict__["above_modules"] = {
            name: LayersAbove(network, int(name)) for name in self.layers if name != INPUT}
        self.pools: dict[str, dict[str, Any]] = {name: self._empty(name) for name in self.layers}

    def _empty(self, name: str) -> dict[str, Any]:
        width = tuple(self.images.shape[1:]) if name == INPUT else (self.network.layers[int(name)].out_features,)
        dtype = self.images.dtype if self.images.is_floating_point() else torch.get_default_dtype()
        empty = self.labels[:0].clone()
        none = torch.zeros((0, *width), dtype=dtype, device=self.images.device)
        return {"examples": none, "perturbations": none.clone(), "labels": empty, "targets": empty.clone(),
                "sources": empty.clone(), "made": empty.clone(), **dict.fromkeys(_COUNTS, 0),
                "distortions": torch.zeros(0, dtype=torch.float64),
                "held_distortions": torch.zeros(0, dtype=torch.float64)}

    # --- the layers of the network

    def above(self, name: str) -> nn.Module:
        """The network from layer ``name`` up (the whole network for the input)."""
        return self.network if name == INPUT else self.above_modules[name]

    @torch.no_grad()
    def activations(self, name: str, x: torch.Tensor) -> torch.Tensor:
        """Layer ``name``'s activations of the images ``x`` (the pixels themselves for the input)."""
        if name == INPUT:
            return x
        was_training = self.network.training
        self.network.eval()
        try:
            return self.network.hidden(x)[int(name)]
        finally:
            self.network.train(was_training)

    # --- the pools

    def refresh(self) -> None:
        """Attack ``refresh_size`` random training images at every layer; add the successes (FIFO)."""
        g, device = self.generator, self.images.device
        if g is None:
            raise RuntimeError("refresh() draws from the epoch's generator: call train_batches(epoch) first")
        added = {}
        for name in self.layers:
            pool = self.pools[name]
            idx = torch.randperm(self.images.shape[0], generator=g, device=device)[: self.refresh_size]
            shift = torch.randint(1, self.num_classes, (idx.numel(),), generator=g, device=device)
            target = (self.labels[idx] + shift) % self.num_classes
            h = self.activations(name, self.inputs(idx)[0])
            res = minimal_adversarial_lbfgs(self.above(name), h, target, **self.attack)
            # An example the network already puts in the target class comes back unchanged: none.
            reached = res.success & (res.distortion > 0)
            keep = reached
            if self.max_distortion is not None:
                keep = reached & (res.distortion <= self.max_distortion[name])
            pool["generated"] += int(keep.sum())
            pool["failed"] += int((~res.success).sum())
            pool["capped"] += int((reached & ~keep).sum())
            kept_d = res.distortion[keep].double().cpu()
            pool["distortions"] = torch.cat([pool["distortions"], kept_d])
            made = torch.full((int(keep.sum()),), self.step, dtype=torch.long, device=device)
            examples = res.adversarial[keep].to(pool["examples"].dtype)
            new = {"examples": examples, "perturbations": examples - h[keep].to(examples.dtype),
                   "labels": self.labels[idx][keep], "targets": target[keep], "sources": idx[keep], "made": made}
            for key in _SAVED:  # oldest first: a full pool drops its oldest examples
                pool[key] = torch.cat([pool[key], new[key]])[-self.pool_size :]
            pool["held_distortions"] = torch.cat([pool["held_distortions"], kept_d])[-self.pool_size :]
            added[name] = kept_d
        self.network.train()  # the attack evaluates the network in eval mode
        if self.monitor is not None:
            self.monitor.record(self.network, self.images, self.labels, step=self.step, epoch=self.epoch,
                                epochs_done=self.step / self.steps_per_epoch(), **self._pool_state(added))
            self.network.train()

    def finish(self, epochs: int) -> None:
        """The monitor's last row, after the ``epochs`` epochs of training (nothing added)."""
        if self.monitor is not None:
            none = {name: torch.zeros(0, dtype=torch.float64) for name in self.layers}
            self.monitor.record(self.network, self.images, self.labels, step=self.step, epoch=int(epochs),
                                epochs_done=float(epochs), **self._pool_state(none))

    def _pool_state(self, added: Mapping[str, torch.Tensor]) -> dict[str, Any]:
        """Per pool: size, mean distortion held and added, counts and uses, for the monitor's row."""
        row: dict[str, Any] = {}
        for name, pool in self.pools.items():
            held, new = pool["held_distortions"], added[name]
            row.update({f"pool_{name}_size": len(pool["labels"]),
                        f"pool_{name}_mean_distortion": float(held.mean()) if held.numel() else float("nan"),
                        f"pool_{name}_added": int(new.numel()),
                        f"pool_{name}_added_mean_distortion": float(new.mean()) if new.numel() else float("nan"),
                        **{f"pool_{name}_{key}": pool[key] for key in _COUNTS},
                        f"pool_{name}_uses": pool["drawn"] / pool["generated"] if pool["generated"] else float("nan")})
        return row

    def pool_logits(self) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Logits and true labels of ``per_pool`` random examples of every non-empty pool."""
        logits, labels = [], []
        for name in self.layers:
            pool = self.pools[name]
            size = len(pool["labels"])
            if not size:
                continue
            draw = torch.randint(0, size, (self.per_pool,), generator=self.generator, device=self.images.device)
            pool["drawn"] += self.per_pool
            above = self.forward_network if name == INPUT else self.above(name)
            if self.recompute and name != INPUT:
                # The source's activation under the lower layers as they are now, plus its perturbation.
                h = self.activations(name, self.inputs(pool["sources"][draw])[0])
                examples = (h + pool["perturbations"][draw].to(h.dtype)).clamp(0, 1)
            else:
                examples = pool["examples"][draw]
            logits.append(above(examples.to(self.dtype)))
            labels.append(pool["labels"][draw])
        return logits, labels

    # --- what the engine calls

    def train_batches(self, epoch: int):
        self.epoch = int(epoch)
        return super().train_batches(epoch)

    def training_step(self, idx: torch.Tensor) -> Step:
        if self.epoch >= self.warmup_epochs:
            if self.attack_steps % self.refresh_every == 0:
                self.refresh()
            self.attack_steps += 1
        self.step += 1
        x, y = self.inputs(idx)
        clean = self.forward_network(x)
        logits, labels = self.pool_logits()
        loss = self.loss(torch.cat([clean, *logits]), torch.cat([y, *labels]))
        return Step(loss, examples=len(idx), correct=(clean.argmax(1) == y).sum())

    def get_extra_state(self) -> dict[str, Any]:
        state: dict[str, Any] = {"step": self.step, "attack_steps": self.attack_steps,
                                 "monitor": list(self.monitor.rows) if self.monitor is not None else []}
        for name, pool in self.pools.items():
            state.update({f"{name}.{key}": value for key, value in pool.items()})
        return state

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self.step, self.attack_steps = int(state["step"]), int(state["attack_steps"])
        if self.monitor is not None:
            self.monitor.rows = [dict(row) for row in state["monitor"]]
        device = self.images.device
        for name in self.layers:
            pool = {}
            for key in (*_SAVED, *_COUNTS, "distortions", "held_distortions"):
                value = state[f"{name}.{key}"]
                pool[key] = value.to(device) if key in _SAVED else value
            pool["distortions"] = pool["distortions"].cpu()
            pool["held_distortions"] = pool["held_distortions"].cpu()
            self.pools[name] = pool

    def summary(self) -> dict[str, Any]:
        """Per pool: examples held, generated, failed, capped, the mean distortion of those generated
        and the mean uses of an example (draws per example kept)."""
        out: dict[str, Any] = {}
        for name, pool in self.pools.items():
            d = pool["distortions"]
            out.update({f"pool_{name}_size": len(pool["labels"]), f"pool_{name}_generated": pool["generated"],
                        f"pool_{name}_failed": pool["failed"], f"pool_{name}_capped": pool["capped"],
                        f"pool_{name}_mean_distortion": float(d.mean()) if d.numel() else float("nan"),
                        f"pool_{name}_uses": pool["drawn"] / pool["generated"] if pool["generated"] else float("nan")})
        return out
