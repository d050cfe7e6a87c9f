"""Release version names: `<UTC date>.<sequence>-tax-<taxonomy version>`, e.g. `2026-12-01.3-tax-street-v1-ab12cd34`.

The sequence counts every version ever started for a dataset (1, 2, 3, ... across days), so
versions order by sequence alone and a clock that steps back cannot reorder them; the date and
the taxonomy version are there for people. A version is never reused: the next sequence is one
past the highest claimed or found under `releases/<dataset>/`, committed or not (claims.py), so
the keys an interrupted attempt left behind are skipped rather than overwritten.
"""

import datetime as dt
import re

VERSION_PATTERN = re.compile(r"^(\d{4}-\d{2}-\d{2})\.(\d+)-tax-([A-Za-z0-9._-]+)$")


def version_name(day: dt.date, sequence: int, taxonomy_version: str) -> str:
    return f"{day.isoformat()}.{sequence}-tax-{re.sub(r'[^A-Za-z0-9._-]+', '_', taxonomy_version)}"


def version_sequence(name: str) -> int | None:
    """The sequence of a version name, None for anything else (staging, pointers, strays)."""
    match = VERSION_PATTERN.match(name)
    return int(match.group(2)) if match else None
