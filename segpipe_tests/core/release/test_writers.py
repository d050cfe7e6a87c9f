"""The release writers: one per output, packaged by whatever packager the build is given."""

import hashlib
import io
import subprocess
import sys
import zipfile
from collections.abc import Iterator

import pytest

from segpipe.core.release import build, layout
from segpipe.core.release.build import write_release
from segpipe.core.release.packaging import ZIP_EPOCH, ZipPackager
from segpipe.core.release.verify import verify_release
from segpipe.core.release.writers import WRITERS, Deferred, Member, ReleaseItem, ReleaseWriter
from segpipe.core.shared.hashing_writer import HashingWriter
from segpipe_tests.core.release.release_fixture import build_release, constructed_release

SPLITS = ("train", "val", "test")
# What each writer writes for the every_output release: an image per split (named <split>_<first 12
# digits of its id>), an instance mask for the train image, a QA failure with a thumbnail, a sampling report.
EXPECTED_OUTPUTS = {
    "images_masks": {*(f"{folder}/{split}/{split}_000000000000.png" for split in SPLITS for folder in ("images", "masks")),
                     "instances/train/train_000000000000.png"},
    "qa": {layout.QA_REPORT, "qa/thumbnails/labels_mapped/e1.png"},
    "reports": {layout.DISTRIBUTION_CHART},
    "coco": {layout.COCO},
    "manifest": {layout.INDEX_CSV, layout.INDEX_PARQUET},
    "meta": {layout.META},
    "class_map": {layout.CLASS_MAP},
    "yolo": {*(f"labels/{split}/{split}_000000000000.txt" for split in SPLITS), layout.YOLO_DATA},
    "datasheet": {layout.LEGEND, layout.DATASHEET},
    "cityscapes": {*(layout.CITYSCAPES_LABEL.format(split=split, city=city, name=f"{city}_{split}_000000000000",
                                                   kind="labelTrainIds")
                     for split, city in zip(SPLITS, ("batch-0", "batch-1", "batch-0"), strict=True)),
                   layout.EXPORT_IMAGES.format("cityscapes")},
    "voc": {*(layout.VOC_MASK.format(f"{split}_000000000000") for split in SPLITS),
            *(layout.VOC_LIST.format(split) for split in (*SPLITS, "trainval")), layout.VOC_LABELMAP,
            layout.EXPORT_IMAGES.format("voc")},
    "hf": {layout.HF_CARD},
    "checksums": {layout.SHA256SUMS},
}
EXPORTS = ("cityscapes", "voc", "hf")


class DictPackager:
    """Members by path, in the order they came: a packager that knows nothing of ZIP."""

    def __init__(self) -> None:
        self.members: dict[str, bytes] = {}
        self.compressed: dict[str, bool] = {}

    def add(self, member: Member) -> str:
        if isinstance(member.content, bytes | Deferred):
            data = member.content if isinstance(member.content, bytes) else member.content.make()
        else:
            buffer = io.BytesIO()
            member.content(HashingWriter(buffer))
            data = buffer.getvalue()
        assert member.path not in self.members, f"{member.path} packaged twice"
        self.members[member.path] = data
        self.compressed[member.path] = member.compress
        return hashlib.sha256(data).hexdigest()


def _recording(writer: type[ReleaseWriter], written: dict[str, list[str]]) -> type[ReleaseWriter]:
    """The writer, noting the path of every member it yields under its name."""

    class Recording(writer):  # type: ignore[misc, valid-type]
        def item_members(self, item: ReleaseItem) -> Iterator[Member]:
            for member in super().item_members(item):
                written.setdefault(self.name, []).append(member.path)
                yield member

        def closing_members(self) -> Iterator[Member]:
            for member in super().closing_members():
                written.setdefault(self.name, []).append(member.path)
                yield member

    return Recording


def test_the_registry_has_one_named_and_documented_writer_per_output_checksums_last():
    assert list(WRITERS) == list(EXPECTED_OUTPUTS)
    assert all(name == writer.name and writer.__doc__ for name, writer in WRITERS.items())
    assert list(WRITERS)[-1] == "checksums"


def test_each_writers_members_land_in_the_archive(monkeypatch):
    written: dict[str, list[str]] = {}
    monkeypatch.setattr(build, "WRITERS", {name: _recording(w, written) for name, w in WRITERS.items()})
    built = build_release(every_output=True, exports=EXPORTS)
    assert {name: set(paths) for name, paths in written.items()} == EXPECTED_OUTPUTS
    with built.archive() as archive:
        assert sorted(archive.namelist()) == sorted(path for paths in written.values() for path in paths)
        assert verify_release(archive).problems == []


def test_a_packager_that_collects_members_in_a_dict_gets_the_bytes_and_order_the_zip_holds():
    release, items = constructed_release(every_output=True)
    packager = DictPackager()
    write_release(release, items, packager)
    built = build_release(every_output=True)
    with built.archive() as archive:
        assert list(packager.members) == archive.namelist()
        assert packager.members == {name: archive.read(name) for name in archive.namelist()}
        stored = {info.filename for info in archive.infolist() if info.compress_type == zipfile.ZIP_STORED}
    assert stored == {path for path, compress in packager.compressed.items() if not compress}
    assert release.version == built.contents.version
    assert release.manifest.equals(built.contents.manifest, null_equal=True)


def test_the_zip_is_deterministic_stores_images_and_masks_and_deflates_the_rest():
    built = build_release(every_output=True)
    with built.archive() as archive:
        infos = archive.infolist()
        sums = dict(reversed(line.split("  ")) for line in archive.read(layout.SHA256SUMS).decode().splitlines())
        assert sums == {info.filename: hashlib.sha256(archive.read(info)).hexdigest()
                        for info in infos if info.filename != layout.SHA256SUMS}
    assert {info.date_time for info in infos} == {ZIP_EPOCH}
    assert {info.external_attr >> 16 for info in infos} == {0o644}
    stored = {info.filename.split("/")[0] for info in infos if info.compress_type == zipfile.ZIP_STORED}
    assert stored == {"images", "masks", "instances", "qa", layout.LEGEND}
    assert {info.filename for info in infos if info.filename.startswith("qa/") and info.compress_type == zipfile.ZIP_STORED} == {
        "qa/thumbnails/labels_mapped/e1.png"}
    assert build_release(every_output=True).data == built.data


class Notes(ReleaseWriter):
    """notes/<stem>.txt per item and notes/all.txt streamed at the end: a stand-in for a new export."""

    name = "notes"

    def item_members(self, item: ReleaseItem) -> Iterator[Member]:
        yield Member(f"notes/{item.stem}.txt", item.row["split"].encode())

    def version_content(self) -> bytes:
        return b"notes"

    def closing_members(self) -> Iterator[Member]:
        yield Member("notes/all.txt", lambda out: out.write(f"{self.release.version}\n".encode()))


def test_a_new_writer_registered_before_checksums_ships_covered_by_sha256sums_and_the_version(monkeypatch):
    plain = build_release()
    writers = dict(WRITERS)
    checksums = writers.pop("checksums")
    monkeypatch.setattr(build, "WRITERS", {**writers, "notes": Notes, "checksums": checksums})
    noted = build_release()
    with noted.archive() as archive:
        names = archive.namelist()
        assert archive.read("notes/all.txt") == f"{noted.contents.version}\n".encode()
        assert archive.read("notes/train_000000000000.txt") == b"train"
        assert verify_release(archive).problems == []  # SHA256SUMS lists the notes
    assert names.index("notes/all.txt") == names.index(layout.SHA256SUMS) - 1
    assert noted.contents.version != plain.contents.version


def test_a_mask_that_is_not_the_images_size_stops_the_release():
    release, items = constructed_release()
    with pytest.raises(ValueError, match="stored mask is 6x4 at 8 bits, the image is 7x4"):
        write_release(release, items.with_columns(width=7), DictPackager())


def test_building_and_publishing_a_release_loads_no_dagster():
    code = ("import sys, segpipe.core.release.build, segpipe.store.release_build; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'dagster', 'dagster_shared'}))")
    loaded = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert loaded.strip() == "[]"
