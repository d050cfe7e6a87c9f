"""The taxonomy presets in segpipe/config/presets, each checked against its public definition.

Every preset is checked twice: as plain data (`yaml.safe_load` plus a small reference resolver
written here from the documented rule semantics), so the data is verified whatever the parser
does, and through `load_taxonomy` / `Taxonomy.resolve` and the real rasterizer, so the preset
also works in the pipeline. Public definitions:
- Cityscapes: cityscapesScripts' `helpers/labels.py` and `preparation/json2labelImg.py`
  (pip cityscapesscripts==2.3.0, imported here);
- PASCAL VOC: the devkit's class list and colour map (VOClabelcolormap.m, recomputed here);
- ADE20K: objectInfo150 of CSAILVision/sceneparsing, embedded below;
- COCO-Stuff: labels.txt of nightrome/cocostuff, embedded below.
"""

import fnmatch
import io
import json
import re
from functools import cache
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml
from cityscapesscripts.helpers import annotation as cityscapes_annotation
from cityscapesscripts.helpers import labels as labels_py
from cityscapesscripts.preparation import json2labelImg
from PIL import Image

from segpipe.core.ingest.formats.annotation import AnnotatedImage
from segpipe.core.ingest.formats.cityscapes import CITYSCAPES
from segpipe.core.ingest.formats.coco import COCO_INSTANCES
from segpipe.core.ingest.formats.mask_folders import ADE20K, VOC_SEGMENTATION
from segpipe.core.ingest.formats.reader import FormatReader, ReaderOptions
from segpipe.core.rasterize.raster import rasterize_shapes
from segpipe.core.taxonomy.model import Taxonomy, load_taxonomy, normalize_label
from segpipe_tests.core.ingest.formats.memory_source import MemorySource

PRESETS = Path(__file__).parents[3] / "segpipe" / "config" / "presets"
PRESET_FILES = ("cityscapes", "cityscapes_label_ids", "pascal_voc", "ade20k", "coco_stuff")
SPECIAL = ("void", "skip")


@cache
def raw(preset: str) -> dict:
    return yaml.safe_load((PRESETS / f"{preset}.yaml").read_text(encoding="utf-8"))


@cache
def loaded(preset: str) -> Taxonomy:
    return load_taxonomy(PRESETS / f"{preset}.yaml")


def classes(preset: str) -> list[dict]:
    """The class entries with the documented defaults filled in."""
    defaults = {"category": None, "trainable": True, "has_instances": False, "rasterize_boxes": False}
    return [{**defaults, **entry} for entry in raw(preset)["classes"]]


def yaml_resolve(preset: str, source: str, label: str, attributes: dict[str, str] | None = None) -> str | None:
    """Reference resolver on the plain YAML: the first rule of the source whose matcher and `when`
    match gives the target (a class name, void or skip); None when no rule matches."""
    key = normalize_label(label)
    for rule in raw(preset)["mappings"][source]:
        when = rule.get("when", {})
        if any((attributes or {}).get(name) != str(value) for name, value in when.items()):
            continue
        if "label" in rule:
            hit = key == normalize_label(str(rule["label"]))
        elif "labels" in rule:
            hit = key in {normalize_label(str(alias)) for alias in rule["labels"]}
        elif "glob" in rule:
            hit = fnmatch.fnmatchcase(key, normalize_label(rule["glob"]))
        else:
            hit = re.search(rule["regex"], key) is not None
        if hit:
            return rule["to"]
    return None


def expect_resolves(preset: str, source: str, expected: dict[str, str], attributes: dict | None = None) -> None:
    """Each raw label maps to the expected target, in the plain data and through the parser."""
    assert {label: yaml_resolve(preset, source, label, attributes) for label in expected} == expected
    taxonomy = loaded(preset)
    by_name = taxonomy.class_by_name()
    for label, target in expected.items():
        outcome = (None, target) if target in SPECIAL else (by_name[target].id, "mapped")
        assert taxonomy.resolve(source, label, attributes or {}) == outcome, label


@pytest.mark.parametrize("preset", PRESET_FILES)
def test_every_preset_is_well_formed_and_loads(preset):
    doc = raw(preset)
    assert doc["name"] == preset and doc["version"] == 1 and doc["unmapped"] == "error"
    entries = classes(preset)
    ids = [c["id"] for c in entries]
    names = [c["name"] for c in entries]
    assert len(set(ids)) == len(ids) and len(set(names)) == len(names)
    assert doc["ignore_index"] not in ids and all(0 <= i <= 255 for i in ids)
    assert not set(names) & set(SPECIAL)
    targets = {rule["to"] for rules in doc["mappings"].values() for rule in rules}
    assert targets <= set(names) | set(SPECIAL)
    taxonomy = loaded(preset)
    assert (taxonomy.name, taxonomy.ignore_index, taxonomy.unmapped) == (preset, doc["ignore_index"], "error")
    assert [(c.id, c.name, list(c.color), c.category, c.trainable, c.has_instances) for c in taxonomy.classes] == [
        (c["id"], c["name"], c["color"], c["category"], c["trainable"], c["has_instances"]) for c in entries]
    assert set(taxonomy.mappings) == set(doc["mappings"])


@pytest.mark.parametrize(("preset", "reader"), [
    ("cityscapes", CITYSCAPES), ("cityscapes_label_ids", CITYSCAPES), ("pascal_voc", VOC_SEGMENTATION),
    ("ade20k", ADE20K), ("coco_stuff", COCO_INSTANCES)])
def test_every_preset_maps_its_readers_default_source(preset, reader):
    """A batch without `source` in batch.json has the reader's name as its source: the preset's one
    set of rules applies to it, as to the dataset's own name."""
    taxonomy = loaded(preset)
    [source] = raw(preset)["mappings"]
    assert taxonomy.rule_source(reader.name) == source
    assert taxonomy.mappings[source] and taxonomy.match(reader.name, "0" if preset == "ade20k" else "person", {})


# --- Cityscapes -------------------------------------------------------------------------------

def group_labels() -> dict[str, str]:
    """`<label>group` crowd names json2labelImg resolves by stripping the suffix, for the labels
    assureSingleInstanceName accepts (those with instances) -> the base label."""
    found = {}
    for label in labels_py.labels:
        crowd = label.name + "group"
        if crowd not in labels_py.name2label and labels_py.assureSingleInstanceName(crowd) is not None:
            found[crowd] = label.name
    return found


def test_cityscapes_train_classes_are_the_train_ids_of_labels_py():
    train = sorted((lab for lab in labels_py.labels if 0 <= lab.trainId < 255), key=lambda lab: lab.trainId)
    assert [lab.trainId for lab in train] == list(range(19))
    assert classes("cityscapes") == [
        {"id": lab.trainId, "name": lab.name, "color": list(lab.color), "category": lab.category, "trainable": True,
         "has_instances": lab.hasInstances, "rasterize_boxes": False}
        for lab in train]
    assert raw("cityscapes")["ignore_index"] == labels_py.name2label["unlabeled"].trainId == 255


def test_cityscapes_maps_every_label_of_labels_py_as_json2labelimg_does_for_train_ids():
    def target(name: str) -> str:
        label = labels_py.name2label[name]
        if label.id < 0:
            return "skip"  # json2labelImg does not draw negative ids (license plate)
        return "void" if label.trainId in (255, -1) else label.name
    expected = {lab.name: target(lab.name) for lab in labels_py.labels}
    expected |= {crowd: target(base) for crowd, base in group_labels().items()}
    assert len(labels_py.labels) == 35 and len(group_labels()) == 10
    assert expected["polegroup"] == "void" and expected["cargroup"] == "car" and expected["license plate"] == "skip"
    expect_resolves("cityscapes", "cityscapes", expected)
    expect_resolves("cityscapes", "cityscapes", {"  Traffic   SIGN ": "traffic sign", "CarGroup": "car"})
    assert yaml_resolve("cityscapes", "cityscapes", "skygroup") is None  # not a crowd label: unmapped, an error
    assert loaded("cityscapes").resolve("cityscapes", "skygroup", {}) == (None, "unmapped_error")


def test_cityscapes_label_ids_classes_are_the_label_ids_of_labels_py():
    with_ids = [lab for lab in labels_py.labels if lab.id >= 0]
    assert [lab.id for lab in with_ids] == list(range(34))
    unlabeled = labels_py.name2label["unlabeled"]
    assert raw("cityscapes_label_ids")["ignore_index"] == unlabeled.id == 0  # json2labelImg's "ids" background
    assert classes("cityscapes_label_ids") == [
        {"id": lab.id, "name": lab.name, "color": list(lab.color), "category": lab.category, "trainable": not lab.ignoreInEval,
         "has_instances": lab.hasInstances, "rasterize_boxes": False}
        for lab in with_ids if lab.id != unlabeled.id]
    assert sum(c["trainable"] for c in classes("cityscapes_label_ids")) == 19


def test_cityscapes_label_ids_maps_every_label_of_labels_py():
    def target(name: str) -> str:
        label = labels_py.name2label[name]
        return "skip" if label.id < 0 else "void" if label.id == 0 else label.name
    expected = {lab.name: target(lab.name) for lab in labels_py.labels}
    expected |= {crowd: target(base) for crowd, base in group_labels().items()}
    expect_resolves("cityscapes_label_ids", "cityscapes", expected)


@pytest.mark.parametrize("preset", ["cityscapes", "cityscapes_label_ids"])
def test_cityscapes_crowd_rules_are_the_group_labels_json2instanceimg_leaves_unnumbered(preset):
    """json2instanceImg paints a `<label>group` it strips with the bare id and counts no instance;
    `polegroup`, a label of its own, is no crowd."""
    assert {rule["label"] for rule in raw(preset)["mappings"]["cityscapes"] if rule.get("crowd")} == set(group_labels())
    crowds = {rule.patterns[0] for rule in loaded(preset).mappings["cityscapes"] if rule.crowd}
    assert crowds == set(group_labels()) and "polegroup" not in crowds
    assert all(labels_py.name2label[base].hasInstances for base in group_labels().values())


W, H = 48, 32


def city_polygons() -> bytes:
    """Every label of labels.py and every crowd label as an overlapping strip, a licence plate on a
    car, and a corner no polygon covers: paint order, void and skip all show in the mask."""
    names = [lab.name for lab in labels_py.labels if lab.name != "license plate"] + sorted(group_labels())
    def strip(i: int) -> list[list[int]]:
        left, top = (i * 3) % W, i // 16 * 10
        return [[left, top], [left + 9, top], [left + 9, top + 14], [left, top + 14]]
    objects = [{"label": name, "polygon": strip(i)} for i, name in enumerate(names)]
    objects.append({"label": "car", "polygon": [[5, 20], [25, 20], [25, 28], [5, 28]]})
    objects.append({"label": "license plate", "polygon": [[12, 24], [18, 24], [18, 27], [12, 27]]})
    return json.dumps({"imgWidth": W, "imgHeight": H, "objects": objects}).encode()


def read_one(reader: FormatReader, files: dict[str, bytes]) -> AnnotatedImage:
    source = MemorySource(files)
    [image] = reader.read(source, reader.annotation_files(source.names(), source.read), ReaderOptions())
    assert image.error is None
    return image


def release_mask(image: AnnotatedImage, taxonomy: Taxonomy, source: str) -> np.ndarray:
    """The image's shapes mapped by the preset and painted by segpipe's rasterizer."""
    rows = []
    for index, shape in enumerate(image.shapes):
        class_id, mapping = taxonomy.resolve(source, shape.raw_label, shape.attributes)
        mask = shape.mask
        rows.append({
            "shape_index": index, "z_order": shape.z_order, "kind": shape.kind, "class_id": class_id, "mapping": mapping,
            "rings": [ring.tolist() for ring in shape.rings],
            "mask_box": None if mask is None else [mask.left, mask.top, mask.width, mask.height],
            "mask_counts": None if mask is None else mask.counts.tolist(),
        })
    shapes = pl.DataFrame(rows, schema={
        "shape_index": pl.Int64, "z_order": pl.Int64, "kind": pl.String, "class_id": pl.Int64, "mapping": pl.String,
        "rings": pl.List(pl.List(pl.Float64)), "mask_box": pl.List(pl.Int64), "mask_counts": pl.List(pl.UInt32)})
    return rasterize_shapes(shapes, image.width, image.height, taxonomy.ignore_index)


@pytest.mark.parametrize(("preset", "encoding"), [("cityscapes", "trainIds"), ("cityscapes_label_ids", "ids")])
def test_cityscapes_release_masks_equal_json2labelimg(preset, encoding):
    document = city_polygons()
    annotation = cityscapes_annotation.Annotation()
    annotation.fromJsonText(document.decode())
    expected = np.asarray(json2labelImg.createLabelImage(annotation, encoding))
    image = read_one(CITYSCAPES, {"gtFine/train/x/x_000000_000000_gtFine_polygons.json": document})
    mask = release_mask(image, loaded(preset), "cityscapes")
    np.testing.assert_array_equal(mask, expected)
    car = labels_py.name2label["car"]
    assert mask[25, 15] == (car.trainId if encoding == "trainIds" else car.id)  # under the plate
    assert len(np.unique(expected)) > 10


# --- PASCAL VOC -------------------------------------------------------------------------------

VOC_NAMES = [  # VOCdevkit VOCcode/VOCinit.m, VOCopts.classes, with background at 0
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
]


def devkit_colormap(n: int = 256) -> list[list[int]]:
    """VOCdevkit VOClabelcolormap.m: bits 0, 1, 2 of the index go to the top bit of R, G, B, then
    bits 3, 4, 5 to the next bit down, and so on."""
    cmap = []
    for i in range(n):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        cmap.append([r, g, b])
    return cmap


def test_voc_classes_and_colours_are_the_devkits():
    cmap = devkit_colormap()
    assert [(c["id"], c["name"], c["color"]) for c in classes("pascal_voc")] == [
        (i, name, cmap[i]) for i, name in enumerate(VOC_NAMES)]
    assert cmap[1] == [128, 0, 0] and cmap[15] == [192, 128, 128]  # aeroplane, person
    assert raw("pascal_voc")["ignore_index"] == 255


def test_voc_maps_every_label_the_reader_emits_and_the_release_equals_the_voc_mask():
    values = np.array(list(range(21)) + [255], dtype=np.uint8)
    pixels = np.tile(np.repeat(values, 2), (3, 1))
    buffer = io.BytesIO()
    palette = Image.fromarray(pixels, mode="P")
    palette.putpalette([c for rgb in devkit_colormap() for c in rgb])
    palette.save(buffer, format="PNG")
    image = read_one(VOC_SEGMENTATION, {"VOC2012/SegmentationClass/2007_000032.png": buffer.getvalue()})
    assert [shape.raw_label for shape in image.shapes] == [*VOC_NAMES, "void"]
    expect_resolves("pascal_voc", "voc", {name: name for name in VOC_NAMES} | {"void": "void"})
    np.testing.assert_array_equal(release_mask(image, loaded("pascal_voc"), "voc"), pixels)


# --- ADE20K -----------------------------------------------------------------------------------

# objectInfo150, Name column, Idx 1..150 in order (trailing spaces of `bed `, `windowpane, window `
# and `bicycle, bike, wheel, cycle ` stripped). Source: CSAILVision/sceneparsing, objectInfo150.txt
# at commit 4ce20bd9115d415d545b26eaa0387a0740838ba5
# (https://github.com/CSAILVision/sceneparsing/blob/4ce20bd9115d415d545b26eaa0387a0740838ba5/objectInfo150.txt);
# objectInfo150.csv in ADEChallengeData2016 holds the same list with `;` between synonyms.
ADE_OBJECT_INFO_150 = [
    "wall", "building, edifice", "sky", "floor, flooring", "tree", "ceiling", "road, route", "bed",
    "windowpane, window", "grass", "cabinet", "sidewalk, pavement", "person, individual, someone, somebody, mortal, soul",
    "earth, ground", "door, double door", "table", "mountain, mount", "plant, flora, plant life",
    "curtain, drape, drapery, mantle, pall", "chair", "car, auto, automobile, machine, motorcar", "water",
    "painting, picture", "sofa, couch, lounge", "shelf", "house", "sea", "mirror", "rug, carpet, carpeting", "field",
    "armchair", "seat", "fence, fencing", "desk", "rock, stone", "wardrobe, closet, press", "lamp",
    "bathtub, bathing tub, bath, tub", "railing, rail", "cushion", "base, pedestal, stand", "box", "column, pillar",
    "signboard, sign", "chest of drawers, chest, bureau, dresser", "counter", "sand", "sink", "skyscraper",
    "fireplace, hearth, open fireplace", "refrigerator, icebox", "grandstand, covered stand", "path", "stairs, steps",
    "runway", "case, display case, showcase, vitrine", "pool table, billiard table, snooker table", "pillow",
    "screen door, screen", "stairway, staircase", "river", "bridge, span", "bookcase", "blind, screen",
    "coffee table, cocktail table", "toilet, can, commode, crapper, pot, potty, stool, throne", "flower", "book", "hill",
    "bench", "countertop", "stove, kitchen stove, range, kitchen range, cooking stove", "palm, palm tree",
    "kitchen island",
    "computer, computing machine, computing device, data processor, electronic computer, information processing system",
    "swivel chair", "boat", "bar", "arcade machine", "hovel, hut, hutch, shack, shanty",
    "bus, autobus, coach, charabanc, double-decker, jitney, motorbus, motorcoach, omnibus, passenger vehicle", "towel",
    "light, light source", "truck, motortruck", "tower", "chandelier, pendant, pendent", "awning, sunshade, sunblind",
    "streetlight, street lamp", "booth, cubicle, stall, kiosk",
    "television, television receiver, television set, tv, tv set, idiot box, boob tube, telly, goggle box",
    "airplane, aeroplane, plane", "dirt track", "apparel, wearing apparel, dress, clothes", "pole", "land, ground, soil",
    "bannister, banister, balustrade, balusters, handrail", "escalator, moving staircase, moving stairway",
    "ottoman, pouf, pouffe, puff, hassock", "bottle", "buffet, counter, sideboard",
    "poster, posting, placard, notice, bill, card", "stage", "van", "ship", "fountain",
    "conveyer belt, conveyor belt, conveyer, conveyor, transporter", "canopy", "washer, automatic washer, washing machine",
    "plaything, toy", "swimming pool, swimming bath, natatorium", "stool", "barrel, cask", "basket, handbasket",
    "waterfall, falls", "tent, collapsible shelter", "bag", "minibike, motorbike", "cradle", "oven", "ball",
    "food, solid food", "step, stair", "tank, storage tank", "trade name, brand name, brand, marque",
    "microwave, microwave oven", "pot, flowerpot", "animal, animate being, beast, brute, creature, fauna",
    "bicycle, bike, wheel, cycle", "lake", "dishwasher, dish washer, dishwashing machine",
    "screen, silver screen, projection screen", "blanket, cover", "sculpture", "hood, exhaust hood", "sconce", "vase",
    "traffic light, traffic signal, stoplight", "tray",
    "ashcan, trash can, garbage can, wastebin, ash bin, ash-bin, ashbin, dustbin, trash barrel, trash bin", "fan",
    "pier, wharf, wharfage, dock", "crt screen", "plate", "monitor, monitoring device", "bulletin board, notice board",
    "shower", "radiator", "glass, drinking glass", "clock", "flag",
]


def test_ade20k_classes_are_object_info_150_with_zero_as_ignore():
    assert len(ADE_OBJECT_INFO_150) == 150
    first_names = [name.split(",")[0].strip() for name in ADE_OBJECT_INFO_150]
    assert [(c["id"], c["name"]) for c in classes("ade20k")] == list(enumerate(first_names, start=1))
    assert raw("ade20k")["ignore_index"] == 0  # ADE's "other objects", not a class, ignored by the benchmark
    colours = [c["color"] for c in classes("ade20k")]
    assert colours[:3] == [[120, 120, 120], [180, 120, 120], [6, 230, 230]]  # wall, building, sky (color150)


def test_ade20k_maps_every_number_the_reader_emits_and_the_release_equals_the_challenge_mask():
    pixels = np.tile(np.arange(151, dtype=np.uint8), (2, 1))
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode="L").save(buffer, format="PNG")
    image = read_one(ADE20K, {"ADEChallengeData2016/annotations/validation/ADE_val_00000001.png": buffer.getvalue()})
    assert [shape.raw_label for shape in image.shapes] == [str(i) for i in range(151)]
    first_names = [name.split(",")[0].strip() for name in ADE_OBJECT_INFO_150]
    expected = {"0": "void"} | {str(i): name for i, name in enumerate(first_names, start=1)}
    expected |= {name: name for name in first_names} | {"television receiver": "television"}
    expect_resolves("ade20k", "ade20k", expected)
    np.testing.assert_array_equal(release_mask(image, loaded("ade20k"), "ade20k"), pixels)
    assert loaded("ade20k").resolve("ade20k", "151", {}) == (None, "unmapped_error")


# --- COCO-Stuff -------------------------------------------------------------------------------

# labels.txt of nightrome/cocostuff at commit cad94560af961375160d9e9e55a1612bc319cd5b
# (https://github.com/nightrome/cocostuff/blob/cad94560af961375160d9e9e55a1612bc319cd5b/labels.txt):
# index: name, 0 unlabeled, 1..91 things, 92..182 stuff.
COCO_STUFF_LABELS = dict(enumerate([
    "unlabeled", "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "street sign", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow",
    "elephant", "bear", "zebra", "giraffe", "hat", "backpack", "umbrella", "shoe", "eye glasses", "handbag", "tie",
    "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard",
    "surfboard", "tennis racket", "bottle", "plate", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana",
    "apple", "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
    "potted plant", "bed", "mirror", "dining table", "window", "desk", "toilet", "door", "tv", "laptop", "mouse",
    "remote", "keyboard", "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator", "blender", "book",
    "clock", "vase", "scissors", "teddy bear", "hair drier", "toothbrush", "hair brush", "banner", "blanket", "branch",
    "bridge", "building-other", "bush", "cabinet", "cage", "cardboard", "carpet", "ceiling-other", "ceiling-tile",
    "cloth", "clothes", "clouds", "counter", "cupboard", "curtain", "desk-stuff", "dirt", "door-stuff", "fence",
    "floor-marble", "floor-other", "floor-stone", "floor-tile", "floor-wood", "flower", "fog", "food-other", "fruit",
    "furniture-other", "grass", "gravel", "ground-other", "hill", "house", "leaves", "light", "mat", "metal",
    "mirror-stuff", "moss", "mountain", "mud", "napkin", "net", "paper", "pavement", "pillow", "plant-other",
    "plastic", "platform", "playingfield", "railing", "railroad", "river", "road", "rock", "roof", "rug", "salad",
    "sand", "sea", "shelf", "sky-other", "skyscraper", "snow", "solid-other", "stairs", "stone", "straw",
    "structural-other", "table", "tent", "textile-other", "towel", "tree", "vegetable", "wall-brick", "wall-concrete",
    "wall-other", "wall-panel", "wall-stone", "wall-tile", "wall-wood", "water-other", "waterdrops", "window-blind",
    "window-other", "wood",
]))
# labels.md of the same repository: thing ids "Removed from COCO", never annotated.
COCO_REMOVED = {12, 26, 29, 30, 45, 66, 68, 69, 71, 83, 91}


def coco_kept() -> list[tuple[int, str]]:
    return [(i, name) for i, name in COCO_STUFF_LABELS.items() if i != 0 and i not in COCO_REMOVED]


def test_coco_stuff_has_171_contiguous_classes_80_things_91_stuff():
    assert len(COCO_STUFF_LABELS) == 183
    entries = classes("coco_stuff")
    assert [c["id"] for c in entries] == list(range(171))
    assert [c["name"] for c in entries] == [name for _, name in coco_kept()]
    assert [c["category"] for c in entries].count("thing") == 80 and [c["category"] for c in entries].count("stuff") == 91
    assert all(c["category"] == ("thing" if i <= 91 else "stuff") for c, (i, _) in zip(entries, coco_kept(), strict=True))
    assert all(c["has_instances"] == (c["category"] == "thing") for c in entries)
    assert raw("coco_stuff")["ignore_index"] == 255
    cmap = devkit_colormap()
    assert [c["color"] for c in entries] == [cmap[i] for i, _ in coco_kept()]  # VOC colour map of the labels.txt id
    assert len({tuple(c["color"]) for c in entries}) == 171


def test_coco_stuff_maps_every_category_name_and_skips_stuff_other():
    expect_resolves("coco_stuff", "coco", {name: name for _, name in coco_kept()} | {"other": "skip"})
    for removed in COCO_REMOVED:
        assert yaml_resolve("coco_stuff", "coco", COCO_STUFF_LABELS[removed]) is None
    assert loaded("coco_stuff").resolve("coco", "street sign", {}) == (None, "unmapped_error")
