"""`segpipe review export OUT.zip`: the last build's review queue as a CVAT task (docs/review.md).

It reads what the last build left: the consensus table, the batches' image tables and the stored
images, fused masks and agreement maps; core/consensus/review_task.py writes the archive.
"""

import os
from pathlib import Path

import dagster as dg
import polars as pl

from segpipe.core.consensus.review import review_queue
from segpipe.core.consensus.review_task import ReviewImage, write_review_task
from segpipe.core.rasterize.raster import decode_mask_png
from segpipe.core.taxonomy.model import load_taxonomy
from segpipe.defs.batches import done_batches
from segpipe.environment import Environment
from segpipe.io.locations import open_location

UNANIMOUS = 255  # an agreement map's value where every annotator gave the leading class


class NothingToReview(Exception):
    """No build yet, or a queue with no image."""


def export_review_queue(defs: dg.Definitions, instance: dg.DagsterInstance, env: Environment, out: Path) -> int:
    """Write the review queue's CVAT task to `out` (whole or not at all); the number of images."""
    batches = done_batches(instance)
    if not batches:
        raise NothingToReview(
            f"no batch is ingested yet in the Dagster instance at {instance.root_directory}: run `segpipe build` "
            "first, or set DAGSTER_HOME to the instance your builds use (without it, the project's dagster_home/)")
    try:
        consensus = defs.load_asset_value("consensus_masks", instance=instance)
    except FileNotFoundError:
        raise NothingToReview("no build has decided a consensus yet: `segpipe build` first") from None
    images = pl.concat([defs.load_asset_value("batch_images", partition_key=batch, instance=instance)
                        .select("entry_id", "image_id", "file_name", "image_key") for batch in batches])
    queue = review_queue(consensus, images)
    if queue.is_empty():
        raise NothingToReview("the review queue is empty: every image of the last build is accepted")
    fs, root = open_location(env.storage_root, env.s3_endpoint_url)
    stored = dict(images.sort("file_name").unique("image_id", keep="first").select("image_id", "image_key").iter_rows())
    mask_of = dict(consensus.select("image_id", "mask_key").iter_rows())
    queued = []
    for image_id, file_name, agreement_map in queue.select("image_id", "file_name", "agreement_map_key").iter_rows():
        key = stored[image_id]
        disputed = (None if agreement_map is None
                    else decode_mask_png(fs.cat_file(f"{root}/{agreement_map}")) < UNANIMOUS)
        queued.append(ReviewImage(image_id, file_name, fs.cat_file(f"{root}/{key}"), os.path.splitext(key)[1],
                                  decode_mask_png(fs.cat_file(f"{root}/{mask_of[image_id]}")), disputed))
    partial = out.with_name(f".{out.name}.part")
    with partial.open("wb") as stream:
        write_review_task(stream, queued, load_taxonomy(env.taxonomy_path), f"review queue ({len(queued)} images)")
    partial.replace(out)
    return len(queued)
