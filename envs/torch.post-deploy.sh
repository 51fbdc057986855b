#!/usr/bin/env bash
# Snakemake (--use-conda) runs this inside the env of the yaml file of the same name, right
# after creating it. It installs the nnprobe package from this checkout, editable (the env
# follows src/ without being rebuilt) and WITHOUT dependencies (the env holds exactly the
# packages pinned in the yaml; tests/test_envs.py checks that they cover the rules' imports).
# A `-e ..` line in the yaml's pip section cannot do this: Snakemake copies the yaml to
# .snakemake/conda/<hash>.yaml before conda reads it, so a relative path there points into
# .snakemake/, and pip would also pull every dependency of the package into every env.
# The checkout is $NNPROBE_ROOT (set by the workflow), else the working directory.
set -euo pipefail
root="${NNPROBE_ROOT:-$PWD}"
if ! grep -q '^name = "nnprobe"$' "$root/pyproject.toml" 2>/dev/null; then
    echo "nnprobe post-deploy: $root is not an nnprobe checkout (no pyproject.toml with" \
        'name = "nnprobe"); set NNPROBE_ROOT to the repository root' >&2
    exit 1
fi
python -m pip install --no-deps --editable "$root"
