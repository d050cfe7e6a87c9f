"""The constructed release (core/release/release_fixture.py) published through the release build's
publishing (publish_built), in parts when asked, with the changes a nightly, a re-split or a taxonomy
edit make: for tests of the store's parts, locally and on SeaweedFS."""

from collections.abc import Callable
from typing import BinaryIO

import fsspec
import numpy as np
import polars as pl

from segpipe.core.release.build import ReleaseContents, package_release
from segpipe.core.release.writers.datasheet import datasheet_pictures
from segpipe.core.release.parts import PartPlanner
from segpipe.core.shared.png import encode_mask_png
from segpipe.store.release_build import PublishedBuild, publish_built
from segpipe_tests.core.release.release_fixture import constructed_masks, constructed_release

TAXONOMY_VERSION = "street-v1-ab12cd34"
TINY_PARTS = 1  # bytes: every image a chunk of its own, so each group of the three images has its parts
ONE_ZIP = 1 << 30
LEDGER = pl.DataFrame({"batch_id": ["batch-0"], "file_name": ["a.png"], "image_id": ["0"], "outcome": ["released"],
                       "stage": ["release"], "reason": [None]}, schema_overrides={"reason": pl.String})
EDITED_MASK = "masks/m1-edited.png"

Change = Callable[[pl.DataFrame], pl.DataFrame]


def unchanged(items: pl.DataFrame) -> pl.DataFrame:
    return items


def without_test(items: pl.DataFrame) -> pl.DataFrame:
    """Before the nightly: the test image's batch has not landed."""
    return items.filter(pl.col("split") != "test")


def new_batch_with_the_test_image(items: pl.DataFrame) -> pl.DataFrame:
    """The nightly: the test image arrives in a batch of its own."""
    return items.with_columns(part_group=pl.when(pl.col("split") == "test").then(pl.lit("b-new")))


def edited_val_mask(items: pl.DataFrame) -> pl.DataFrame:
    """A taxonomy edit that changes the val image's mask (drawn anew under its own key, EDITED_MASK)."""
    rows = new_batch_with_the_test_image(items).to_dicts()
    for row in rows:
        if row["split"] == "val":
            row["mask_key"], row["class_pixels"] = EDITED_MASK, np.bincount(edited_mask().ravel(), minlength=256).tolist()
    return pl.DataFrame(rows, schema=items.schema | {"part_group": pl.String})


def val_moved_to_train(items: pl.DataFrame) -> pl.DataFrame:
    """A re-split: the val image is now a train image, under another path."""
    return items.with_columns(split=pl.when(pl.col("split") == "val").then(pl.lit("train")).otherwise(pl.col("split")))


def edited_mask() -> np.ndarray:
    val = constructed_masks()["val"]
    val[0, 0] = 2
    return val


def constructed_build(change: Change = unchanged, run_id: str = "run-1",
                      exports: tuple[str, ...] = ()) -> Callable[[BinaryIO, PartPlanner], ReleaseContents]:
    """The release build of the constructed release with `change` made to its items and `exports` on."""
    def build(out: BinaryIO, parts: PartPlanner) -> ReleaseContents:
        release, items = constructed_release(run_id=run_id, exports=exports)
        release.store.write(EDITED_MASK, encode_mask_png(edited_mask()))
        placed, members = package_release(release, change(items), out, parts)
        return ReleaseContents(release.version, release.manifest, release.meta, LEDGER, release.counts,
                               datasheet_pictures(release), members, placed)
    return build


def publish_constructed(fs: fsspec.AbstractFileSystem, root: str, change: Change = unchanged, dataset: str = "demo",
                        part_bytes: int = TINY_PARTS, run_id: str = "run-1", exports: tuple[str, ...] = ()) -> PublishedBuild:
    return publish_built(fs, root, dataset, run_id, TAXONOMY_VERSION, part_bytes, constructed_build(change, run_id, exports))
