"""JSON parsing for untrusted annotation files.

Python's json accepts NaN and Infinity, turns 1e400 into inf and keeps the last of duplicate
keys; each of those lets corrupt data through silently, so all are refused here.
"""

import json
from typing import Any

from segpipe.core.shared.errors import InputError
from segpipe.core.shared.quarantine_rules import FILE_TOO_LARGE, UNPARSEABLE_ANNOTATIONS

MAX_JSON_BYTES = 512 * 1024 * 1024


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    doc = dict(pairs)
    if len(doc) != len(pairs):
        seen: set[str] = set()
        duplicate = next(key for key, _ in pairs if key in seen or seen.add(key))
        raise ValueError(f"duplicate key {duplicate!r}")
    return doc


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"number {text[:40]} overflows a double")
    return value


def load_json(data: bytes, origin: str) -> Any:
    """Parse strictly, or raise InputError("unparseable_annotations") naming the file and the problem."""
    if len(data) > MAX_JSON_BYTES:
        raise InputError(FILE_TOO_LARGE, f"{origin}: {len(data)} bytes exceeds the {MAX_JSON_BYTES}-byte JSON limit")
    try:
        text = data.decode("utf-8-sig")
        return json.loads(
            text, parse_constant=_refuse_constant, object_pairs_hook=_refuse_duplicates, parse_float=_finite_float)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise InputError(UNPARSEABLE_ANNOTATIONS, f"{origin}: not valid JSON: {exc}") from exc
