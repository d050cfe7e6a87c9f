import io
from pathlib import Path

import numpy as np
import pytest
from cityscapesscripts.helpers.labels import labels
from PIL import Image

from segpipe.core.ingest.formats.cityscapes_pngs import CITYSCAPES_PNGS, HAS_INSTANCES, LABEL_NAMES
from segpipe.core.ingest.formats.reader import ReaderOptions
from segpipe_tests.core.ingest.formats.memory_source import MemorySource

SAMPLE = Path(__file__).parents[3] / "fixtures" / "exports" / "cityscapes_label_pngs_datumaro"
GT = "gtFine/val/c/c_000001_000019_gtFine"


def read(files: dict[str, bytes]):
    source = MemorySource(files)
    claimed = CITYSCAPES_PNGS.annotation_files(source.names(), source.read)
    return list(CITYSCAPES_PNGS.read(source, claimed, ReaderOptions()))


def png(values: np.ndarray, mode: str) -> bytes:
    out = io.BytesIO()
    Image.fromarray(values.astype(np.uint16 if mode == "I;16" else np.uint8)).convert(mode).save(out, format="PNG")
    return out.getvalue()


def test_the_label_table_is_cityscapesscripts():
    assert LABEL_NAMES == {label.id: label.name for label in labels if label.id >= 0}
    assert HAS_INSTANCES == {label.id for label in labels if label.hasInstances}


def test_datumaros_instance_ids_become_one_mask_per_instance_and_label():
    files = {p.relative_to(SAMPLE).as_posix(): p.read_bytes() for p in SAMPLE.rglob("*") if p.is_file()}
    images = {image.file_name: image for image in read(files)}
    assert set(images) == {n.replace("gtFine/", "leftImg8bit/", 1).replace("_gtFine_instanceIds.png", "_leftImg8bit.png")
                           for n in files if n.endswith("_instanceIds.png")}
    # [[3, 3, 27001, 27002, 27002]]: out of roi, then two trucks
    truck = images["leftImg8bit/test/defaultcity/defaultcity_000001_000031_leftImg8bit.png"]
    assert [(s.raw_label, s.mask.left, s.mask.width) for s in truck.shapes] == [
        ("out of roi", 0, 2), ("truck", 2, 1), ("truck", 3, 2)]


def test_a_crowd_of_a_label_with_instances_is_marked_as_the_polygon_reader_marks_it():
    values = np.array([[0, 26, 26000], [7, 26, 26001]])
    [image] = read({f"{GT}_instanceIds.png": png(values, "I;16")})
    assert (image.file_name, image.width, image.height, image.error) == (
        "leftImg8bit/val/c/c_000001_000019_leftImg8bit.png", 3, 2, None)
    assert [(s.raw_label, dict(s.attributes)) for s in image.shapes] == [
        ("unlabeled", {}), ("road", {}), ("cargroup", {"group": "1", "base_label": "car"}), ("car", {}), ("car", {})]
    car = image.shapes[3].mask
    assert (car.left, car.top, car.to_array().tolist()) == (2, 0, [[True]])


def test_instance_ids_win_over_label_ids_and_the_other_pngs_are_claimed_unread():
    files = {f"{GT}_instanceIds.png": png(np.array([[24000, 24001]]), "I;16"),
             f"{GT}_labelIds.png": png(np.array([[24, 24]]), "L"),
             f"{GT}_labelTrainIds.png": png(np.array([[11, 11]]), "L"),
             f"{GT}_color.png": b"not read"}
    assert CITYSCAPES_PNGS.annotation_files(sorted(files), files.__getitem__) == sorted(files)
    [image] = read(files)
    assert [s.raw_label for s in image.shapes] == ["person", "person"]


def test_label_ids_alone_give_one_mask_per_label_and_unknown_ids_keep_their_number():
    [image] = read({f"{GT}_labelIds.png": png(np.array([[7, 26, 40]]), "L")})
    assert [s.raw_label for s in image.shapes] == ["road", "car", "40"]


def test_a_flat_batch_pairs_the_png_with_the_image_beside_it():
    files = {"c_1_gtFine_labelIds.png": png(np.array([[7]]), "L"), "c_1_leftImg8bit.png": b""}
    [image] = read(files)
    assert image.file_name == "c_1_leftImg8bit.png"


def test_the_image_is_found_by_the_shared_lookup_and_a_missing_one_keeps_the_shapes():
    """As for the polygons: by its name anywhere in the batch when neither Cityscapes place holds it."""
    files = {f"{GT}_labelIds.png": png(np.array([[7]]), "L"), "uploads/c_000001_000019_leftImg8bit.png": b""}
    [image] = read(files)
    assert (image.file_name, image.image_error) == ("uploads/c_000001_000019_leftImg8bit.png", None)
    [alone] = read({f"{GT}_labelIds.png": png(np.array([[7]]), "L")})
    assert alone.file_name == "leftImg8bit/val/c/c_000001_000019_leftImg8bit.png"
    assert alone.image_error.rule == "image_missing" and [s.raw_label for s in alone.shapes] == ["road"]


@pytest.mark.parametrize(("data", "rule"), [
    (b"\x89PNG truncated", "mask_undecodable"),
    (png(np.zeros((1, 2, 3)), "RGB"), "mask_mode_unsupported"),
])
def test_a_bad_png_is_an_error_on_its_image(data, rule):
    [image] = read({f"{GT}_labelIds.png": data})
    assert image.error.rule == rule
    assert image.file_name.endswith("_leftImg8bit.png") and image.shapes == []
