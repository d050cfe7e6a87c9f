"""Near-duplicate images: different files (other bytes, so another image_id) of the same picture.

A re-encoded, resized or lightly edited copy of an image escapes the content hash, and if the two
land in train and test the test set leaks. Images are compared by their 64-bit difference hash
(computed at ingest): copies differ in a few bits, different scenes in about half. Pairs within
`max_bits` are found without comparing every pair: split into max_bits + 1 bands, two hashes that
close agree exactly on at least one band (pigeonhole), so only images sharing a band are compared.
"""

from collections import defaultdict

import polars as pl

HASH_BITS = 64


def near_duplicate_pairs(images: pl.DataFrame, max_bits: int) -> list[tuple[str, str, int]]:
    """(image_id, image_id, bits that differ) for every pair of distinct images within max_bits
    (images: image_id, perceptual_hash; one row per image)."""
    hashes = {image_id: int(value, 16) for image_id, value in images.select("image_id", "perceptual_hash").unique(
        "image_id", keep="first").sort("image_id").iter_rows()}
    bands = max_bits + 1
    edges = [round(HASH_BITS * i / bands) for i in range(bands + 1)]
    buckets: dict[tuple[int, int], list[str]] = defaultdict(list)
    for image_id, value in hashes.items():
        for band, (low, high) in enumerate(zip(edges, edges[1:], strict=False)):
            buckets[band, (value >> low) & ((1 << (high - low)) - 1)].append(image_id)
    pairs = set()
    for members in buckets.values():
        for i, first in enumerate(members):
            for second in members[i + 1:]:
                bits = (hashes[first] ^ hashes[second]).bit_count()
                if bits <= max_bits:
                    pairs.add((first, second, bits))
    return sorted(pairs)


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
