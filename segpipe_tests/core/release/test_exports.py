"""The trainer layouts (release.exports) load in their consumers' own code with the release's pixels
and class names: Cityscapes in cityscapesScripts, VOC in Datumaro, Parquet in Hugging Face `datasets`;
and the unzipped release itself in Datumaro. Images are assembled from the release, never stored twice."""

import fnmatch
import glob
import os
import typing
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segpipe.core.rasterize.raster import decode_mask_png
from segpipe.core.release import layout
from segpipe.core.release.assemble import LayoutRefused, assemble_layout
from segpipe.core.release.cityscapes_ids import cityscapes_tables
from segpipe.core.release.settings import ExportName
from segpipe.core.release.verify import FolderFiles, verify_release
from segpipe.core.release.writers import WRITERS
from segpipe.core.taxonomy.model import load_taxonomy
from segpipe.environment import PACKAGE_CONFIG
from segpipe_tests.core.release.release_fixture import TAXONOMY, build_release, constructed_masks

EXPORTS = ("cityscapes", "voc", "hf")
NAMES = {c.id: c.name for c in TAXONOMY.classes}


def unzipped(tmp_path: Path, *layouts: str, **release) -> tuple[Path, dict[str, np.ndarray]]:
    """The fixture's release with every export, unzipped and with `layouts` assembled, verified; and
    its masks by released mask path."""
    built = build_release(exports=EXPORTS, **release)
    with built.archive() as archive:
        archive.extractall(tmp_path)
    for name in layouts:
        assemble_layout(tmp_path, name)
    assert verify_release(FolderFiles(tmp_path)).problems == []
    masks = {path.relative_to(tmp_path).as_posix(): decode_mask_png(path.read_bytes())
             for path in (tmp_path / "masks").rglob("*.png")}
    return tmp_path, masks


def released_names(mask: np.ndarray) -> np.ndarray:
    """The class name of every pixel of a release mask ('' where ignored)."""
    return np.vectorize(lambda v: NAMES.get(int(v), ""))(mask)


def test_the_export_writers_are_the_settings_exports_and_run_only_when_named():
    assert {name for name, writer in WRITERS.items() if writer.export} == set(typing.get_args(ExportName))
    plain, exported = build_release(), build_release(exports=EXPORTS)
    with plain.archive() as archive:
        assert not any(n.split("/")[0] in EXPORTS for n in archive.namelist())
    with exported.archive() as archive:
        names = archive.namelist()
        assert not any(layout.is_image(n) for n in names if n.split("/")[0] in EXPORTS)  # no image stored twice
        sums = archive.read(layout.SHA256SUMS).decode()
        assert all(f"  {n}\n" in sums for n in names if n.split("/")[0] in EXPORTS)
    versions = {build_release(exports=(name,)).contents.version for name in EXPORTS}
    versions |= {plain.contents.version, exported.contents.version,
                 build_release(exports=("cityscapes",), cityscapes_city="city").contents.version}
    assert len(versions) == 6  # another set of layouts, or another city rule, is another version


def test_cityscapes_layout_is_found_by_cityscapesscripts_evaluation_and_reads_as_its_labels(tmp_path, monkeypatch):
    labels = pytest.importorskip("cityscapesscripts.helpers.labels")
    evaluation = pytest.importorskip("cityscapesscripts.evaluation.evalPixelLevelSemanticLabeling")
    cityscapes = load_taxonomy(PACKAGE_CONFIG / "presets" / "cityscapes.yaml")
    masks = {"train": np.array([[0, 13, 13], [10, 255, 18]], np.uint8), "val": np.array([[11, 11, 0], [1, 2, 255]], np.uint8)}
    root, released = unzipped(tmp_path, "cityscapes", taxonomy=cityscapes, masks=masks, cityscapes_city="city")
    data = root / "cityscapes"
    # the evaluation's own ground-truth glob, with the dataset where its CITYSCAPES_DATASET says
    monkeypatch.setattr(evaluation.args, "groundTruthSearch", os.path.join(data, "gtFine", "val", "*", "*_gtFine_labelIds.png"))
    found = glob.glob(evaluation.args.groundTruthSearch)
    assert len(found) == 1
    # getPrediction finds a prediction named as the evaluation expects ({city}_{seq}_{frame}*.png), and the
    # evaluation scores the ground truth against itself: IoU 1 for exactly the classes of the val mask
    results = tmp_path / "results"
    results.mkdir()
    prediction = results / f"{evaluation.getCoreImageFileName(found[0])}_prediction.png"
    prediction.write_bytes(Path(found[0]).read_bytes())
    for name, value in (("predictionPath", str(results)), ("predictionWalk", None), ("evalInstLevelScore", False),
                        ("JSONOutput", False), ("quiet", True)):
        monkeypatch.setattr(evaluation.args, name, value)
    assert evaluation.getPrediction(evaluation.args, found[0]) == str(prediction)
    scores = evaluation.evaluateImgLists([str(prediction)], found, evaluation.args)["classScores"]
    assert {name for name, score in scores.items() if not np.isnan(score)} == {
        cityscapes.classes[v].name for v in np.unique(masks["val"]) if v != 255}
    assert {scores[cityscapes.classes[v].name] for v in np.unique(masks["val"]) if v != 255} == {1.0}
    for split, mask in masks.items():
        [train_ids] = (data / "gtFine" / split).rglob("*_gtFine_labelTrainIds.png")
        [label_ids] = (data / "gtFine" / split).rglob("*_gtFine_labelIds.png")
        assert train_ids.parent.name == "a"  # the fixture's city column
        trains, ids = np.array(Image.open(train_ids)), np.array(Image.open(label_ids))
        assert np.array_equal(trains, mask)
        for value in np.unique(mask):
            train_label = labels.trainId2label[int(value)]
            at = mask == value
            if value != 255:
                assert train_label.name == cityscapes.classes[int(value)].name
                assert (ids[at] == train_label.id).all()  # labelIds as labels.py numbers the class
            else:
                assert (ids[at] == labels.name2label["unlabeled"].id).all()
        # leftImg8bit beside gtFine, as the evaluation's and mmseg's file discovery pairs them
        image = train_ids.name.replace("_gtFine_labelTrainIds.png", "_leftImg8bit.png")
        assert (data / "leftImg8bit" / split / train_ids.parent.name / image).is_file()


def test_voc_layout_loads_in_datumaro_voc_importer_with_the_release_pixels_and_names(tmp_path):
    dm = pytest.importorskip("datumaro")
    root, released = unzipped(tmp_path, "voc")
    dataset = dm.Dataset.import_from(str(root / "voc"), "voc_segmentation")
    label_names = [label.name for label in dataset.categories()[dm.AnnotationType.label]]
    assert label_names[:3] == ["road", "car", "sky"]
    items = {(item.subset, item.id): item for item in dataset}
    assert {subset for subset, _ in items} == {"train", "val", "test", "trainval"}
    for path, mask in released.items():
        split, stem = path.split("/")[1], Path(path).stem
        item = items[(split, stem)]
        assert item.media.data.shape[:2] == mask.shape  # the image, linked from images/
        names = np.full(mask.shape, "", object)
        for annotation in item.annotations:
            names[annotation.image] = label_names[annotation.label]
        names[names == "void"] = ""
        assert np.array_equal(names, released_names(mask))


def test_hf_parquet_loads_with_datasets_load_dataset_with_the_release_pixels_and_class_names(tmp_path):
    datasets = pytest.importorskip("datasets")
    root, released = unzipped(tmp_path, "hf")
    released_splits = ("test", "train", "val")
    loaded = datasets.load_dataset("parquet", data_files={s: str(root / layout.HF_DATA.format(s)) for s in released_splits},
                                   cache_dir=str(tmp_path / "cache"))
    carded = datasets.load_dataset(str(root / "hf"), cache_dir=str(tmp_path / "cache-card"))
    for dataset in (loaded, carded):
        assert sorted(dataset) == ["test", "train", "val"]
        for split in dataset:
            features = dataset[split].features
            assert isinstance(features["image"], datasets.Image) and isinstance(features["label"], datasets.Image)
            assert features["classes"].feature.names == ["road", "car", "sky"]
            [row] = dataset[split]
            mask = released[f"masks/{split}/{split}_000000000000.png"]
            assert np.array_equal(np.array(row["label"]), mask)
            assert np.array(row["image"]).shape[:2] == mask.shape
            assert [features["classes"].feature.int2str(c) for c in row["classes"]] == [
                NAMES[v] for v in sorted(set(np.unique(mask).tolist()) - {255})]


def test_the_unzipped_release_loads_in_datumaro_as_common_semantic_segmentation(tmp_path):
    dm = pytest.importorskip("datumaro")
    root, released = unzipped(tmp_path)
    assert dm.Dataset.detect(str(root)) == "common_semantic_segmentation"
    dataset = dm.Dataset.import_from(str(root), "common_semantic_segmentation")
    label_names = [label.name for label in dataset.categories()[dm.AnnotationType.label]]
    assert label_names == ["road", "car", "sky", "void"]  # dataset_meta.json's label_map
    items = {item.id: item for item in dataset}
    assert sorted(items) == sorted(Path(path).stem for path in released)
    for path, mask in released.items():
        names = np.full(mask.shape, "?", object)
        for annotation in items[Path(path).stem].annotations:
            # Datumaro takes the mask value as the label: the ignore index 255 is past its label list
            names[annotation.image] = "" if annotation.label == 255 else label_names[annotation.label]
        assert np.array_equal(names, released_names(mask))


def test_verification_catches_an_assembled_image_that_is_not_the_released_one(tmp_path):
    root, _ = unzipped(tmp_path, "cityscapes", "hf")
    [image] = (root / "cityscapes" / "leftImg8bit" / "val").rglob("*.png")
    image.unlink()
    image.write_bytes((root / "legend.png").read_bytes())
    problems = verify_release(FolderFiles(root)).problems
    assert [p.member for p in problems] == [image.relative_to(root).as_posix()]
    assert "released image" in problems[0].problem


def test_the_datasheet_shows_how_to_fetch_and_load_each_layout_and_its_code_runs(tmp_path, monkeypatch):
    datasets = pytest.importorskip("datasets")
    pytest.importorskip("datumaro")
    built = build_release(exports=EXPORTS)
    folder = tmp_path / f"demo-{built.contents.version}"  # where the datasheet's fetch command writes
    with built.archive() as archive:
        archive.extractall(folder)
        readme = archive.read(layout.DATASHEET).decode()
    assert f"segpipe fetch {built.contents.version} {folder.name} --layout cityscapes --layout voc --layout hf" in readme
    assert "## Trainer layouts" not in build_release().archive().read(layout.DATASHEET).decode()
    for name in ("voc", "hf"):
        assemble_layout(folder, name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "cache"))
    sections = {section.split("\n", 1)[0]: section for section in readme.split("### ")[1:]}
    assert set(sections) == {"Cityscapes (`cityscapes/`)", "PASCAL VOC (`voc/`)", "Hugging Face `datasets` (`hf/`)"}
    assert f'data_root="{folder.name}/cityscapes"' in sections["Cityscapes (`cityscapes/`)"]
    loaded = {}
    for title in ("PASCAL VOC (`voc/`)", "Hugging Face `datasets` (`hf/`)"):
        code = sections[title].split("```python\n", 1)[1].split("```", 1)[0]
        exec(code, loaded.setdefault(title, {}))  # the datasheet's own code, as a reader would paste it
    voc, hf = loaded["PASCAL VOC (`voc/`)"], loaded["Hugging Face `datasets` (`hf/`)"]
    assert sorted(voc["dataset"].subsets()) == ["test", "train", "trainval", "val"]
    assert {split: len(rows) for split, rows in hf["dataset"].items()} == {"test": 1, "train": 1, "val": 1}
    assert hf["names"] == ["road", "car", "sky"]


@pytest.mark.parametrize("preset", ["cityscapes", "cityscapes_label_ids"])
def test_both_cityscapes_presets_convert_to_labels_py_train_ids_and_label_ids(preset):
    labels = pytest.importorskip("cityscapesscripts.helpers.labels")
    taxonomy = load_taxonomy(PACKAGE_CONFIG / "presets" / f"{preset}.yaml")
    to_train, to_label = cityscapes_tables(taxonomy)
    for c in taxonomy.classes:
        label = labels.name2label[c.name]
        assert to_label[c.id] == label.id
        assert to_train[c.id] == (label.trainId if 0 <= label.trainId < 255 else 255)
    assert (to_train[taxonomy.ignore_index], to_label[taxonomy.ignore_index]) == (255, labels.name2label["unlabeled"].id)


def test_another_taxonomy_has_train_ids_only_with_its_ignore_index_as_255():
    to_train, to_label = cityscapes_tables(TAXONOMY)
    assert to_label is None and to_train[:3].tolist() == [0, 1, 2] and to_train[TAXONOMY.ignore_index] == 255


def test_an_images_list_that_places_a_file_outside_its_layout_is_refused(tmp_path):
    built = build_release(exports=("voc",))
    with built.archive() as archive:
        archive.extractall(tmp_path)
    listing = tmp_path / layout.EXPORT_IMAGES.format("voc")
    listing.write_text(listing.read_text().replace("voc/JPEGImages/", "voc/../../", 1))
    with pytest.raises(LayoutRefused, match="outside voc/"):
        assemble_layout(tmp_path, "voc")
    assert not (tmp_path.parent / "test_000000000000.png").exists()
