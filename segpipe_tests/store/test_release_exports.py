"""Releases in parts with every trainer export on: the exports' label files go into annotation parts,
so a nightly still writes only the new batch's parts and stores each image once, a taxonomy edit
writes no image; `segpipe fetch --layout` assembles each layout from the release's images, checked."""

import fsspec
import pytest

from segpipe.core.release import layout
from segpipe.store.release_fetch import FetchRefused, fetch_release
from segpipe_tests.store.parted_releases import edited_val_mask, new_batch_with_the_test_image, publish_constructed, without_test
from segpipe_tests.store.test_release_parts import folder_of, names_in, parts_stored

EXPORTS = ("cityscapes", "voc", "hf")


def _image_members(parts: dict[str, bytes]) -> list[str]:
    return sorted(name for data in parts.values() for name in names_in(data) if layout.is_image(name))


def test_with_every_export_a_nightly_stores_only_new_images_once_and_a_taxonomy_edit_no_image(tmp_path):
    fs, root = fsspec.filesystem("file", auto_mkdir=True), str(tmp_path / "store")
    first = publish_constructed(fs, root, without_test, exports=EXPORTS)
    before = parts_stored(root)
    assert _image_members(before) == ["images/train/train_000000000000.png", "images/val/val_000000000000.png"]

    nightly = publish_constructed(fs, root, new_batch_with_the_test_image, run_id="run-2", exports=EXPORTS)
    after = parts_stored(root)
    new = {name: data for name, data in after.items() if name not in before}
    assert sorted(nightly.parts_written) == sorted(new) and {name: after[name] for name in before} == before
    assert _image_members(new) == ["images/test/test_000000000000.png"]  # the new image, once
    assert {n.split("/")[0] for data in new.values() for n in names_in(data)} == {
        "images", "masks", "labels", "cityscapes", "voc"}

    edited = publish_constructed(fs, root, edited_val_mask, run_id="run-3", exports=EXPORTS)
    written = {name: parts_stored(root)[name] for name in edited.parts_written}
    assert _image_members(written) == []
    assert sorted(n for data in written.values() for n in names_in(data)) == [
        "cityscapes/gtFine/val/batch-1/batch-1_val_000000000000_gtFine_labelTrainIds.png", "labels/val/val_000000000000.txt",
        "masks/val/val_000000000000.png", "voc/SegmentationClass/val_000000000000.png"]

    fetched = fetch_release(fs, folder_of(root, edited.published), tmp_path / "dataset", layouts=EXPORTS)
    assert fetched.assembled == {"cityscapes": 3, "voc": 3, "hf": 3}
    assert fetched.verification.problems == []
    image = tmp_path / "dataset" / "cityscapes" / "leftImg8bit" / "test" / "batch-0" / \
        "batch-0_test_000000000000_leftImg8bit.png"
    assert image.read_bytes() == (tmp_path / "dataset" / "images" / "test" / "test_000000000000.png").read_bytes()


def test_fetching_a_layout_the_version_does_not_carry_is_refused_and_leaves_nothing(tmp_path):
    fs, root = fsspec.filesystem("file", auto_mkdir=True), str(tmp_path / "store")
    plain = publish_constructed(fs, root)
    with pytest.raises(FetchRefused, match="carries no voc layout.*release.exports"):
        fetch_release(fs, folder_of(root, plain.published), tmp_path / "dataset", layouts=("voc",))
    assert not (tmp_path / "dataset").exists() or not any((tmp_path / "dataset").iterdir())
