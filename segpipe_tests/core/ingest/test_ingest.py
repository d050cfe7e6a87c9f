import io
import json
import shutil
import zipfile
from pathlib import Path

import fsspec
import polars as pl
import pytest
from PIL import Image

from segpipe.core.ingest.batch import ingest_batch
from segpipe.core.ingest.landing import list_ready_batches
from segpipe.core.ingest.sources import open_source
from segpipe_tests.labelme_export import write_labelme_export

KEY = b"test-key-0123456789abcdef"


def ingest_path(path: Path, batch_id: str | None = None, store=None, declared_format=None):
    with open_source(fsspec.filesystem("file"), str(path)) as source:
        return ingest_batch(source, batch_id or path.name.removesuffix(".zip"), KEY, store, declared_format)


@pytest.fixture(scope="module")
def ingested(tiny_demo):
    root = Path(tiny_demo.landing_root)
    return {batch: ingest_path(root / batch) for batch in list_ready_batches(fsspec.filesystem("file"), str(root))}


def test_every_image_is_accepted_or_quarantined_and_every_file_is_listed(ingested, tiny_demo, ground_truth):
    for batch in ground_truth["batches"]:
        result = ingested[batch["batch_id"]]
        batch_root = Path(tiny_demo.landing_root) / batch["batch_id"]
        on_disk = {str(p.relative_to(batch_root)) for p in batch_root.rglob("*") if p.is_file()}
        images = {name for name in on_disk if name.startswith("images/")}
        seen = set(result.images["file_name"]) | set(result.quarantine["file_name"])
        assert result.images.height + result.quarantine.height == len(images) == len(seen)
        assert seen == images
        assert set(result.files["path"]) == on_disk
        assert set(result.files.filter(pl.col("outcome") == "read")["path"]) == on_disk


@pytest.mark.parametrize(("kind", "rule"), [
    ("corrupt_image", "image_undecodable"),
    ("size_mismatch", "size_mismatch"),
    ("non_finite_coordinates", "non_finite_coordinates"),
])
def test_planted_defects_are_quarantined_with_the_right_rule(ingested, ground_truth, kind, rule):
    [defect] = [d for d in ground_truth["defects"] if d["kind"] == kind]
    quarantine = ingested[defect["batch_id"]].quarantine
    row = quarantine.filter(pl.col("file_name") == f"images/{defect['file_name']}")
    assert row["rule"].to_list() == [rule]
    assert defect["file_name"] in row["message"][0]


def test_shared_images_have_one_content_hash_and_annotators_are_pseudonyms(ingested, ground_truth):
    images = pl.concat([r.images for r in ingested.values()])
    model = pl.col("batch_id") == "b004_model_segnet"  # a model's name is not personal data: it stays readable
    assert images.filter(~model)["annotator"].str.starts_with("annotator-").all()
    assert images.filter(model)["annotator"].unique().to_list() == ["model:segnet"]
    for file_name, annotators in ground_truth["shared"].items():
        rows = images.filter(pl.col("file_name").str.ends_with(file_name.rsplit("/", 1)[-1]))
        assert rows["image_id"].n_unique() == 1
        assert rows["annotator"].n_unique() == rows.height  # different people, different pseudonyms
    dumped = json.dumps([r.images.to_dicts() + r.shapes.to_dicts() for r in ingested.values()], default=str)
    for name in ("alice", "bob", "carol"):
        assert name not in dumped.replace("vendor_a_alice", "").replace("vendor_b_bob", "").replace("vendor_c_carol", "")


def test_metadata_columns_are_filled_from_metadata_csv(ingested):
    images = pl.concat([r.images for r in ingested.values()])
    assert images["time_of_day"].null_count() == 0 and images["sequence_id"].null_count() == 0


def test_the_batchs_licence_origin_and_attribution_reach_each_image_row(ingested, tmp_path):
    batch = write_labelme_export(tmp_path / "parts", n_images=3)
    (batch / "batch.json").write_text(json.dumps({"licence": "CC-BY-4.0", "origin": "https://example.org/parts",
                                                  "attribution": "Example Lab"}))
    images = ingest_path(batch).images
    assert images.height == 3
    assert set(images.select("licence", "origin", "attribution").iter_rows()) == {
        ("CC-BY-4.0", "https://example.org/parts", "Example Lab")}
    demo = pl.concat([r.images for r in ingested.values()])
    assert demo.select("licence", "origin", "attribution").null_count().row(0) == (demo.height,) * 3


def test_accepted_images_are_stored_by_content_hash(tiny_demo, tmp_path):
    stored: dict[str, bytes] = {}
    batch = Path(tiny_demo.landing_root) / "b001_vendor_a_alice"
    result = ingest_path(batch, store=stored.__setitem__)
    assert set(stored) == set(result.images["image_key"])
    for row in result.images.iter_rows(named=True):
        assert row["image_key"] == f"images/{row['image_id'][:2]}/{row['image_id']}.jpg"
        assert stored[row["image_key"]] == (batch / row["file_name"]).read_bytes()


def test_a_folder_and_a_zip_of_it_give_identical_tables(tiny_demo, tmp_path):
    folder = Path(tiny_demo.landing_root) / "b002_vendor_b_bob"
    archive = tmp_path / "b002_vendor_b_bob.zip"
    with zipfile.ZipFile(archive, "w") as out:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                out.write(path, str(path.relative_to(folder)))
    from_folder, from_zip = ingest_path(folder), ingest_path(archive)
    for table in ("images", "shapes", "quarantine", "files"):
        left, right = getattr(from_folder, table), getattr(from_zip, table)
        if table == "images":
            left, right = left.drop("source_uri"), right.drop("source_uri")
        if table == "quarantine":
            left, right = left.drop("message"), right.drop("message")
        if table == "files":
            left, right = left.drop("reason"), right.drop("reason")
        assert left.equals(right), table
    assert from_zip.images["source_uri"].str.contains(".zip!/images/").all()


def test_a_batch_without_manifest_is_detected_and_stray_files_are_listed_unused(tiny_demo, tmp_path):
    batch = tmp_path / "export"
    shutil.copytree(Path(tiny_demo.landing_root) / "b000_gold", batch)
    declared = json.loads((batch / "batch.json").read_text())["format"]
    (batch / "batch.json").unlink()
    (batch / "README.txt").write_text("exported by hand")
    result = ingest_path(batch)
    assert result.source_format == declared
    assert result.images.height > 0
    stray = result.files.filter(pl.col("path") == "README.txt")
    assert stray["outcome"].to_list() == ["unused"] and "README.txt" in stray["reason"][0]
    assert result.files.filter(pl.col("path") == "metadata.csv")["outcome"].to_list() == ["unused"]


def test_an_invalid_manifest_quarantines_every_image_of_the_batch(tmp_path):
    batch = tmp_path / "b1"
    (batch / "images").mkdir(parents=True)
    (batch / "images" / "a.jpg").write_bytes(b"x")
    (batch / "batch.json").write_text('{"format": "labelbox"}')
    result = ingest_path(batch)
    assert result.images.height == 0
    assert result.quarantine["file_name"].to_list() == ["images/a.jpg"]
    assert result.quarantine["rule"].to_list() == ["unknown_format"]
    assert "labelbox" in result.quarantine["message"][0]


def test_a_batch_with_no_images_still_leaves_a_quarantine_row(tmp_path):
    batch = tmp_path / "b1"
    batch.mkdir()
    (batch / "batch.json").write_text("{}")
    (batch / "notes.txt").write_text("nothing here")
    result = ingest_path(batch)
    assert result.quarantine["rule"].to_list() == ["unknown_format"]
    assert "declare \"format\" in batch.json" in result.quarantine["message"][0]


def test_one_bad_file_in_a_per_image_format_does_not_stop_the_rest(tmp_path):
    batch = tmp_path / "cs"
    folder = batch / "gtFine" / "val" / "city"
    images = batch / "leftImg8bit" / "val" / "city"
    folder.mkdir(parents=True)
    images.mkdir(parents=True)
    for stem in ("a", "b", "c"):
        Image.new("RGB", (8, 4)).save(images / f"{stem}_leftImg8bit.png")
        polygon = [[0, 0], [7, 0], [7, 3]]
        (folder / f"{stem}_gtFine_polygons.json").write_text(json.dumps(
            {"imgHeight": 4, "imgWidth": 8, "objects": [{"label": "road", "polygon": polygon}]}))
    (folder / "b_gtFine_polygons.json").write_text('{"imgHeight": 4, "imgWidth": 8, "objects": [')  # truncated
    (folder / "c_gtFine_polygons.json").write_text(
        '{"imgHeight": 4, "imgWidth": 8, "objects": [{"label": "road", "polygon": [[0, 0], [1e300, 0], [7, 3]]}]}')
    result = ingest_path(batch)
    assert result.images["file_name"].to_list() == ["leftImg8bit/val/city/a_leftImg8bit.png"]
    rules = dict(result.quarantine.select("file_name", "rule").iter_rows())
    assert rules == {"leftImg8bit/val/city/b_leftImg8bit.png": "unparseable_annotations",
                     "leftImg8bit/val/city/c_leftImg8bit.png": "coordinates_out_of_frame"}
    assert "shape #0 ('road')" in result.quarantine.filter(pl.col("rule") == "coordinates_out_of_frame")["message"][0]


def test_a_rotated_jpeg_is_stored_in_the_annotated_frame(tmp_path):
    batch = tmp_path / "lm"
    batch.mkdir()
    image = Image.new("RGB", (40, 20), (0, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6
    out = io.BytesIO()
    image.save(out, format="JPEG", exif=exif.tobytes())
    (batch / "x.jpg").write_bytes(out.getvalue())
    (batch / "x.json").write_text(json.dumps({
        "version": "5.4.1", "flags": {}, "imagePath": "x.jpg", "imageData": None, "imageHeight": 40, "imageWidth": 20,
        "shapes": [{"label": "car", "points": [[1, 1], [10, 1], [10, 30]], "shape_type": "polygon", "group_id": None, "flags": {}}],
    }))
    stored: dict[str, bytes] = {}
    result = ingest_path(batch, store=stored.__setitem__)
    [row] = result.images.to_dicts()
    assert (row["width"], row["height"], row["exif_orientation"]) == (20, 40, 6)
    assert row["image_key"].endswith("-display.png")
    with Image.open(io.BytesIO(stored[row["image_key"]])) as kept:
        assert kept.size == (20, 40) and kept.getexif().get(0x0112) is None


def _jpeg(path: Path, shade: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 6), (shade, 90, 30)).save(path, format="JPEG")


def test_labelme_json_beside_its_own_voc_output_is_read_as_labelme_and_the_voc_masks_are_unused(tmp_path):
    """labelme's examples/semantic_segmentation: data_annotated/ and what labelme2voc wrote from it."""
    batch = tmp_path / "semantic_segmentation"
    _jpeg(batch / "data_annotated" / "2011_000003.jpg")
    (batch / "data_annotated" / "2011_000003.json").write_text(json.dumps({
        "version": "5.5.0", "flags": {}, "imagePath": "2011_000003.jpg", "imageData": None, "imageHeight": 6,
        "imageWidth": 8, "shapes": [{"label": "person", "points": [[1, 1], [6, 1], [6, 5]], "group_id": None,
                                     "shape_type": "polygon", "flags": {}}]}))
    voc = batch / "data_dataset_voc"
    _jpeg(voc / "JPEGImages" / "2011_000003.jpg")
    (voc / "SegmentationClass").mkdir()
    Image.new("P", (8, 6), 15).save(voc / "SegmentationClass" / "2011_000003.png")
    (voc / "SegmentationClass" / "2011_000003.npy").write_bytes(b"\x93NUMPY")
    _jpeg(voc / "SegmentationClassVisualization" / "2011_000003.jpg", 200)
    (voc / "class_names.txt").write_text("_background_\nperson\n")
    result = ingest_path(batch)
    assert result.source_format == "labelme"
    assert result.images["file_name"].to_list() == ["data_annotated/2011_000003.jpg"]
    [mask] = result.files.filter(pl.col("path") == "data_dataset_voc/SegmentationClass/2011_000003.png").to_dicts()
    assert (mask["role"], mask["outcome"]) == ("other", "unused")
    assert "voc_segmentation would read it, but the batch is read as labelme: labelme reads files that name images" \
        in mask["reason"]
    assert "data_dataset_voc/SegmentationClass/2011_000003.png" not in set(result.quarantine["file_name"])
    overlay = "data_dataset_voc/SegmentationClassVisualization/2011_000003.jpg"
    [row] = result.files.filter(pl.col("path") == overlay).to_dicts()
    assert (row["role"], row["outcome"]) == ("other", "unused")
    assert row["reason"] == (f"{batch / overlay}: labelme2voc's overlay of a class mask on its image: segpipe reads "
                             "SegmentationClass; and the batch is read as labelme, not voc_segmentation")
    assert result.quarantine["file_name"].to_list() == ["data_dataset_voc/JPEGImages/2011_000003.jpg"]  # a real image


def test_a_batch_quarantined_as_a_whole_does_not_take_the_companion_masks_for_images(tmp_path):
    batch = tmp_path / "voc"
    _jpeg(batch / "JPEGImages" / "a.jpg")
    for folder in ("SegmentationClass", "SegmentationObject"):
        (batch / folder).mkdir()
        Image.new("P", (8, 6), 1).save(batch / folder / "a.png")
    (batch / "labelmap.txt").write_text("background:0,0,0::\nbackground:1,1,1::\n")  # a label twice: unusable
    result = ingest_path(batch)
    assert result.quarantine.select("file_name", "rule").rows() == [("JPEGImages/a.jpg", "class_map_invalid")]
    [row] = result.files.filter(pl.col("path") == "SegmentationObject/a.png").to_dicts()
    assert (row["outcome"], row["reason"]) == (
        "unused", f"{batch / 'SegmentationObject/a.png'}: VOC instance masks: segpipe reads SegmentationClass")


def test_a_coco_file_beside_an_info_json_and_panoptic_pngs_is_read_as_coco_the_extra_files_unused(tmp_path):
    batch = tmp_path / "coco"
    _jpeg(batch / "val2017" / "000000000139.jpg")
    (batch / "annotations").mkdir()
    (batch / "annotations" / "instances_val2017.json").write_text(json.dumps({
        "info": {"year": 2017}, "images": [{"id": 139, "file_name": "000000000139.jpg", "width": 8, "height": 6}],
        "annotations": [{"id": 1, "image_id": 139, "category_id": 1, "iscrowd": 0, "segmentation": [[1, 1, 6, 1, 6, 5]]}],
        "categories": [{"id": 1, "name": "person"}]}))
    (batch / "annotations" / "info.json").write_text(json.dumps(
        {"info": {"description": "COCO 2017"}, "licenses": [{"id": 1, "name": "CC BY 4.0"}],
         "categories": [{"id": 1, "name": "person", "isthing": 1}]}))
    unlabelled = [{"id": n, "file_name": f"{n:012d}.jpg", "width": 640, "height": 480, "license": 1} for n in range(2000)]
    (batch / "annotations" / "image_info_test2017.json").write_text(json.dumps(
        {"info": {}, "images": unlabelled, "licenses": [], "categories": [{"id": 1, "name": "person"}]}))
    (batch / "annotations" / "panoptic_val2017").mkdir()
    Image.new("RGB", (8, 6), (1, 0, 0)).save(batch / "annotations" / "panoptic_val2017" / "000000000139.png")
    result = ingest_path(batch)
    assert (result.source_format, result.images["file_name"].to_list()) == ("coco_instances", ["val2017/000000000139.jpg"])
    assert result.quarantine.is_empty()
    outcomes = dict(result.files.select("path", "outcome").iter_rows())
    assert outcomes["annotations/info.json"] == outcomes["annotations/image_info_test2017.json"] == "unused"
    assert outcomes["annotations/panoptic_val2017/000000000139.png"] == "unused"


def test_a_broken_annotation_file_is_rejected_with_its_parse_error_in_files(tmp_path):
    batch = tmp_path / "broken"
    _jpeg(batch / "images" / "a.jpg")
    (batch / "annotations.json").write_text('{"images": [{"id": 1, "file_name": "a.jpg", "width": 8, "height": 6}], '
                                            '"annotations": [{"id": 1, "image_id": 1, "bbox": [NaN, 0, 1, 1]}], '
                                            '"categories": []}')
    result = ingest_path(batch)
    assert result.quarantine["rule"].to_list() == ["unparseable_annotations"]
    [row] = result.files.filter(pl.col("path") == "annotations.json").to_dicts()
    assert (row["role"], row["outcome"]) == ("annotation", "rejected")
    assert row["reason"].startswith("unparseable_annotations: ") and "annotations.json: not valid JSON" in row["reason"]


def test_a_per_image_annotation_file_that_does_not_parse_is_rejected_and_the_others_read(tmp_path):
    batch = tmp_path / "labelme"
    for stem in ("a", "b"):
        _jpeg(batch / f"{stem}.jpg")
        (batch / f"{stem}.json").write_text(json.dumps({
            "version": "5.5.0", "flags": {}, "imagePath": f"{stem}.jpg", "imageData": None, "imageHeight": 6,
            "imageWidth": 8, "shapes": [{"label": "car", "points": [[1, 1], [6, 1], [6, 5]], "shape_type": "polygon"}]}))
    (batch / "b.json").write_text((batch / "b.json").read_text()[:-20])
    result = ingest_path(batch)
    assert result.images["file_name"].to_list() == ["a.jpg"]
    outcomes = {path: (outcome, reason) for path, outcome, reason in result.files.select("path", "outcome", "reason").iter_rows()}
    assert outcomes["a.json"] == ("read", None)
    assert outcomes["b.json"][0] == "rejected" and outcomes["b.json"][1].startswith("unparseable_annotations: ")
