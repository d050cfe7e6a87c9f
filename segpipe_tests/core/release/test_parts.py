"""A release in parts: the items' files in shared ZIPs that, unzipped with the version's own ZIP, are the
one-ZIP release; a later build makes and writes only what no earlier part holds."""

import contextlib
import hashlib
import io
import zipfile
from collections.abc import Callable, Iterator, Sequence

import polars as pl
import pytest

from segpipe.core.release import layout
from segpipe.core.release.build import write_release
from segpipe.core.release.packaging import ZipPackager, ZipRecords
from segpipe.core.release.parts import (
    PartLayout,
    PartPlanner,
    PlannedMember,
    ReleaseChanged,
    known_members,
    member_index,
)
from segpipe.core.release.verify import PartedFiles, verify_release
from segpipe.core.shared.artefacts import ArtefactStore
from segpipe.core.shared.png import encode_mask_png
from segpipe_tests.core.release.release_fixture import build_release, constructed_masks, constructed_release

ONE_BYTE = 1  # every item is a chunk of its own: each group cut after its first image
BIG = 1 << 30


class MemoryShelf:
    """Parts by name in a dict; what a build created, in order."""

    def __init__(self, parts: dict[str, bytes] | None = None) -> None:
        self.parts = dict(parts or {})
        self.created: list[str] = []

    def holds(self, name: str, members: Sequence[PlannedMember]) -> bool:
        return name in self.parts

    @contextlib.contextmanager
    def create(self, name: str, members: Sequence[PlannedMember]) -> Iterator[io.BytesIO]:
        out = io.BytesIO()
        yield out
        self.parts[name] = out.getvalue()
        self.created.append(name)


class Built:
    def __init__(self, head: bytes, placed: PartLayout, index: pl.DataFrame, shelf: MemoryShelf, reads: list[str]):
        self.head, self.placed, self.index, self.shelf, self.reads = head, placed, index, shelf, reads

    def archives(self) -> list[tuple[str, zipfile.ZipFile]]:
        return [("head", zipfile.ZipFile(io.BytesIO(self.head))),
                *((name, zipfile.ZipFile(io.BytesIO(self.shelf.parts[name]))) for name in self.placed.parts)]


def build_parted(part_bytes: int, known: pl.DataFrame | None = None, shelf: MemoryShelf | None = None,
                 items_changed=lambda items: items, objects: dict[str, bytes] | None = None,
                 earlier: Callable[[str], bytes | None] | None = None) -> Built:
    """The constructed release built with a planner, `objects` added to its store, which counts the keys read."""
    release, items = constructed_release()
    reads: list[str] = []
    original = release.store
    for key, data in (objects or {}).items():
        original.write(key, data)
    release.store = ArtefactStore(lambda key: reads.append(key) or original.read(key), original.write, original.exists)
    shelf = shelf if shelf is not None else MemoryShelf()
    out = io.BytesIO()
    planner = PartPlanner(part_bytes, known_members(known), shelf, earlier)
    with ZipPackager(out) as packager:
        placed = write_release(release, items_changed(items), packager, planner)
    built = Built(out.getvalue(), placed, member_index(release.packaged, placed, packager.sizes), shelf, reads)
    built.copied = planner.copied
    return built


def members_of(archives: list[tuple[str, zipfile.ZipFile]]) -> dict[str, bytes]:
    return {name: archive.read(name) for _, archive in archives for name in archive.namelist()}


def test_a_release_whose_items_fit_in_one_part_is_the_one_zip_of_before():
    built = build_parted(BIG)
    assert built.head == build_release().data
    assert built.placed.parts == [] and built.shelf.created == []
    assert built.index["part"].is_null().all()
    with zipfile.ZipFile(io.BytesIO(built.head)) as archive:
        assert built.index["path"].to_list() == archive.namelist()
        assert dict(built.index.select("path", "sha256").iter_rows()) == {
            name: hashlib.sha256(archive.read(name)).hexdigest() for name in archive.namelist()}


def test_a_one_zip_build_copies_the_items_files_from_the_previous_zip_and_makes_a_damaged_one_again():
    first = build_parted(BIG)
    earlier = ZipRecords(zipfile.ZipFile(io.BytesIO(first.head)))
    item_files = first.index.filter(pl.col("source").is_not_null())["path"].to_list()
    assert any(layout.is_image(path) for path in item_files) and any(path.startswith("labels/") for path in item_files)

    again = build_parted(BIG, known=first.index, earlier=earlier.read)
    assert again.head == first.head, "the same bytes as a build that makes every file"
    assert again.copied == len(item_files)
    assert [key for key in again.reads if key.startswith(("images/", "masks/"))] == []

    damaged = item_files[0]
    def with_one_damaged(path: str) -> bytes | None:
        data, info, record = earlier.read(path)
        return (b"not what the index says", info, record) if path == damaged else (data, info, record)

    repaired = build_parted(BIG, known=first.index, earlier=with_one_damaged)
    assert repaired.head == first.head and repaired.copied == len(item_files) - 1
    gone = build_parted(BIG, known=first.index, earlier=lambda path: None)
    assert gone.head == first.head and gone.copied == 0


def test_the_parts_unzipped_with_the_versions_zip_are_the_one_zip_release():
    built, single = build_parted(ONE_BYTE), build_release()
    archives = built.archives()
    with single.archive() as whole:
        assert members_of(archives) == {name: whole.read(name) for name in whole.namelist()}
        assert built.index["path"].to_list() == whole.namelist(), "the index keeps the one ZIP's order"
        compressed = {info.filename: info.compress_type for info in whole.infolist()}
    assert {info.filename: info.compress_type for _, a in archives for info in a.infolist()} == compressed
    head = dict(archives)["head"].namelist()
    assert not any(name.startswith(("images/", "masks/", "labels/")) for name in head)
    assert layout.SHA256SUMS in head and layout.META in head
    # three images in three groups (batch and split): each an image part and an annotation part
    assert len(built.placed.parts) == 6 == len(set(built.placed.parts)) and built.shelf.created == built.placed.parts
    for name, archive in archives[1:]:
        names = archive.namelist()
        assert all(layout.is_image(n) for n in names) or not any(layout.is_image(n) for n in names)
        listing = "".join(f"{hashlib.sha256(archive.read(n)).hexdigest()}  {n}\n" for n in sorted(names))
        assert name == f"{hashlib.sha256(listing.encode()).hexdigest()}.zip"
    files = PartedFiles(archives)
    assert verify_release(files).problems == [] and files.duplicates == []
    holders = {path: (part or "head") for path, part in built.index.select("path", "part").iter_rows()}
    assert holders == {name: files.holder(name) for name in files.namelist()}


def test_a_build_that_knows_every_member_makes_no_image_and_writes_no_part():
    first = build_parted(ONE_BYTE)
    again = build_parted(ONE_BYTE, known=first.index, shelf=MemoryShelf(first.shelf.parts))
    assert again.shelf.created == [] and again.placed.parts == first.placed.parts
    assert [key for key in again.reads if key.startswith("images/")] == []
    assert members_of(again.archives()) == members_of(first.archives())


def test_a_changed_mask_rewrites_its_annotation_part_and_no_image_part():
    first = build_parted(ONE_BYTE)
    val = constructed_masks()["val"]
    val[0, 0] = 2  # a taxonomy edit moves one pixel of the val mask, drawn anew under a key of its own

    def edited_mask(items: pl.DataFrame) -> pl.DataFrame:
        return items.with_columns(mask_key=pl.when(pl.col("split") == "val").then(pl.lit("masks/m1-edited.png"))
                                  .otherwise(pl.col("mask_key")))

    edited = build_parted(ONE_BYTE, known=first.index, shelf=MemoryShelf(first.shelf.parts), items_changed=edited_mask,
                          objects={"masks/m1-edited.png": encode_mask_png(val)})
    [written] = edited.shelf.created
    with zipfile.ZipFile(io.BytesIO(edited.shelf.parts[written])) as part:
        assert sorted(part.namelist()) == ["labels/val/val_000000000000.txt", "masks/val/val_000000000000.png"]
        assert part.read("masks/val/val_000000000000.png") == encode_mask_png(val)
    assert [key for key in edited.reads if key.startswith("images/")] == []
    assert set(edited.placed.parts) - set(first.placed.parts) == {written}


def test_a_new_batch_writes_only_its_own_parts_and_a_split_change_moves_the_image():
    def without_test(items: pl.DataFrame) -> pl.DataFrame:
        return items.filter(pl.col("split") != "test")

    def test_from_a_new_batch(items: pl.DataFrame) -> pl.DataFrame:
        return items.with_columns(part_group=pl.when(pl.col("split") == "test").then(pl.lit("b-new")))

    first = build_parted(ONE_BYTE, items_changed=without_test)
    nightly = build_parted(ONE_BYTE, known=first.index, shelf=MemoryShelf(first.shelf.parts),
                           items_changed=test_from_a_new_batch)
    assert len(nightly.shelf.created) == 2
    new_files = {n for name in nightly.shelf.created
                 for n in zipfile.ZipFile(io.BytesIO(nightly.shelf.parts[name])).namelist()}
    assert new_files == {"images/test/test_000000000000.png", "masks/test/test_000000000000.png",
                         "labels/test/test_000000000000.txt"}
    # made once: hashed, and kept until written into its part
    assert [key for key in nightly.reads if key.startswith("images/")] == [f"images/{2:064d}.png"]

    def val_to_train(items: pl.DataFrame) -> pl.DataFrame:
        return test_from_a_new_batch(items).with_columns(split=pl.when(pl.col("split") == "val").then(pl.lit("train"))
                                                         .otherwise(pl.col("split")))

    resplit = build_parted(ONE_BYTE, known=nightly.index, shelf=MemoryShelf(nightly.shelf.parts), items_changed=val_to_train)
    moved = {n for name in resplit.shelf.created for n in zipfile.ZipFile(io.BytesIO(resplit.shelf.parts[name])).namelist()}
    # the val image joins the train group of its batch (batch-1), which had no item: new parts, the val ones unused
    assert moved == {"images/train/val_000000000000.png", "masks/train/val_000000000000.png",
                     "labels/train/val_000000000000.txt"}
    assert len(resplit.placed.parts) == len(nightly.placed.parts)


def test_a_member_whose_bytes_differ_from_what_was_known_stops_the_build():
    first = build_parted(ONE_BYTE)
    lying = first.index.with_columns(sha256=pl.when(pl.col("path").str.starts_with("images/train"))
                                     .then(pl.lit("0" * 64)).otherwise(pl.col("sha256")))
    with pytest.raises(ReleaseChanged, match="images/train/train_000000000000.png: packaged with SHA-256 "):
        build_parted(ONE_BYTE, known=lying)
