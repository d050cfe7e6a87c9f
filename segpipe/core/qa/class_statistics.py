"""Dataset statistics in the spirit of Datumaro's validator, but over pixels, not object counts.

A trainable class no mask contains cannot be learned; a class with a thousandth of another's
pixels will be drowned out unless the loss or the sampling compensates. Both are read from each
mask's class_pixels (counted when the mask was made), so nothing is decoded.
"""

from dataclasses import dataclass

import numpy as np
import polars as pl

from segpipe.core.shared.class_pixels import VALUES, as_sparse, present_pairs
from segpipe.core.taxonomy.model import Taxonomy


@dataclass(frozen=True)
class ClassStatistics:
    table: pl.DataFrame  # class_id, name, trainable, pixels, pixel_share, masks (masks with the class)
    never_present: list[str]  # trainable classes no mask contains
    imbalance: float | None  # most common trainable class's pixels over the rarest present one's


def class_statistics(masks: pl.DataFrame, taxonomy: Taxonomy) -> ClassStatistics:
    """Pixels and masks per taxonomy class over `masks` (rows with class_pixels, dense or sparse: summed
    from the classes present, so the whole dataset's counts are never held dense)."""
    totals = (present_pairs(as_sparse(masks["class_pixels"])).group_by("class_id")
              .agg(pl.col("pixels").sum(), pl.len().alias("masks")))
    pixels, present = np.zeros(VALUES, dtype=np.int64), np.zeros(VALUES, dtype=np.int64)
    pixels[totals["class_id"].to_numpy()] = totals["pixels"].to_numpy()
    present[totals["class_id"].to_numpy()] = totals["masks"].to_numpy()
    labelled = sum(int(pixels[c.id]) for c in taxonomy.classes)
    table = pl.DataFrame([{
        "class_id": c.id, "name": c.name, "trainable": c.trainable, "pixels": int(pixels[c.id]),
        "pixel_share": float(pixels[c.id] / labelled) if labelled else 0.0, "masks": int(present[c.id]),
    } for c in sorted(taxonomy.classes, key=lambda c: c.id)])
    trainable = table.filter(pl.col("trainable"))
    never = trainable.filter(pl.col("pixels") == 0)["name"].to_list()
    seen = trainable.filter(pl.col("pixels") > 0)["pixels"]
    imbalance = float(seen.max() / seen.min()) if seen.len() else None
    return ClassStatistics(table, never, imbalance)
