"""The release opens in other tools as it says it does, and in segpipe's own ingestion."""

import zipfile

import numpy as np
import polars as pl
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from segpipe.core.rasterize.raster import decode_mask_png
from segpipe.core.release.layout import release_stem
from segpipe.cli.source_check import check_source
from segpipe.core.taxonomy.model import parse_taxonomy
from segpipe.io.locations import open_location
from segpipe_tests.core.release.release_fixture import build_drawn_release, build_release

READ_BACK = parse_taxonomy(
    "name: t\nversion: 1\nignore_index: 255\nunmapped: error\n"
    "classes: [{id: 0, name: road, color: [128, 64, 128]}, {id: 1, name: car, color: [0, 0, 142]},"
    " {id: 2, name: sky, color: [70, 130, 180]}]\n"
    "mappings: {image_mask_folders: {road: road, car: car, sky: sky, void: void}}\n", "read-back.yaml")


def test_coco_json_loads_in_pycocotools_and_its_rles_are_the_masks(tmp_path):
    built = build_release()
    with built.archive() as archive:
        archive.extractall(tmp_path)
    coco = COCO(str(tmp_path / "coco" / "coco.json"))
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == ["road", "car", "sky"]
    assert len(coco.getImgIds()) == 3
    for image in coco.loadImgs(coco.getImgIds()):
        mask = built.masks[image["file_name"].split("/")[1]]
        annotations = coco.loadAnns(coco.getAnnIds(imgIds=image["id"]))
        assert sorted(a["category_id"] for a in annotations) == sorted(set(np.unique(mask).tolist()) - {255})
        for annotation in annotations:
            decoded = mask_utils.decode(annotation["segmentation"])
            assert np.array_equal(decoded.astype(bool), mask == annotation["category_id"])
            assert annotation["area"] == int(mask_utils.area(annotation["segmentation"])) and annotation["iscrowd"] == 0
            assert np.array_equal(coco.annToMask(annotation), decoded)


def test_the_release_read_back_as_an_image_mask_folders_export_reproduces_its_masks(tmp_path):
    built = build_release()
    release = tmp_path / "release.zip"
    release.write_bytes(built.data)
    check = check_source(*open_location(str(release)), tmp_path / "out", b"k" * 32, "image_mask_folders", READ_BACK)
    # the reports' pictures are images without a mask: counted, never mistaken for data
    assert check.batch.quarantine.select("file_name", "rule").rows() == [
        ("legend.png", "annotation_missing"), ("sampling/distribution.png", "annotation_missing")]
    # one mask shape per value present: train has sky, road and ignore, val car and road, test road and ignore
    assert sorted(check.mapped.select("raw_label", "mapping").rows()) == [
        ("car", "mapped"), ("road", "mapped"), ("road", "mapped"), ("road", "mapped"), ("sky", "mapped"),
        ("void", "void"), ("void", "void")]
    images = check.batch.images.sort("file_name")
    assert images["file_name"].to_list() == [f"images/{s}/{s}_000000000000.png" for s in ("test", "train", "val")]
    with zipfile.ZipFile(release) as archive:
        for row in images.iter_rows(named=True):
            read_back = decode_mask_png((tmp_path / "out" / "masks" / f"{release_stem(row['file_name'], row['image_id'])}.png").read_bytes())
            released = decode_mask_png(archive.read(row["file_name"].replace("images/", "masks/", 1)))
            assert np.array_equal(read_back, released)
            assert np.array_equal(released, built.masks[row["file_name"].split("/")[1]])
    files = pl.read_parquet(tmp_path / "out" / "files.parquet")
    assert files.filter(pl.col("path") == "dataset_meta.json").select("role", "outcome").row(0) == ("annotation", "read")


def test_pycocotools_paints_the_drawn_image_as_its_mask_and_decodes_the_fused_one(tmp_path):
    built = build_drawn_release()
    with built.archive() as archive:
        archive.extractall(tmp_path)
    coco = COCO(str(tmp_path / "coco" / "coco.json"))
    for image in coco.loadImgs(coco.getImgIds()):
        mask = decode_mask_png((tmp_path / image["file_name"].replace("images/", "masks/", 1)).read_bytes())
        painted = np.full(mask.shape, 255, np.uint8)
        for annotation in coco.loadAnns(coco.getAnnIds(imgIds=image["id"])):  # in painter's order
            painted[coco.annToMask(annotation).astype(bool)] = annotation["category_id"]
            if isinstance(annotation["segmentation"], dict):
                assert annotation["area"] == int(mask_utils.area(annotation["segmentation"]))
            else:
                # pycocotools rasterizes a polygon as area-preserving pixel squares, segpipe by
                # Pillow's scan conversion (both edges filled): the areas differ by at most one row and
                # one column of the box
                rle = mask_utils.merge(mask_utils.frPyObjects(annotation["segmentation"], *mask.shape))
                assert abs(annotation["area"] - int(mask_utils.area(rle))) <= sum(annotation["bbox"][2:])
        if image["file_name"].startswith("images/val/"):
            assert np.array_equal(painted, mask)
        else:
            assert (painted == mask).mean() >= 0.99
