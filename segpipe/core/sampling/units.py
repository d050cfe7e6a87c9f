"""Sampling units: the images that must move together, with what each unit holds.

A unit is a group (the spec's group_by column, a sequence or scene; an image without one is its
own group), joined with every group holding a near copy of one of its images, because a copy in
test of what train saw leaks as surely as a neighbouring frame. Selection and splitting decide
per unit, never per image, so no group and no near-duplicate pair can span two splits.

Each unit carries counts the decisions weigh: images per strata value, images and pixels per
class. Its seeded rank (a hash of the seed and the unit's key) orders every otherwise equal
choice, so the result does not depend on the order rows arrive in.
"""

import hashlib
from dataclasses import dataclass

import numpy as np
import polars as pl

from segpipe.core.shared.class_pixels import pixel_matrix

MISSING = "(missing)"
UNGROUPED = "\0"  # prefix of an ungrouped image's own group; no group value starts so


def _unit_key(group: str) -> str:
    return f"{group.removeprefix(UNGROUPED)} (ungrouped)" if group.startswith(UNGROUPED) else group


@dataclass(frozen=True)
class SamplingUnits:
    image_ids: list[str]  # sorted
    unit_of_image: np.ndarray  # (images,) unit index of each image
    keys: list[str]  # (units,) the smallest group key in the unit ("<image_id> (ungrouped)" for an image without one)
    size: np.ndarray  # (units,) images
    rank: np.ndarray  # (units,) position in the seeded order, 0 first
    cell: np.ndarray  # (units,) joint strata cell of the unit's first image, for natural proportions
    strata_labels: list[tuple[str, str]]  # (column, value) for every value of every strata column
    strata_counts: np.ndarray  # (units, strata labels) images with that value
    class_ids: list[int]
    class_images: np.ndarray  # (units, classes) images containing the class
    class_pixels: np.ndarray  # (units, classes) pixels of the class

    def __len__(self) -> int:
        return len(self.keys)


def build_units(images: pl.DataFrame, group_by: str, strata: list[str], class_ids: list[int], seed: int,
                near_pairs: list[tuple[str, str]] = ()) -> SamplingUnits:
    """Units of `images` (image_id, the group_by and strata columns, class_pixels: sparse or dense),
    joining groups linked by a near-duplicate pair of image ids."""
    frame = images.sort("image_id").select(
        "image_id",
        # An image without a group is its own, named apart from every group value.
        pl.col(group_by).cast(pl.String).fill_null(UNGROUPED + pl.col("image_id")).alias("_group"),
        *[pl.col(column).cast(pl.String).fill_null(MISSING).alias(column) for column in strata],
        "class_pixels",
    )
    image_ids = frame["image_id"].to_list()
    groups, group_of_image = np.unique(frame["_group"].to_numpy().astype(str), return_inverse=True)
    parent = np.arange(len(groups))

    def root(g: int) -> int:
        while parent[g] != g:
            parent[g] = parent[parent[g]]
            g = parent[g]
        return g

    position = {image_id: i for i, image_id in enumerate(image_ids)}
    for first, second in near_pairs:
        if first in position and second in position:
            a, b = root(group_of_image[position[first]]), root(group_of_image[position[second]])
            parent[max(a, b)] = min(a, b)  # groups are sorted, so the root is the unit's smallest key
    roots = np.array([root(g) for g in range(len(groups))], dtype=np.int64)
    unit_roots, unit_of_group = np.unique(roots, return_inverse=True)
    unit_of_image = unit_of_group[group_of_image]
    keys = [_unit_key(str(groups[r])) for r in unit_roots]
    units = len(keys)
    size = np.bincount(unit_of_image, minlength=units)
    digests = [hashlib.sha256(f"{seed}\0{key}".encode()).hexdigest() for key in keys]
    rank = np.empty(units, dtype=np.int64)
    rank[np.argsort(digests, kind="stable")] = np.arange(units)

    labels: list[tuple[str, str]] = []
    strata_counts = np.zeros((units, 0), dtype=np.int64)
    codes = []
    for column in strata:
        values, value_of_image = np.unique(frame[column].to_numpy().astype(str), return_inverse=True)
        labels.extend((column, str(v)) for v in values)
        counts = np.zeros((units, len(values)), dtype=np.int64)
        np.add.at(counts, (unit_of_image, value_of_image), 1)
        strata_counts = np.hstack([strata_counts, counts])
        codes.append(value_of_image)
    first_image = np.full(units, len(image_ids), dtype=np.int64)
    np.minimum.at(first_image, unit_of_image, np.arange(len(image_ids)))
    if codes:
        joint = np.unique(np.column_stack(codes), axis=0, return_inverse=True)[1].reshape(-1)
        cell = joint[first_image]
    else:
        cell = np.zeros(units, dtype=np.int64)
    pixels = pixel_matrix(frame["class_pixels"], class_ids)
    class_images = np.zeros((units, len(class_ids)), dtype=np.int64)
    class_pixels = np.zeros((units, len(class_ids)), dtype=np.int64)
    np.add.at(class_images, unit_of_image, (pixels > 0).astype(np.int64))
    np.add.at(class_pixels, unit_of_image, pixels)
    return SamplingUnits(image_ids, unit_of_image, keys, size, rank, cell, labels, strata_counts, list(class_ids),
                         class_images, class_pixels)
