"""Near-duplicate images: different files (other bytes, so another image_id) of the same picture.

A re-encoded, resized or lightly edited copy of an image escapes the content hash, and if the two
land in train and test the test set leaks. Images are compared by their 64-bit difference hash
(computed at ingest): copies differ in a few bits, different scenes in about half. Pairs within
`max_bits` are found without comparing every pair: split into max_bits + 1 bands, two hashes that
close agree exactly on at least one band (pigeonhole), so only images sharing a band are compared.
Scenes from one camera rig have similar hashes, so a band's buckets can still hold hundreds of
images: the candidates are compared with numpy, PAIR_CHUNK pairs at a time (memory stays bounded
whatever the bucket sizes), not one Python comparison each.
"""

from collections.abc import Iterator

import numpy as np
import polars as pl

HASH_BITS = 64
PAIR_CHUNK = 1 << 20  # candidate pairs compared at once: about 50 MB of index arrays and hashes


def near_duplicate_pairs(images: pl.DataFrame, max_bits: int) -> list[tuple[str, str, int]]:
    """(image_id, image_id, bits that differ), the first id the smaller, for every pair of distinct
    images within max_bits (images: image_id, perceptual_hash; one row per image), sorted."""
    unique = images.select("image_id", "perceptual_hash").unique("image_id", keep="first").sort("image_id")
    ids = unique["image_id"].to_list()
    hashes = np.array([int(value, 16) for value in unique["perceptual_hash"]], dtype=np.uint64)
    bands = max_bits + 1
    edges = [round(HASH_BITS * i / bands) for i in range(bands + 1)]
    found: list[np.ndarray] = []
    for low, high in zip(edges, edges[1:], strict=False):
        band = (hashes >> np.uint64(low)) & np.uint64((1 << (high - low)) - 1)
        for first, second in _bucket_pairs(band):
            bits = np.bitwise_count(hashes[first] ^ hashes[second])
            near = bits <= max_bits
            found.append(np.stack([first[near], second[near], bits[near].astype(np.int64)], axis=1))
    if not found:
        return []
    pairs = np.unique(np.concatenate(found), axis=0)  # a pair sharing several bands is found once per band
    return [(ids[first], ids[second], int(bits)) for first, second, bits in pairs.tolist()]


def _bucket_pairs(band: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(first, second) index arrays, first < second, of every two images with the same band value,
    in chunks of at most PAIR_CHUNK pairs."""
    order = np.argsort(band, kind="stable")  # ascending indices within a bucket
    values = band[order]
    starts = np.flatnonzero(np.r_[True, values[1:] != values[:-1]])
    sizes = np.diff(np.r_[starts, len(values)])
    bucket_end = np.repeat(starts + sizes, sizes)  # per sorted position: where its bucket ends
    partners = bucket_end - np.arange(len(values)) - 1  # later members of its bucket
    taken = np.cumsum(partners)  # pairs of the sorted positions up to each
    position = 0
    while position < len(values):
        before = int(taken[position - 1]) if position else 0
        end = max(position + 1, int(np.searchsorted(taken, before + PAIR_CHUNK, side="right")))
        counts = partners[position:end]
        total = int(taken[end - 1]) - before
        if total:
            own = np.repeat(np.arange(position, end), counts)
            offset = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
            yield order[own], order[own + 1 + offset]
        position = end


def near_duplicate_entries(entries: pl.DataFrame, max_bits: int) -> dict[str, str]:
    """Each entry whose image nearly duplicates an image first seen earlier (in batch, file order),
    mapped to a reason naming that earlier file."""
    ordered = entries.sort("batch_id", "file_name")
    first_seen: dict[str, tuple[int, str]] = {}
    for position, (image_id, batch_id, file_name) in enumerate(ordered.select("image_id", "batch_id", "file_name").iter_rows()):
        first_seen.setdefault(image_id, (position, f"{batch_id}/{file_name}"))
    found: dict[str, str] = {}
    for first, second, bits in near_duplicate_pairs(ordered.select("image_id", "perceptual_hash"), max_bits):
        earlier, later = sorted((first, second), key=lambda image_id: first_seen[image_id][0])
        reason = f"looks like {first_seen[earlier][1]} ({bits} of {HASH_BITS} hash bits differ)"
        for entry_id in ordered.filter(pl.col("image_id") == later)["entry_id"]:
            found.setdefault(entry_id, reason)
    return found


def split_leaks(splits: pl.DataFrame, images: pl.DataFrame, max_bits: int) -> pl.DataFrame:
    """Pairs of near-duplicate images assigned to different splits (splits: image_id, split; images:
    image_id, perceptual_hash): each is the same picture evaluated on and trained on."""
    ids = splits["image_id"].to_list()
    hashes = images.filter(pl.col("image_id").is_in(ids)).select("image_id", "perceptual_hash")
    return leaks_across_splits(splits, near_duplicate_pairs(hashes, max_bits))


def leaks_across_splits(splits: pl.DataFrame, pairs: list[tuple[str, str, int]]) -> pl.DataFrame:
    """The pairs (from near_duplicate_pairs) whose two images both have a split, and different ones."""
    split_of = dict(splits.select("image_id", "split").iter_rows())
    rows = [{"image_a": a, "split_a": split_of[a], "image_b": b, "split_b": split_of[b], "bits": bits}
            for a, b, bits in pairs if a in split_of and b in split_of and split_of[a] != split_of[b]]
    return pl.DataFrame(rows, schema={"image_a": pl.String, "split_a": pl.String, "image_b": pl.String,
                                      "split_b": pl.String, "bits": pl.Int64})
