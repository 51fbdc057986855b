"""Tables of the noise study (nnprobe.studies.noise.tables): per network and across networks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nnprobe.studies.noise import tables as noise


def test_probe_tables_of_one_network():
    rng = np.random.default_rng(0)
    k, d = 3, 4
    labels = np.repeat(np.arange(k), 20)
    features = rng.normal(size=(60, d)) + np.eye(k, d)[labels] * 3
    weight, bias = np.eye(k, d) * 2, np.array([0.0, 0.0, 5.0])
    noise_features = rng.normal(size=(30, d)) * 0.1
    probes = {"gaussian": (noise_features @ weight.T + bias, noise_features)}
    groups, distances, mst = noise.probe_tables(features @ weight.T + bias, features, labels, ["a", "b", "c"],
                                                ["a", "b", "c"], probes, weight, bias)
    g = groups.set_index("group")
    assert list(g.index) == ["a", "b", "c", "gaussian"]
    assert g.loc["gaussian", "dominant_name"] == "c" and g.loc["gaussian", "bias_predicts_dominant"]
    assert g.loc["gaussian", "pred_c"] == 1.0 and np.isnan(g.loc["a", "auroc"])
    assert 0 <= g.loc["gaussian", "auroc"] <= 1
    assert len(distances) == 4 * 3 and set(distances["kind_a"]) == {"class", "noise"}
    assert len(mst) == 3 and (mst["noise_set"] == "gaussian").all()


def test_tables_across_networks():
    rows = []
    for model, dom in (("s0", 1), ("s1", 1), ("s2", 0)):
        for group, kind in (("a", "class"), ("b", "class"), ("c", "class"), ("gaussian", "noise")):
            shares = {"pred_a": 0.0, "pred_b": 0.0, "pred_c": 0.0}
            if kind == "noise":
                shares["pred_" + "abc"[dom]] = 1.0
            rows.append({"source": "resnet18", "model": model, "group": group, "kind": kind, **shares,
                         "dominant": dom, "dominant_name": "abc"[dom], "dominant_fraction": 1.0,
                         "mean_confidence": 0.9, "auroc": 0.7 if kind == "noise" else np.nan,
                         "bias_predicts_dominant": dom == 1, "feature_mean_distance": {"a": 1, "b": 2, "c": 3}.get(group, 0),
                         "feature_participation_ratio": {"a": 3, "b": 2, "c": 1}.get(group, 0)})
    groups = pd.DataFrame(rows)
    agree = noise.agreement_table(groups).iloc[0]
    assert agree["mode_name"] == "b" and agree["mode_fraction"] == pytest.approx(2 / 3) and not agree["all_same"]
    assert agree["bias_predicts_dominant"] == pytest.approx(2 / 3)
    inputs = pd.DataFrame({"class": [0, 1, 2], "group": ["a", "b", "c"], "input_mean_distance": [1.0, 3, 2],
                           "input_participation_ratio": [1.0, 2, 3]})
    clutter = noise.clutter_table(groups, inputs)
    assert clutter.set_index("group").loc["b", "attraction_gaussian"] == pytest.approx(2 / 3)
    corr = noise.clutter_correlations(clutter).set_index("measure")
    assert corr.loc["feature_mean_distance", "most_cluttered"] == "c"
    assert corr.loc["input_mean_distance", "most_cluttered_attracts"]  # b: most cluttered and most attracting

    binary = groups.assign(source="resnet18_binary")
    table = noise.binary_table(binary, "b").set_index("group")
    assert table.loc["gaussian", "mean"] == pytest.approx(2 / 3) and table.loc["gaussian", "models"] == 3
    assert table.loc["gaussian", "min"] == 0 and table.loc["a", "max"] == 0
    with pytest.raises(ValueError, match="binary_classes"):
        noise.binary_table(binary, "cat")


def _class_rows(source, model, shares_of_own_class, outputs=("a", "b", "c"), n=100):
    """Probe-table rows of one network: each class group predicted as its own class at the given share."""
    rows = []
    for group, own in zip("abc", shares_of_own_class):
        shares = {f"pred_{o}": (own if o == group else (1 - own) / (len(outputs) - 1)) for o in outputs}
        rows.append({"source": source, "model": model, "group": group, "kind": "class", "n": n, **shares})
    rows.append({"source": source, "model": model, "group": "gaussian", "kind": "noise", "n": 50,
                 **{f"pred_{o}": 1.0 / len(outputs) for o in outputs}})
    return rows


def test_network_accuracy_and_chance_from_the_probe_table():
    groups = pd.DataFrame(_class_rows("resnet18", "seed0", [0.9, 0.8, 0.7])
                          + _class_rows("resnet18", "seed1", [0.4, 0.3, 0.2]))
    # a binary network: outputs a and b only; class c's images count for nothing
    binary = _class_rows("resnet18_binary", "seed0", [0.9, 0.5, 0.0], outputs=("a", "b"))
    for row in binary:
        row.setdefault("pred_c", np.nan)
    groups = pd.concat([groups, pd.DataFrame(binary)], ignore_index=True)
    acc = noise.network_accuracy(groups).set_index(["source", "model"])
    assert acc.loc[("resnet18", "seed0"), "accuracy"] == pytest.approx(0.8)
    assert acc.loc[("resnet18", "seed1"), "accuracy"] == pytest.approx(0.3)
    assert acc.loc[("resnet18_binary", "seed0"), "accuracy"] == pytest.approx(0.7)
    assert acc.loc[("resnet18_binary", "seed0"), "outputs"] == 2
    # 10% of the way from chance: 0.4 for 3 classes, 0.55 for 2
    assert not acc.loc[("resnet18", "seed0"), "at_chance"] and acc.loc[("resnet18", "seed1"), "at_chance"]
    assert not acc.loc[("resnet18_binary", "seed0"), "at_chance"]


def test_a_network_at_chance_is_left_out_of_every_table():
    groups = pd.DataFrame(_class_rows("resnet18", "seed0", [0.9, 0.8, 0.7])
                          + _class_rows("resnet18", "seed1", [0.34, 0.33, 0.33]))
    distances = pd.DataFrame({"source": ["resnet18", "resnet18"], "model": ["seed0", "seed1"], "distance": [0.1, 0.2]})
    kept = noise.without_networks_at_chance({"groups": groups, "distances": distances},
                                            noise.network_accuracy(groups))
    assert set(kept["groups"]["model"]) == {"seed0"} and len(kept["groups"]) == 4
    assert kept["distances"]["model"].tolist() == ["seed0"]
