"""Pictures in asset and check metadata, inline as data URIs within a budget (core/shared/pictures.py).

Assets show up to ASSET_PICTURES, each failing check up to CHECK_PICTURES, so one build adds a
bounded amount to the event log whatever the data. Beside each picture stands where its
full-size object is; store locations are metadata paths (copyable text): a store URL is not a
link a browser can open (s3://), and the UI refuses file:// links.
"""

from collections.abc import Iterable, Sequence

import dagster as dg

from segpipe.core.shared.pictures import LegendEntry, Picture, PictureBudget, legend_markdown, picture_gallery
from segpipe.io.object_store import ObjectStore

ASSET_PICTURES = PictureBudget(max_uri_bytes=24_000, max_pictures=3)
CHECK_PICTURES = PictureBudget(max_uri_bytes=24_000, max_pictures=2)


def stored_pictures(object_store: ObjectStore, captioned_keys: Iterable[tuple[str, str]]) -> list[Picture]:
    """A picture per (caption, store key), read from the store only if shown, its location beside it."""
    return [Picture(caption, lambda key=key: object_store.read_bytes(key), object_store.url(key))
            for caption, key in captioned_keys]


def gallery(pictures: Sequence[Picture], budget: PictureBudget = ASSET_PICTURES, everything: str | None = None,
            note: str | None = None) -> dg.MetadataValue:
    """The pictures within `budget` after `note`, "+N more" for the rest, all of which are at `everything`."""
    return dg.MetadataValue.md(picture_gallery(pictures, budget, everything, note))


def legend(entries: Sequence[LegendEntry]) -> dg.MetadataValue:
    return dg.MetadataValue.md(legend_markdown(entries))


def store_location(object_store: ObjectStore, key: str) -> dg.MetadataValue:
    """Where an object or folder of the store is, as text the UI offers to copy."""
    return dg.MetadataValue.path(object_store.url(key))
