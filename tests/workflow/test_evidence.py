"""Evidence folders from the demo, and the mislabel study rebuilt from them on the CPU.

The demo's per-model tables are split into two folders as if two GPU windows had trained half the
replicate blocks each; the rebuild from both (in either order) must give the workflow's tables
bit for bit, and must refuse a network present twice or folders of different experiments.
"""

from __future__ import annotations

import shutil
import subprocess
import sys

import pandas as pd
import pytest
import yaml

from nnprobe.evidence import rebuild, write_evidence

pytestmark = pytest.mark.slow

TABLES = [f"{kind}_{comparison}" for kind in ("welch", "information")
          for comparison in ("confused_vs_clean", "confused_vs_baseline", "clean_vs_baseline")]


@pytest.fixture(scope="module")
def evidence(demo_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("evidence") / "2026-12-01-mislabel-demo"
    return write_evidence("mislabel", demo_run, out, command="make demo", wall_seconds=12.5,
                          notes="The demo on the embedded digits.")


def split(evidence, folder, keep):
    """A copy of ``evidence`` that holds only the networks of its per-model table for which
    ``keep(table)`` is true (a row mask), as if another run had trained them."""
    (folder / "per_model").mkdir(parents=True)
    shutil.copyfile(evidence / "config.yaml", folder / "config.yaml")
    table = pd.read_parquet(evidence / "per_model" / "networks.parquet")
    table[keep(table)].to_parquet(folder / "per_model" / "networks.parquet", index=False)
    return folder


def test_evidence_folder_holds_what_the_run_shows(evidence, demo_run):
    readme = (evidence / "README.md").read_text()
    for expected in ("command: `make demo`", "commit: ", "device: CPU", "wall time of the run: 12.5 s",
                     "The demo on the embedded digits.", "## Job times", "mislabel/train_population/none/r0-3"):
        assert expected in readme
    assert sorted(p.name for p in (evidence / "per_model").iterdir()) == ["networks.parquet"]
    table = pd.read_parquet(evidence / "per_model" / "networks.parquet")
    trained = sorted(demo_run.glob("results/mislabel/networks/*/*/metrics.parquet"))
    assert table.groupby(["pair", "replicate"]).ngroups == len(trained) == 46 * 4
    assert sorted(p.stem for p in (evidence / "tables").glob("*.md")) == sorted(TABLES)
    assert len(list((evidence / "figures").glob("*.png"))) == 4
    assert yaml.safe_load((evidence / "config.yaml").read_text())["mislabel"]["replicates"] == 4
    size = sum(p.stat().st_size for p in evidence.rglob("*") if p.is_file())
    assert size < 5e6, f"an evidence folder should stay under ~5 MB, this one is {size / 1e6:.1f} MB"


def test_adversarial_evidence_holds_its_tables_and_training_records(demo_run, tmp_path):
    out = write_evidence("adversarial", demo_run, tmp_path / "2026-12-02-adversarial-demo", command="make demo")
    names = sorted(p.name for p in (out / "per_model").iterdir())
    assert "tables__zoo.parquet" in names and "training__adversarial_pool__0.json" in names
    assert "models__full__ae400-10.json" in names  # the zoo's training records (AE400-10's code activation)
    records = sorted(demo_run.glob("results/adversarial/training/*/*.json"))
    zoo = sorted(demo_run.glob("results/adversarial/models/*/*.json"))
    assert sum(name.endswith(".json") for name in names) == len(records) + len(zoo) and records and zoo
    assert "training__capped_pool__0.monitor.parquet" in names and "tables__paper_comparison.parquet" in names
    assert len(list((out / "figures").glob("*.png"))) == 8
    readme = (out / "README.md").read_text()
    assert "adversarial/attack_zoo_model/full" in readme and "rebuilding from evidence covers ['mislabel']" in readme
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    assert size < 5e6, f"an evidence folder should stay under ~5 MB, this one is {size / 1e6:.1f} MB"


def test_rebuild_from_two_folders_gives_the_workflows_tables(evidence, demo_run, tmp_path):
    first = split(evidence, tmp_path / "first", lambda t: t["replicate"] % 2 == 0)
    second = split(evidence, tmp_path / "second", lambda t: t["replicate"] % 2 == 1)
    out = rebuild("mislabel", [second, first], tmp_path / "rebuilt")
    tables = demo_run / "results" / "mislabel" / "tables"
    for name in ["per_model_class", *TABLES]:
        pd.testing.assert_frame_equal(pd.read_parquet(out / "tables" / f"{name}.parquet"),
                                      pd.read_parquet(tables / f"{name}.parquet"), check_exact=True)
    figures = sorted(p.name for p in (demo_run / "results" / "mislabel" / "figures").glob("*.p*"))
    assert sorted(p.name for p in (out / "figures").iterdir()) == figures


def test_rebuild_refuses_a_network_in_two_folders(evidence, tmp_path):
    again = split(evidence, tmp_path / "again", lambda t: t["pair"] == "none")
    with pytest.raises(ValueError, match=r"appear in more than one table"):
        rebuild("mislabel", [evidence, again], tmp_path / "rebuilt")


def test_rebuild_refuses_folders_of_different_experiments(evidence, tmp_path):
    other = split(evidence, tmp_path / "other", lambda t: t["pair"] == "none")
    first = split(evidence, tmp_path / "first", lambda t: t["pair"] != "none")
    config = yaml.safe_load((other / "config.yaml").read_text())
    config["dataset"]["root"] = "/elsewhere"  # where the data lay is not what defines the networks
    (other / "config.yaml").write_text(yaml.safe_dump(config))
    config["train"]["layout"] = "gemm"  # a speed key: the same networks on a GPU
    (other / "config.yaml").write_text(yaml.safe_dump(config))
    rebuild("mislabel", [first, other], tmp_path / "same")
    config["train"]["epochs"] += 1
    (other / "config.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(ValueError, match=r"another configuration .* \(differs in \['train.epochs'\]\)"):
        rebuild("mislabel", [first, other], tmp_path / "rebuilt")


def test_rebuild_command_says_what_is_not_evidence(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "nnprobe.evidence", "rebuild", "--to", str(tmp_path / "out"),
                           str(tmp_path)], capture_output=True, text=True, check=False)
    assert proc.returncode != 0
    assert "hold no config.yaml: not evidence folders" in proc.stderr


def test_write_says_how_to_make_a_missing_effective_config(tmp_path):
    (tmp_path / "run" / "results").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"snakemake results/config.yaml"):
        write_evidence("adversarial", tmp_path / "run", tmp_path / "out", command="snakemake adversarial")
    assert not (tmp_path / "out").exists()  # nothing half-written


def test_the_design_defines_the_networks():
    """mislabel.design is a network key: folders of the two designs are not combined; a config
    written before the key existed is of the independent design."""
    from nnprobe.evidence import network_config

    config = {"seed": 0, "dataset": {"source": "sklearn_digits"}, "model": {}, "train": {"epochs": 8},
              "mislabel": {"fraction": 0.5}}
    old = network_config(config, "mislabel")
    assert old["mislabel.design"] == "independent"
    assert network_config({**config, "mislabel": {"fraction": 0.5, "design": "independent"}}, "mislabel") == old
    assert network_config({**config, "mislabel": {"fraction": 0.5, "design": "paired"}}, "mislabel") != old


def test_rebuild_makes_the_paired_tables_of_paired_evidence(tmp_path):
    """Evidence of the paired design rebuilds the paired tables and figures beside the Welch ones."""
    import itertools

    import numpy as np

    rng = np.random.default_rng(0)
    rows = []
    for (a, b), r in itertools.product([(-1, -1), *itertools.combinations(range(4), 2)], range(3)):
        for c in range(4):
            acc = float(rng.uniform(0.6, 0.9))
            prob = np.full(4, (1 - acc) / 3)
            prob[c] = acc
            rows.append({"pair": "none" if a < 0 else f"{a}-{b}", "pair_a": a, "pair_b": b, "replicate": r,
                         "seed": r, "design": "paired", "class": c, "class_name": f"c{c}", "n_images": 100,
                         "accuracy": acc, "logloss_bits": -np.log2(acc),
                         **{f"pred_{j}": int(round(100 * prob[j])) for j in range(4)},
                         **{f"prob_{j}": float(prob[j]) for j in range(4)}})
    folder = tmp_path / "2026-12-07-mislabel-paired"
    (folder / "per_model").mkdir(parents=True)
    pd.DataFrame(rows).to_parquet(folder / "per_model" / "networks.parquet", index=False)
    (folder / "config.yaml").write_text(yaml.safe_dump(
        {"seed": 0, "dataset": {"source": "sklearn_digits"}, "model": {}, "train": {},
         "mislabel": {"fraction": 0.5, "design": "paired", "fdr_alpha": 0.05, "class_groups": {}}}))
    out = rebuild("mislabel", [folder], tmp_path / "rebuilt")
    for name in ("welch", "information", "paired", "paired_information"):
        assert (out / "tables" / f"{name}_confused_vs_clean.md").is_file(), name
    assert pd.read_parquet(out / "tables" / "paired_confused_vs_baseline.parquet")["test"].eq("paired t").all()
    for name in ("t_heatmap_clean_vs_baseline", "paired_t_heatmap_clean_vs_baseline",
                 "paired_information_heatmap_kl_bits"):
        assert (out / "figures" / f"{name}.png").is_file(), name
