"""Szegedy et al. (2013), Table 4: which magnified examples does their own model classify right again?

Run in the run's working directory (/work/wt/issue-19), on its examples and weights (a few CPU seconds):
    cd /work/wt/issue-19 && PYTHONPATH=src python PATH/TO/docs/runs/2026-12-03-adversarial-mnist-cpu-tables/magnification_check.py
Output on 2026-12-03 (665ab91):
    p1/fc100-100-10: n=978 min. distortion > 0.1 (shrunk): 63; right again at RMS 0.1: 57, of them shrunk: 57
    p1/fc123-456-10: n=973 min. distortion > 0.1 (shrunk): 79; right again at RMS 0.1: 73, of them shrunk: 73
    p2/fc100-100-10: n=979 min. distortion > 0.1 (shrunk): 91; right again at RMS 0.1: 80, of them shrunk: 80
"""

import numpy as np
import torch

from nnprobe.core.splits import load_split
from nnprobe.engines.lbfgs import rms_distortion
from nnprobe.models import load_model
from nnprobe.studies.adversarial.design import unit_pixels
from nnprobe.studies.adversarial.records import adversarial_rows, load_examples
from nnprobe.studies.adversarial.transfer import magnify_to_rms

torch.set_num_threads(1)
test = load_split("results/adversarial/data/test.npz")
for part in ["p1/fc100-100-10", "p1/fc123-456-10", "p2/fc100-100-10"]:
    ex = load_examples(f"results/adversarial/examples/{part}.npz")
    net = load_model(f"results/adversarial/models/{part}.safetensors", "cpu")[0].eval()
    ok = adversarial_rows(ex)
    adv = torch.from_numpy(np.asarray(ex["adversarial"])[ok])
    y = torch.from_numpy(np.asarray(ex["label"])[ok])
    x = unit_pixels(test.images[np.asarray(ex["index"])[ok]], "cpu")
    d = rms_distortion(adv, x)
    with torch.no_grad():
        right = net(magnify_to_rms(adv, x, 0.1)).argmax(1) == y
    shrunk = d > 0.1
    print(f"{part}: n={int(ok.sum())} min. distortion > 0.1 (shrunk): {int(shrunk.sum())}; right again at RMS 0.1: "
          f"{int(right.sum())}, of them shrunk: {int((right & shrunk).sum())}")
