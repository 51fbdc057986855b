"""Benchmark: the minimal L-BFGS attack with scipy's L-BFGS-B against the batched torch solver.

Times :func:`nnprobe.engines.lbfgs.minimal_adversarial_lbfgs` with ``solver="scipy"`` (one
L-BFGS-B run over each batch, on the CPU, gradients on the device) and ``solver="torch"``
(:func:`nnprobe.engines.box_lbfgs.box_lbfgs`: every example its own problem, all on the
device) on the same (image, target) pairs and the same network, a sigmoid MLP trained here on
scikit-learn's 8x8 digits (``--size 28`` upsamples them to MNIST's 28x28 = 784 pixels). It
prints the seconds of each, their ratio, and the mean RMS distortions, success counts and
per-example differences of the two answers. The two solvers alternate ``--repeats`` times
and the median seconds are printed, so a slow moment of the machine hits both.

    python bench/lbfgs.py                                    # CPU, small: about a minute on 2 cores
    python bench/lbfgs.py --problems 900 --size 28 --hidden 100 100 --device cuda
    python bench/lbfgs.py --problems 900 --idx $NNPROBE_DATA/MNIST/raw --hidden 100 100 --solvers torch   # real MNIST
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import time
from functools import partial
from pathlib import Path

import torch
from threadpoolctl import threadpool_limits
from torch.nn import functional as F

from nnprobe.engines.classifier import ClassifierTask
from nnprobe.engines.lbfgs import DEFAULT_C_GRID, minimal_adversarial_lbfgs
from nnprobe.engines.training import OptimizerSpec, TrainOptions, fit
from nnprobe.models.szegedy import fc_sigmoid


def digits(size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The 8x8 digits as pixels in [0, 1] (bilinearly resized to size x size), split 1400 / 397."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.tensor(bunch.data / 16.0, dtype=torch.float32).view(-1, 1, 8, 8)
    if size != 8:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False).clamp(0, 1)
    x, y = x.flatten(1), torch.tensor(bunch.target, dtype=torch.int64)
    perm = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(0))
    return x[perm[:1400]], y[perm[:1400]], x[perm[1400:]], y[perm[1400:]]


def mnist(root: str, train_images: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """MNIST from its idx files (pixels in [0, 1], flattened): the first ``train_images`` training
    images and all 10,000 test images. Needs no scikit-learn (the device image has none)."""
    from nnprobe.core.sources import load_dataset

    splits, _ = load_dataset("idx", root=Path(root))

    def flat(split, n=None):
        return (torch.from_numpy(split.images[:n]).flatten(1).float() / 255, torch.from_numpy(split.labels[:n]))

    return (*flat(splits["train"], train_images), *flat(splits["test"]))


def problems(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """n (image, random wrong target) pairs over the correctly classified images, cycling through them."""
    with torch.no_grad():
        right = torch.nonzero(model(x).argmax(1) == y).flatten()
    idx = right[torch.arange(n) % right.numel()]
    g = torch.Generator().manual_seed(0)
    return x[idx], (y[idx] + torch.randint(1, 10, (n,), generator=g)) % 10


def timed(fn, device: torch.device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    started = time.perf_counter()
    out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - started, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--problems", type=int, default=48, help="(image, target) pairs attacked")
    parser.add_argument("--size", type=int, default=8, help="image side: 8 (the digits) or e.g. 28 (MNIST's size)")
    parser.add_argument("--idx", help="a folder of MNIST's idx files: real MNIST instead of the digits (--size 28)")
    parser.add_argument("--train-images", type=int, default=10000, help="with --idx: training images of the MLP")
    parser.add_argument("--hidden", type=int, nargs="*", default=[32], help="hidden layer widths of the MLP")
    parser.add_argument("--epochs", type=int, default=25)
    parser.add_argument("--max-iter", type=int, default=100)
    parser.add_argument("--bisection-steps", type=int, default=8)
    parser.add_argument("--grid", type=int, default=len(DEFAULT_C_GRID), help="first values of DEFAULT_C_GRID")
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=1, help="the solvers alternate this many times")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--blas-threads", type=int, default=1, help="BLAS threads (scipy's L-BFGS-B)")
    parser.add_argument("--solvers", nargs="+", choices=["scipy", "torch"], default=["scipy", "torch"],
                        help="the solvers timed (both: their ratio and agreement too)")
    parser.add_argument("--json", help="also write each solver's seconds, problems/s and results here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    logging.getLogger("nnprobe").setLevel(logging.WARNING)
    device = torch.device(args.device)

    if args.idx:
        args.size = 28
        x_train, y_train, x_test, y_test = mnist(args.idx, args.train_images)
    else:
        x_train, y_train, x_test, y_test = digits(args.size)
    model = fc_sigmoid(tuple(args.hidden), num_inputs=args.size**2, generator=torch.Generator().manual_seed(1))
    task = ClassifierTask(model, x_train, y_train, batch_size=64, order_seed=2, optimizer=OptimizerSpec("adam", lr=1e-2))
    fit(task, TrainOptions(epochs=args.epochs, device="cpu", progress=False))
    model.eval()
    with torch.no_grad():
        accuracy = float((model(x_test).argmax(1) == y_test).float().mean())
    x, target = problems(model, x_test, y_test, args.problems)
    model, x, target = model.to(device), x.to(device), target.to(device)
    attack = {"c_grid": DEFAULT_C_GRID[: args.grid], "max_iter": args.max_iter,
              "bisection_steps": args.bisection_steps, "batch_size": args.batch_size}
    name = f"{args.device}" + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else "")
    print(f"device {name}, torch {torch.__version__}, {args.threads} torch thread(s), {args.blas_threads} BLAS thread(s)")
    print(f"MLP {args.size**2}-{'-'.join(map(str, args.hidden))}-10 (sigmoid), test accuracy {accuracy:.3f}; "
          f"{args.problems} (image, target) pairs; {attack}\n", flush=True)

    seconds: dict[str, list[float]] = {solver: [] for solver in args.solvers}
    results = {}
    with threadpool_limits(args.blas_threads):
        for _ in range(args.repeats):
            for solver, times in seconds.items():
                s, results[solver] = timed(partial(minimal_adversarial_lbfgs, model, x, target, solver=solver, **attack),
                                           device)
                times.append(s)
                print(f"  {solver}: {s:.2f} s", flush=True)

    summary = {solver: {"seconds": statistics.median(times), "problems_per_s": args.problems / statistics.median(times),
                        "successes": int(results[solver].success.sum()),
                        "mean_rms_distortion": float(results[solver].distortion[results[solver].success].mean())}
               for solver, times in seconds.items()}
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"device": name, "problems": args.problems, "mlp": [args.size**2, *args.hidden, 10],
                       "test_accuracy": accuracy, "attack": attack, "solvers": summary}, out, indent=1)
    if len(seconds) == 1:
        solver, row = next(iter(summary.items()))
        print(f"{solver}: {row['seconds']:.2f} s, {row['problems_per_s']:.1f} problems/s, "
              f"{row['successes']}/{args.problems} successes, mean RMS distortion {row['mean_rms_distortion']:.5f}")
        return
    sp, tr = results["scipy"], results["torch"]
    both = sp.success & tr.success
    rel = ((tr.distortion - sp.distortion).abs() / sp.distortion)[both]
    print(f"\n{'solver':8s} {'seconds':>9s} {'success':>9s} {'mean RMS distortion':>20s}")
    for solver, res in results.items():
        ok = res.success
        print(f"{solver:8s} {statistics.median(seconds[solver]):9.2f} {int(ok.sum()):>5d}/{ok.numel():<3d} "
              f"{float(res.distortion[both].mean()):20.5f}")
    ratio = statistics.median(seconds["scipy"]) / statistics.median(seconds["torch"])
    mean_rel = float(tr.distortion[both].mean() / sp.distortion[both].mean() - 1)
    print(f"\nscipy / torch seconds: {ratio:.2f}x; same success set: {bool(torch.equal(sp.success, tr.success))}; "
          f"mean distortion torch / scipy - 1: {mean_rel:+.2e}; per example |torch - scipy| / scipy: "
          f"mean {float(rel.mean()):.2e}, max {float(rel.max()):.2e} (over the {int(both.sum())} successes of both)")


if __name__ == "__main__":
    main()
