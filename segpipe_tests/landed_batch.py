"""A landed batch ingested as the ingest asset reads it (defs/ingest/assets.py `_read_batch`), with
core's imports only: the bench's address-space-limited child imports nothing else."""

from collections.abc import Callable
from pathlib import Path

import fsspec

from segpipe.core.ingest.batch import IngestedBatch, ingest_batch, quarantine_unreadable_batch
from segpipe.core.ingest.sources import open_landed_batch
from segpipe.core.shared.errors import InputError


def ingest_landed(landing: Path, batch_id: str, key: bytes,
                  store_image: Callable[[str, bytes], None] | None = None) -> IngestedBatch:
    """The ready batch `batch_id` of a local landing folder, ingested; a batch whose source cannot
    even be opened (an unsafe or corrupt archive) is one quarantined item."""
    try:
        with open_landed_batch(fsspec.filesystem("file"), str(landing), batch_id) as (source, landed):
            return ingest_batch(source, batch_id, key, store_image, landed_at=landed.ready_at)
    except InputError as exc:
        return quarantine_unreadable_batch(batch_id, exc)
