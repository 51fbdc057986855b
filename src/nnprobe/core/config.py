"""Configuration checks with messages that name the key, the value and what is allowed.

Used by ``rules/common.smk`` before Snakemake's ``validate`` fills the schema's defaults.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import jsonschema
import yaml

__all__ = ["ConfigError", "RENAMED_KEYS", "coerce_strings", "config_errors", "renamed_key_errors", "check_config"]

#: Keys that were replaced, and what to write instead: a config that still has one fails with
#: this sentence (not as an unknown key), so a user knows the new key at once.
RENAMED_KEYS = {
    "noise.train.bf16": (
        "noise.train.precision, in the engine's names as train.precision ('32-true', '64-true', 'bf16-mixed', "
        "'16-mixed'): bf16: true is precision: bf16-mixed, bf16: false is precision: 32-true"
    ),
}


class ConfigError(ValueError):
    """The configuration does not match config/schema.yaml."""


def _types(schema: Mapping[str, Any]) -> list[str]:
    types = schema.get("type", [])
    return [types] if isinstance(types, str) else list(types)


def _resolve(schema: Mapping[str, Any], root: Mapping[str, Any]) -> Mapping[str, Any]:
    """Follow a local ``$ref`` ("#/$defs/name") to the schema it names."""
    ref = schema.get("$ref")
    if not isinstance(ref, str) or not ref.startswith("#/"):
        return schema
    target: Any = root
    for part in ref[2:].split("/"):
        target = target[part]
    return target


def coerce_strings(config: dict, schema: Mapping[str, Any], root: Mapping[str, Any] | None = None) -> None:
    """Parse strings as YAML scalars where the schema expects no string, in place.

    Snakemake's ``--config key={"a": 23}`` passes nested values as strings ("23"); a key
    whose schema admits no string gets the YAML reading of it (23, 1.5, true, null).
    """
    root = schema if root is None else root
    for key, sub in schema.get("properties", {}).items():
        if key not in config:
            continue
        sub = _resolve(sub, root)
        value = config[key]
        if isinstance(value, dict):
            coerce_strings(value, sub, root)
        elif isinstance(value, str) and _types(sub) and "string" not in _types(sub):
            config[key] = yaml.safe_load(value)
        elif isinstance(value, str) and "anyOf" in sub:  # e.g. a number or "auto": the YAML reading if it fits
            parsed = yaml.safe_load(value)
            if not isinstance(parsed, str) and jsonschema.Draft202012Validator(sub).is_valid(parsed):
                config[key] = parsed


def _describe(error: jsonschema.ValidationError) -> str:
    path = ".".join(str(p) for p in error.absolute_path) or "(top level)"
    schema = error.schema
    if error.validator == "additionalProperties":
        allowed = sorted(schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed))
        where = f"config section {path}" if error.absolute_path else "config"
        return f"{where}: unknown key(s) {extra}; allowed keys are {allowed}"
    if error.validator == "enum":
        return f"config key {path}: {error.instance!r} is not allowed; use one of {schema['enum']}"
    hint = f" ({schema['description'].strip()})" if isinstance(schema.get("description"), str) else ""
    return f"config key {path}: {error.message}{hint}"


def config_errors(config: Mapping[str, Any], schema: Mapping[str, Any]) -> list[str]:
    """Every way ``config`` breaks ``schema``, one readable sentence each."""
    validator = jsonschema.Draft202012Validator(schema)
    return [_describe(e) for e in sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))]


def _section(config: Mapping[str, Any], dotted: str) -> tuple[Any, str]:
    """The mapping that holds the last part of ``dotted`` (None where a parent is missing), and that part."""
    *parents, last = dotted.split(".")
    section: Any = config
    for part in parents:
        section = section.get(part) if isinstance(section, Mapping) else None
    return (section if isinstance(section, Mapping) else None), last


def renamed_key_errors(config: Mapping[str, Any]) -> list[str]:
    """One sentence for every replaced key (:data:`RENAMED_KEYS`) that ``config`` still sets."""
    errors = []
    for dotted, instead in RENAMED_KEYS.items():
        section, last = _section(config, dotted)
        if section is not None and last in section:
            errors.append(f"config key {dotted} ({section[last]!r}) was replaced: use {instead}")
    return errors


def check_config(config: dict, schema: Mapping[str, Any]) -> None:
    """Coerce command-line strings, then raise :class:`ConfigError` listing every problem (a
    replaced key by the key that replaced it)."""
    coerce_strings(config, schema)
    errors = renamed_key_errors(config)
    rest = copy.deepcopy(config)
    for dotted in RENAMED_KEYS:
        section, last = _section(rest, dotted)
        if section is not None:
            section.pop(last, None)
    errors += config_errors(rest, schema)
    if errors:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(errors))
