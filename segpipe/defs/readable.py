"""How one value reads in the Dagster UI: numbers to 4 significant digits (shares as percentages),
no Python literals, content hashes cut to their first 12 characters. Every metadata table and value
of the assets and checks goes through here (see defs/metadata.py), so the UI reads alike everywhere."""

import re
from collections.abc import Mapping
from typing import Any

import numpy as np

SIGNIFICANT_DIGITS = 4
HASH_SHOWN = 12  # characters of a 64-character content hash a table shows; the file name beside it says which
MISSING = "-"
_HASH = re.compile(r"[0-9a-f]{64}")


def significant(value: float) -> float:
    """`value` rounded to 4 significant digits, still a number (for FloatMetadataValue and JSON)."""
    return float(f"{value:.{SIGNIFICANT_DIGITS}g}") if np.isfinite(value) else value


def number_text(value: float) -> str:
    """4 significant digits, never in scientific notation: 0.9582, 265.7, 0.0000272, 12350."""
    if not np.isfinite(value):
        return str(value)
    return np.format_float_positional(value, precision=SIGNIFICANT_DIGITS, unique=False, fractional=False, trim="-")


def percent_text(share: float) -> str:
    """A share (0..1) as a percentage to 4 significant digits: 0.2832 -> 28.32%."""
    return f"{number_text(share * 100)}%"


def short_hash(text: str) -> str:
    """A 64-character content hash cut to its first 12 characters; any other text as it is (a hash
    inside a link or a message stays whole, so the link still leads to its object)."""
    return text[:HASH_SHOWN] if _HASH.fullmatch(text) else text


def cell_text(value: Any, percent: bool = False) -> str:
    """One table cell as text: None as '-', booleans as yes/no, floats rounded (or as a percentage where
    the column is a share), lists joined with commas, hashes shortened; never a Python literal."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return MISSING
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float | int) and percent:
        return percent_text(value)
    if isinstance(value, float):
        return number_text(value)
    if isinstance(value, list | tuple):
        return ", ".join(cell_text(item, percent) for item in value)
    if isinstance(value, Mapping):
        return ", ".join(f"{key}: {cell_text(item, percent)}" for key, item in value.items())
    return short_hash(str(value)).replace("|", "/").replace("\n", " ")


def plain_value(value: Any) -> Any:
    """A JSON-able value with every float rounded to 4 significant digits, for MetadataValue.json."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, float):
        return significant(value)
    if isinstance(value, Mapping):
        return {key: plain_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain_value(item) for item in value]
    return value


def percentages(shares: Mapping[str, float]) -> dict[str, str]:
    """Shares by name as percentages, for a JSON value such as the split proportions."""
    return {name: percent_text(share) for name, share in shares.items()}
