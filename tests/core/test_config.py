"""Config checks: command-line strings coerced, every error names the key, value and what is allowed."""

from pathlib import Path

import pytest
import yaml

from nnprobe.core.config import ConfigError, check_config, coerce_strings, config_errors

SCHEMA = yaml.safe_load((Path(__file__).resolve().parents[2] / "config" / "schema.yaml").read_text())


def test_strings_from_the_command_line_become_numbers_where_the_schema_wants_them():
    config = {"mislabel": {"pairs_per_job": "23", "fraction": "0.25"}, "train": {"precision": "32-true"},
              "dataset": {"root": "null", "download": "false"}}
    coerce_strings(config, SCHEMA)
    assert config["mislabel"] == {"pairs_per_job": 23, "fraction": 0.25}
    assert config["train"]["precision"] == "32-true"  # a string key stays a string
    assert config["dataset"]["root"] == "null"  # root admits strings: not reinterpreted
    assert config["dataset"]["download"] is False
    check_config(config, SCHEMA)


def test_coercion_follows_schema_references():
    """adversarial.dataset is a $ref to the shared dataset definition."""
    config = {"adversarial": {"dataset": {"num_classes": "10", "download": "false"}, "attack": {"examples": "7"},
                              "noise_std": "[0.1, 0.2]"}}
    coerce_strings(config, SCHEMA)
    assert config["adversarial"]["dataset"] == {"num_classes": 10, "download": False}
    assert config["adversarial"]["attack"] == {"examples": 7}
    assert config["adversarial"]["noise_std"] == [0.1, 0.2]
    check_config(config, SCHEMA)
    with pytest.raises(ConfigError, match=r"adversarial\.dataset\.source: 'web' is not allowed"):
        check_config({"adversarial": {"dataset": {"source": "web"}}}, SCHEMA)
    with pytest.raises(ConfigError, match=r"adversarial\.models\.0"):
        check_config({"adversarial": {"models": ["FC10(5)"]}}, SCHEMA)


def test_the_shipped_configs_are_valid():
    root = Path(__file__).resolve().parents[2] / "config"
    for name in ("config.yaml", "demo.yaml"):
        assert config_errors(yaml.safe_load((root / name).read_text()), SCHEMA) == [], name


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"mislabel": {"fraction": 1.5}}, ["mislabel.fraction", "1.5", "maximum of 1"]),
        ({"bogus": 1}, ["unknown key(s) ['bogus']", "allowed keys are", "mislabel"]),
        ({"train": {"precison": "32-true"}}, ["config section train", "'precison'", "precision"]),
        ({"train": {"precision": "fp8"}}, ["train.precision", "'fp8'", "bf16-mixed"]),
        ({"dataset": {"source": "web"}}, ["dataset.source", "'web'", "image_folder"]),
        ({"mislabel": {"replicates": 1}}, ["mislabel.replicates", "minimum of 2"]),
        ({"train": {"epochs": "ten"}}, ["train.epochs", "'ten'", "integer"]),
    ],
)
def test_errors_name_key_value_and_what_is_allowed(config, expected):
    with pytest.raises(ConfigError) as info:
        check_config(config, SCHEMA)
    for fragment in expected:
        assert fragment in str(info.value)


def test_all_errors_are_reported_at_once():
    errors = config_errors({"bogus": 1, "mislabel": {"fraction": 0}}, SCHEMA)
    assert len(errors) == 2


def test_a_replaced_key_fails_naming_the_key_that_replaced_it():
    """noise.train.bf16 became noise.train.precision, the engine's vocabulary of every study."""
    with pytest.raises(ConfigError) as info:
        check_config({"noise": {"train": {"bf16": True, "epochs": 3}}}, SCHEMA)
    message = str(info.value)
    assert "config key noise.train.bf16 (True) was replaced: use noise.train.precision" in message
    assert "bf16: true is precision: bf16-mixed, bf16: false is precision: 32-true" in message
    assert "unknown key" not in message  # said once, as what to write instead
    with pytest.raises(ConfigError, match=r"(?s)noise\.train\.bf16.*\n  config key train\.epochs"):
        check_config({"noise": {"train": {"bf16": "false"}}, "train": {"epochs": 0}}, SCHEMA)  # every error at once
    check_config({"noise": {"train": {"precision": "bf16-mixed"}}}, SCHEMA)
    with pytest.raises(ConfigError, match=r"noise\.train\.precision: 'bf16' is not allowed; use one of \['32-true'"):
        check_config({"noise": {"train": {"precision": "bf16"}}}, SCHEMA)
