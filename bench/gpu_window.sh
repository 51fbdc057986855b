#!/usr/bin/env bash
# One prepared GPU window (bench/gpu_window.py): the population job at K = 230 / 1,150 / 2,300,
# the ResNet-18 recipe, the L-BFGS attack rate, then paper-scale mislabel blocks while the
# budget lasts, each an evidence folder; at most --budget seconds (540) on one H200.
#
#   bash bench/gpu_window.sh --out "$OUT"            # on the device machine (sources .device-kit/activate)
#   bash bench/gpu_window.sh --dry --out /tmp/out    # the same steps on the CPU, tiny (CI)
#
# On the device, carry .device-kit (made by ../shared/tools/device-kit cifar10 mnist snakemake).
# PYTHON names the interpreter (default: python3 on the device; the one of .venv where there is one).
set -euo pipefail
# The budget counts from here: unpacking the kit (data, wheels) is part of the window.
export GPU_WINDOW_START="${GPU_WINDOW_START:-$(date +%s)}"
cd "$(dirname "${BASH_SOURCE[0]}")/.."
dry=0
for arg in "$@"; do [ "$arg" = "--dry" ] && dry=1; done
if [ "$dry" = 0 ] && [ -f .device-kit/activate ]; then
    # shellcheck disable=SC1091
    source .device-kit/activate
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
if [ -z "${PYTHON:-}" ]; then
    if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
exec "$PYTHON" bench/gpu_window.py "$@"
