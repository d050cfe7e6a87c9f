"""Validators for config values: each names where the value sits in its file when it is wrong."""

from typing import Any

from segpipe.core.shared.errors import ConfigError


def section(doc: Any, where: str, keys: set[str], optional: frozenset[str] | set[str] = frozenset()) -> dict:
    if not isinstance(doc, dict):
        raise ConfigError(f"{where}: expected a mapping with keys {sorted(keys)}")
    missing, unknown = keys - set(doc), set(doc) - keys - set(optional)
    problems = ([f"missing keys {sorted(missing)}"] if missing else []) + ([f"unknown keys {sorted(unknown)}"] if unknown else [])
    if problems:
        raise ConfigError(f"{where}: {'; '.join(problems)}")
    return doc


def fraction(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
        raise ConfigError(f"{where}: must be a number in [0, 1], got {value!r}")
    return float(value)


def count(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{where}: must be a non-negative integer, got {value!r}")
    return value


def non_negative(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < float("inf"):
        raise ConfigError(f"{where}: must be a non-negative number, got {value!r}")
    return float(value)


def column_name(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}: must be a column name, got {value!r}")
    return value
