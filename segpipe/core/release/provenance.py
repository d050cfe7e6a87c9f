"""Licence and provenance of a release's source batches, as their batch.json states them.

A release can mix batches delivered under different terms (a public dataset beside a vendor's
work); meta.json lists each source batch with its licence, origin and attribution, and the
datasheet says so when the licences differ, so whoever uses a release knows which terms apply to
which images.
"""

from collections.abc import Mapping
from dataclasses import asdict, dataclass

import orjson
import polars as pl

NOT_STATED = "not stated"


@dataclass(frozen=True)
class BatchProvenance:
    source: str | None
    licence: str | None
    origin: str | None
    attribution: str | None


def batch_provenance(images: pl.DataFrame) -> dict[str, BatchProvenance]:
    """Per batch of `images` (batch_images), what its batch.json states (the same on every row of a batch)."""
    columns = ("batch_id", "source", "licence", "origin", "attribution")
    return {batch: BatchProvenance(source, licence, origin, attribution)
            for batch, source, licence, origin, attribution in images.select(columns).unique("batch_id").iter_rows()}


def source_entries(provenance: Mapping[str, BatchProvenance], manifest: pl.DataFrame) -> list[dict]:
    """meta.json's `sources`: each batch that delivered a released image, with how many it delivered
    and what its batch.json states (null where it states nothing)."""
    batches = manifest["source_batches"].str.split(";").explode()
    counts = dict(batches.value_counts().iter_rows())
    unknown = BatchProvenance(None, None, None, None)  # a release built without the batches' tables
    return [{"batch_id": batch, "images": counts[batch], **asdict(provenance.get(batch, unknown))}
            for batch in sorted(counts)]


def provenance_content(sources: list[dict]) -> bytes:
    """What of the sources the content version covers: their stated terms (the manifest already
    covers which batches delivered which images). Empty when no batch states any, so the releases of
    batches without provenance keep the version they had."""
    stated = [{key: entry[key] for key in ("batch_id", "licence", "origin", "attribution")} for entry in sources
              if any(entry[key] is not None for key in ("licence", "origin", "attribution"))]
    return orjson.dumps(stated, option=orjson.OPT_SORT_KEYS) if stated else b""


def licences(sources: list[dict]) -> dict[str, list[str]]:
    """Each licence of the sources (NOT_STATED for a batch that names none) and its batches; more
    than one key means the release mixes licences."""
    found: dict[str, list[str]] = {}
    for entry in sources:
        found.setdefault(entry["licence"] or NOT_STATED, []).append(entry["batch_id"])
    return found

