"""Instance-id masks (segpipe/core/rasterize/instance_masks.py) and their 16-bit PNG, unit by unit, then against
cityscapesScripts on generated street scenes.

Parity: scenes from segpipe_tests/bench/cityscapes_scenes.py go through the pipeline's path
(ingest_batch on the dataset folder, map_labels with the preset, rasterize_instances, then
encode_instance_png and decode_instance_png, as a release would store them) and must be pixel for
pixel identical to `json2instanceImg(json, out, "ids")` with the cityscapes_label_ids preset, and to
`json2instanceImg(json, out, "trainIds")` with the cityscapes (trainIds) preset. No rule differs:
- numbering: json2instanceImg counts instances per label name in file order; the presets have one
  label per instance class (crowds aside) and the reader gives every object z_order 0, so segpipe's
  per-class count in painter's order is the same count. Each part of a multi-part demo object is an
  object of its own in the JSON with no group, so both number the parts separately;
- crowds: json2instanceImg paints `<label>group` with the bare label id and does not count it; the
  presets mark those rules `crowd: true`. `polegroup` is a label of its own without instances;
- void: `unlabeled` (id 0, the ids background) maps to `void` and paints ignore_index 0; in
  trainIds, labels with trainId 255 are painted 255 and never numbered (json2instanceImg's
  `id != 255`), which is `void` here. `license plate` (id -1) is not drawn: `skip`;
- the fill is the same Pillow ImageDraw.polygon call on the same vertices, on a mode "I" canvas.

One thing is not json2instanceImg's own doing: it ends with `instanceImg.save(outImg)` of a mode
"I" (32-bit) image, and Pillow 13 (this venv) no longer writes mode "I" as PNG ("OSError: cannot
write mode I as PNG"; older Pillow wrote it as 16-bit, clipping). The reference therefore runs the
unchanged json2instanceImg with a `.tif` output path, which Pillow writes losslessly as 32-bit, and
compares those pixels with the PNG segpipe writes.
"""

import io
import struct

import fsspec
import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image

from segpipe.core.shared.artefacts import ArtefactStore
from segpipe.core.ingest.formats.annotation import BoxMask, Shape
from segpipe.core.ingest.batch import ingest_batch
from segpipe.core.rasterize.instance_masks import decode_instance_png, rasterize_instances, render_instance_masks
from segpipe.core.rasterize.label_masks import rasterize_label_masks, render_class_masks
from segpipe.core.shared.png import encode_instance_png, encode_mask_png
from segpipe.core.rasterize.raster import rasterize_shapes
from segpipe.core.shared.schemas import MappedShapeRecord
from segpipe.core.ingest.shape_table import ShapeTableBuilder
from segpipe.core.ingest.sources import open_source
from segpipe.core.taxonomy.model import Taxonomy, load_taxonomy, map_labels, parse_taxonomy
from segpipe.environment import PACKAGE_CONFIG
from segpipe_tests.bench.cityscapes_scenes import Dataset, write_dataset

TAXONOMY = """
name: instances
version: 1
ignore_index: 255
unmapped: void
classes:
  - {id: 1,  name: road,    color: [1, 1, 1]}
  - {id: 7,  name: car,     color: [2, 2, 2], has_instances: true, rasterize_boxes: true}
  - {id: 9,  name: person,  color: [3, 3, 3], has_instances: true}
  - {id: 12, name: bicycle, color: [4, 4, 4], has_instances: true}
mappings:
  src:
    - {label: road,     to: road}
    - {label: car,      to: car}
    - {label: cargroup, to: car, crowd: true}
    - {label: person,   to: person}
    - {label: bicycle,  to: bicycle}
    - {label: plate,    to: skip}
    - {label: ego,      to: void}
"""
W, H = 40, 12


@pytest.fixture(scope="module")
def taxonomy() -> Taxonomy:
    return parse_taxonomy(TAXONOMY, "instances.yaml")


def square(x: int, y: int = 2, size: int = 3) -> np.ndarray:
    return np.array([x, y, x + size, y, x + size, y + size, x, y + size], dtype=np.float64)


def polygon(label: str, x: int, y: int = 2, size: int = 3, **fields) -> Shape:
    return Shape(label, "polygon", rings=(square(x, y, size),), **fields)


def mapped(shapes: list[Shape], taxonomy: Taxonomy) -> pl.DataFrame:
    """One entry's shapes as ingest stores them (ShapeTableBuilder), mapped as the pipeline maps them."""
    builder = ShapeTableBuilder()
    builder.add("e", shapes)
    return MappedShapeRecord.validate(map_labels(builder.frame(), pl.DataFrame({"entry_id": ["e"], "source": ["src"]}),
                                                 taxonomy))


def instances(shapes: list[Shape], taxonomy: Taxonomy, width: int = W, height: int = H) -> np.ndarray:
    mask = rasterize_instances(mapped(shapes, taxonomy), width, height, taxonomy)
    assert mask.dtype == np.uint16 and mask.shape == (height, width)
    return mask


# --- numbering ----------------------------------------------------------------------------------


def test_instances_are_numbered_per_class_from_zero_in_painters_order(taxonomy):
    mask = instances([
        polygon("road", 0, 0, 39),
        polygon("car", 2, z_order=1),  # first in the file, painted after the z_order 0 cars
        polygon("car", 8),
        polygon("person", 14),
        polygon("car", 20),
        polygon("car", 22, size=6),  # overlaps the previous car, which keeps its number
        polygon("car", 32, size=2),
        polygon("car", 31, size=5),  # covers the previous car entirely, which still took a number
    ], taxonomy)
    assert [mask[3, x] for x in (3, 9, 15, 21, 22, 26, 33)] == [7005, 7000, 9000, 7001, 7002, 7002, 7004]
    assert not (mask == 7003).any()
    assert mask[0, 0] == 1  # road has no instances: its class id


def test_crowds_paint_the_bare_class_id_and_take_no_number(taxonomy):
    shapes = [
        polygon("cargroup", 2),  # a `crowd: true` rule
        polygon("car", 8, attributes={"iscrowd": "1"}),  # COCO's crowd flag
        polygon("car", 14, attributes={"iscrowd": "0"}),
        polygon("car", 20),
    ]
    assert mapped(shapes, taxonomy)["is_crowd"].to_list() == [True, True, False, False]
    mask = instances(shapes, taxonomy)
    assert [mask[3, x] for x in (3, 9, 15, 21)] == [7, 7, 7000, 7001]


def test_shapes_sharing_a_group_id_are_one_instance_of_each_class(taxonomy):
    mask = instances([
        polygon("car", 0, group_id=5),
        polygon("person", 5),
        polygon("car", 10, group_id=5),  # a second part of the first car
        polygon("person", 15, group_id=5),  # a CVAT group binding a rider and a bicycle: a person of its own
        polygon("bicycle", 20, group_id=5),
        polygon("car", 25, group_id=6),
        polygon("car", 30),
        polygon("person", 35, group_id=5),
    ], taxonomy)
    assert [mask[3, x] for x in (1, 6, 11, 16, 21, 26, 31, 36)] == [7000, 9000, 7000, 9001, 12000, 7001, 7002, 9001]


# --- what is painted ----------------------------------------------------------------------------


def test_void_paints_ignore_skip_is_not_painted_and_neither_takes_a_number(taxonomy):
    mask = instances([
        polygon("car", 2, size=5),
        polygon("ego", 3, size=2),  # void: a hole of ignore in the car
        polygon("car", 12, size=5),
        polygon("plate", 13, size=2),  # skip: the car shows through
        polygon("blob", 22),  # unmapped under policy void
        polygon("car", 28),
    ], taxonomy)
    assert mask[4, 4] == 255 and mask[2, 2] == 7000
    assert mask[4, 14] == 7001
    assert mask[3, 23] == 255
    assert mask[3, 29] == 7002
    assert mask[10, 38] == 255  # no shape: ignore_index


def test_the_class_of_every_pixel_is_the_class_masks(taxonomy):
    """Same shapes, same order, same fill: value // 1000 (or the value below 1000) is rasterize_shapes'
    class, for polygons, exact masks with holes, boxes of classes that paint them, and what is not painted."""
    binary = np.ones((6, 6), dtype=bool)
    binary[2:4, 2:4] = False
    box = BoxMask.from_array(binary, 10, 3)
    shapes = [
        polygon("road", 0, 0, 39),
        polygon("person", 9, 2, 8),
        Shape("car", "mask", mask=box),
        Shape("car", "box", rings=(square(20, 1, 6),)),  # car paints boxes
        Shape("person", "box", rings=(square(28, 1, 6),)),  # person does not: no pixel, no number
        Shape("person", "polyline", rings=(np.array([0.0, 11, 39, 11]),)),
        polygon("person", 30, 6, 3),
        polygon("cargroup", 36, 6, 2),
        polygon("ego", 1, 9, 2),
    ]
    table = mapped(shapes, taxonomy)
    mask = rasterize_instances(table, W, H, taxonomy)
    box_class_ids = frozenset(c.id for c in taxonomy.classes if c.rasterize_boxes)
    classes = rasterize_shapes(table, W, H, taxonomy.ignore_index, box_class_ids)
    np.testing.assert_array_equal(np.where(mask >= 1000, mask // 1000, mask), classes)
    assert mask[4, 12] == 7000 and mask[5, 10] == 7000 and mask[5, 12] == mask[6, 13] == 9000  # the hole shows the person
    assert mask[2, 22] == 7001 and mask[2, 30] == 1 and mask[7, 31] == 9001 and mask[7, 37] == 7
    assert mask[10, 2] == 255


# --- what cannot be encoded ---------------------------------------------------------------------


def one_class(class_id: int) -> Taxonomy:
    return parse_taxonomy(f"""
name: one
version: 1
unmapped: error
classes:
  - {{id: {class_id}, name: thing, color: [1, 2, 3], has_instances: true}}
mappings:
  src:
    - {{label: thing, to: thing}}
    - {{label: things, to: thing, crowd: true}}
""", "one.yaml")


def test_an_instance_id_above_16_bits_is_an_error():
    with pytest.raises(ValueError, match="instance 0 of class 66, id 66000, above the 16-bit limit 65535"):
        instances([polygon("thing", 2)], one_class(66))
    assert instances([polygon("things", 2)], one_class(66))[3, 3] == 66  # a crowd has no number: it fits
    last = instances([polygon("thing", 0, 0, 1)] * 535 + [polygon("thing", 2)], one_class(65))
    assert last[3, 3] == 65535  # k = 535, the largest that fits
    with pytest.raises(ValueError, match="instance 536 of class 65, id 65536"):
        instances([polygon("thing", 0, 0, 1)] * 536 + [polygon("thing", 2)], one_class(65))


def test_an_instance_of_class_zero_is_an_error_as_it_would_read_as_another_class():
    with pytest.raises(ValueError, match="instance of class 0, which the class\\*1000\\+k encoding cannot tell"):
        instances([polygon("thing", 2)], one_class(0))
    assert instances([polygon("things", 2)], one_class(0))[3, 3] == 0


# --- 16-bit PNG ---------------------------------------------------------------------------------


def test_instance_png_is_16_bit_grayscale_that_pillow_reads_exactly():
    mask = np.array([[0, 255, 256, 65535], [26000, 26001, 1, 65535], [0, 0, 0, 0]], dtype=np.uint16)
    data = encode_instance_png(mask)
    assert data[12:16] == b"IHDR" and struct.unpack(">IIBB", data[16:26]) == (4, 3, 16, 0)
    with Image.open(io.BytesIO(data)) as image:
        assert image.mode == "I;16" and image.size == (4, 3)
        np.testing.assert_array_equal(np.asarray(image), mask)
    np.testing.assert_array_equal(decode_instance_png(data), mask)


values = st.one_of(st.integers(0, 65535), st.sampled_from([0, 255, 256, 26000, 26001, 65535]))


@settings(max_examples=60, deadline=None)
@given(arrays(np.uint16, st.tuples(st.integers(1, 30), st.integers(1, 30)), elements=values))
def test_instance_png_round_trips_through_pillow_and_decode(mask):
    data = encode_instance_png(mask)
    with Image.open(io.BytesIO(data)) as image:
        np.testing.assert_array_equal(np.asarray(image), mask)
    decoded = decode_instance_png(data)
    assert decoded.dtype == np.uint16
    np.testing.assert_array_equal(decoded, mask)


def test_decode_reads_pillows_own_16_bit_png():
    mask = np.array([[24000, 24001], [0, 33]], dtype=np.uint16)
    buffer = io.BytesIO()
    Image.fromarray(mask).save(buffer, format="PNG")
    np.testing.assert_array_equal(decode_instance_png(buffer.getvalue()), mask)


def test_encoder_refuses_other_arrays_and_decoder_other_modes():
    for wrong in (np.zeros((2, 2), dtype=np.uint8), np.zeros((2, 2), dtype=np.int32), np.zeros((2, 2, 1), dtype=np.uint16)):
        with pytest.raises(ValueError, match="2-D uint16"):
            encode_instance_png(wrong)
    with pytest.raises(ValueError, match="instance PNG has mode L, expected 16-bit grayscale"):
        decode_instance_png(encode_mask_png(np.zeros((2, 2), dtype=np.uint8)))
    buffer = io.BytesIO()
    Image.new("RGB", (2, 2)).save(buffer, format="PNG")
    with pytest.raises(ValueError, match="instance PNG has mode RGB"):
        decode_instance_png(buffer.getvalue())


# --- parity with cityscapesScripts' json2instanceImg ------------------------------------------

json2instanceImg = pytest.importorskip("cityscapesscripts.preparation.json2instanceImg").json2instanceImg
name2label = pytest.importorskip("cityscapesscripts.helpers.labels").name2label

SEED = 7
KEY = b"instance-parity-key-0123456789"
PRESET = {"ids": "cityscapes_label_ids", "trainIds": "cityscapes"}


def label_value(name: str, encoding: str) -> int:
    label = name2label[name]
    return label.id if encoding == "ids" else label.trainId


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Dataset]:
    def dataset(name: str, count: int, width: int, height: int, **options) -> Dataset:
        return write_dataset(tmp_path_factory.mktemp(name), count, width, height, seed=SEED, images=True, **options)
    return {"small": dataset("small", 6, 512, 256), "full": dataset("full", 2, 2048, 1024),
            "plates": dataset("plates", 4, 512, 256, license_plates=True)}


def reference_masks(data: Dataset, out, encoding: str) -> dict[str, np.ndarray]:
    """json2instanceImg's image per scene, written as 32-bit TIFF (see the module docstring) and read back."""
    masks = {}
    for scene, path in zip(data.scenes, data.json_paths(), strict=True):
        written = out / f"{scene.stem}_gtFine_instanceIds.tif"
        json2instanceImg(str(path), str(written), encoding)
        with Image.open(written) as image:
            assert image.mode == "I"
            masks[scene.stem] = np.asarray(image)
    return masks


def segpipe_masks(data: Dataset, taxonomy: Taxonomy) -> dict[str, np.ndarray]:
    """ingest_batch on the dataset folder, map_labels, rasterize_instances, and the PNG round trip."""
    with open_source(fsspec.filesystem("file"), str(data.cityscapes_root)) as source:
        batch = ingest_batch(source, "instances", KEY)
    assert batch.source_format == "cityscapes_polygons" and batch.quarantine.is_empty()
    table = MappedShapeRecord.validate(
        map_labels(batch.shapes, batch.images.select("entry_id", pl.lit("cityscapes").alias("source")), taxonomy))
    assert not table["mapping"].str.starts_with("unmapped").any()
    stems = {scene.image_name: scene.stem for scene in data.scenes}
    masks = {}
    for row in batch.images.iter_rows(named=True):
        mask = rasterize_instances(table.filter(pl.col("entry_id") == row["entry_id"]), row["width"], row["height"], taxonomy)
        masks[stems[row["file_name"]]] = decode_instance_png(encode_instance_png(mask))
    assert len(masks) == len(data.scenes)
    return masks


@pytest.mark.parametrize("encoding", ["ids", "trainIds"])
@pytest.mark.parametrize("which", ["small", "full", "plates"])
def test_instance_masks_are_identical_to_json2instanceImg(which, encoding, scenes, tmp_path):
    data = scenes[which]
    reference = reference_masks(data, tmp_path, encoding)
    ours = segpipe_masks(data, load_taxonomy(PACKAGE_CONFIG / "presets" / f"{PRESET[encoding]}.yaml"))
    differing = {stem: int((ours[stem] != expected).sum()) for stem, expected in reference.items()
                 if not np.array_equal(ours[stem], expected)}
    assert not differing, f"pixels differing per scene: {differing}"
    # The rules above decide pixels here: numbered cars and persons, bare-id crowds, polegroup, voids.
    values = set().union(*(np.unique(mask).tolist() for mask in reference.values()))
    car, person = label_value("car", encoding), label_value("person", encoding)
    assert {car, person, car * 1000, car * 1000 + 1, person * 1000, label_value("ego vehicle", encoding),
            label_value("polegroup", encoding)} <= values
    assert max(values) < 65536


# --- the batch: one table row per entry ----------------------------------------------------------


def test_a_batch_gets_instance_masks_and_an_entry_that_cannot_be_encoded_gets_a_reason_not_a_crash():
    taxonomy = one_class(66)
    builder = ShapeTableBuilder()
    builder.add("crowd", [polygon("things", 2)])
    builder.add("object", [polygon("thing", 2)])
    shapes = builder.frame()
    entries = pl.DataFrame({"entry_id": ["crowd", "object"], "source": ["src", "src"]})
    mapped_shapes = MappedShapeRecord.validate(map_labels(shapes, entries, taxonomy))
    store: dict[str, bytes] = {}
    images = pl.DataFrame({"entry_id": ["crowd", "object"], "image_id": ["i1", "i2"], "annotator": ["a", "a"],
                           "is_gold": [False, False], "source": ["src", "src"]})
    labels = rasterize_label_masks(images.with_columns(batch_id=pl.lit("b"), width=pl.lit(W), height=pl.lit(H)),
                                   shapes, ArtefactStore.in_memory(store))
    masks = render_class_masks(labels, mapped_shapes, images, taxonomy, "grayscale", ArtefactStore.in_memory(store))
    with_instances = render_instance_masks("b", masks, mapped_shapes, taxonomy, ArtefactStore.in_memory(store))
    rows = {r["entry_id"]: r for r in with_instances.iter_rows(named=True)}
    assert rows["crowd"]["instance_error"] is None and rows["crowd"]["instance_mask_key"].startswith("instance-masks/b/")
    assert decode_instance_png(store[rows["crowd"]["instance_mask_key"]])[3, 3] == 66
    assert rows["object"]["instance_mask_key"] is None
    assert rows["object"]["instance_error"].startswith("entry object: shape 'thing' would be instance 0 of class 66")
    assert with_instances.drop("instance_mask_key", "instance_error").equals(
        masks.drop("instance_mask_key", "instance_error"))  # class masks are unaffected
