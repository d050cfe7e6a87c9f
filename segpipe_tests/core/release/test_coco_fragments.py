import hashlib
import io
import zipfile

import numpy as np
import orjson
import polars as pl

from segpipe.core.rasterize.raster import rasterize_shapes
from segpipe.core.release.build import write_release
from segpipe.core.release.coco_annotations import shape_annotations
from segpipe.core.release import coco_document
from segpipe.core.release.coco_document import CocoDocument, annotation_tails, tails_block
from segpipe.core.release.coco_fragments import (
    AnnotationShelf,
    encode_fragment,
    frame_shape_batch,
    shape_batches,
    shelve_class_annotations,
    shelve_shape_annotations,
)
from segpipe.core.release.packaging import ZipPackager
from segpipe.core.release.writers import BuildStamp, ReleaseContext
from segpipe.core.shared.artefacts import ArtefactStore
from segpipe.core.shared.batch_tables import FrameBatches
from segpipe.core.shared.hashing_writer import HashingWriter
from segpipe.store import keys as store_keys
from segpipe_tests.core.release.release_fixture import TAXONOMY, constructed_release, drawn_shapes


def _drawn_release() -> tuple[ReleaseContext, pl.DataFrame, dict[str, bytes]]:
    """The fixture's release of a train image drawn from shapes and a fused val image, and its store."""
    fused = np.zeros((30, 40), np.uint8)
    fused[10:20, 5:15] = 1
    masks = {"train": rasterize_shapes(drawn_shapes(), 320, 240, TAXONOMY.ignore_index), "val": fused}
    release, items = constructed_release(masks=masks, mask_sources={"val": "fused"}, shapes=drawn_shapes())
    return release, items, release.store.read.__self__


def _coco_json(release: ReleaseContext, items: pl.DataFrame, store: ArtefactStore) -> tuple[bytes, str]:
    """coco.json and the content version of a build of `items` whose shape annotations are shelved
    from `store` (a fresh context, as each build has)."""
    shelf = shelve_shape_annotations(items, [frame_shape_batch(items, drawn_shapes(), TAXONOMY)], TAXONOMY, store, 1)
    shelve_class_annotations(items, shelf, TAXONOMY, store)
    fresh = ReleaseContext(store, release.taxonomy, release.dataset_name, release.mask_encoding,
                           BuildStamp("run-2", "2026-12-02T00:00:00Z"), release.counts, release.qa_results,
                           release.report_files, shelf, release.provenance)
    out = io.BytesIO()
    with ZipPackager(out) as packager:
        write_release(fresh, items, packager)
    return zipfile.ZipFile(out).read("coco/coco.json"), fresh.version


def test_coco_json_assembled_from_fragments_is_what_serializing_the_annotations_gives():
    release, items, objects = _drawn_release()
    made, version = _coco_json(release, items, release.store)
    fragments = [key for key in objects if key.startswith("coco-fragments/")]
    assert len(fragments) == 2  # the drawn train image's batch, the fused val image's group
    for key in [key for key in objects if key.startswith(("coco-mask-shapes/", "coco-annotations/"))]:
        del objects[key]  # a build that finds the fragments reads no mask's memo
    assert _coco_json(release, items, release.store) == (made, version)
    document = orjson.loads(made)
    assert orjson.dumps(document) == made  # byte for byte what serializing the whole document gives
    train = items.row(by_predicate=pl.col("split") == "train", named=True)
    train_id = next(image["id"] for image in document["images"] if "/train/" in image["file_name"])
    drawn = [{k: v for k, v in a.items() if k not in ("id", "image_id")}
             for a in document["annotations"] if a["image_id"] == train_id]
    assert drawn == [a for a in shape_annotations(drawn_shapes(), TAXONOMY, train["width"], train["height"])
                     if a["category_id"] in TAXONOMY.class_ids]
    assert [a["id"] for a in document["annotations"]] == list(range(1, len(document["annotations"]) + 1))


def test_a_damaged_fragment_is_made_again_not_trusted():
    release, items, objects = _drawn_release()
    made = _coco_json(release, items, release.store)
    for key in [key for key in objects if key.startswith("coco-fragments/")]:
        whole = objects[key]
        for damaged in (whole[:len(whole) // 2], whole.replace(b'"category_id":1', b'"category_id":0')):
            assert damaged != whole
            objects[key] = damaged
            assert _coco_json(release, items, release.store) == made
            assert objects[key] == whole


class _VanishingStore(dict):
    """A store whose COCO fragments go (pruned by a build beside this one) between the lookup and the read."""

    def __getitem__(self, key: str) -> bytes:
        if key.startswith(store_keys.COCO_FRAGMENTS_DIR):
            del self[key]
        return super().__getitem__(key)


def test_a_fragment_gone_between_looking_and_reading_is_made_again_and_the_shelf_names_every_fragment_used():
    release, items, objects = _drawn_release()
    made = _coco_json(release, items, release.store)
    fragments = {key for key in objects if key.startswith(store_keys.COCO_FRAGMENTS_DIR)}
    vanishing = _VanishingStore(objects)
    assert _coco_json(release, items, ArtefactStore.in_memory(vanishing)) == made
    assert {key for key in vanishing if key.startswith(store_keys.COCO_FRAGMENTS_DIR)} == fragments  # made again
    shelf = shelve_shape_annotations(items, [frame_shape_batch(items, drawn_shapes(), TAXONOMY)], TAXONOMY,
                                     release.store, 1)
    shelve_class_annotations(items, shelf, TAXONOMY, release.store)
    assert shelf.fragments == fragments


def _held(block: bytes) -> tuple[int, bytes]:
    """A block's count of annotations and its name, as a shelf holding it says."""
    return (block.count(b"\n") + 1 if block else 0), hashlib.sha256(block).hexdigest().encode()


def _written(document: CocoDocument, version: str = "v1") -> bytes:
    out = io.BytesIO()
    document.write(HashingWriter(out), version)
    return out.getvalue()


def test_a_document_from_tails_equals_one_serialized_from_the_annotations_in_landing_order():
    annotations = [{"category_id": 1, "segmentation": [[0.5, 1.0, 2.0, 3.0]], "area": 4, "bbox": [0, 1, 2, 3]},
                   {"category_id": 255, "segmentation": {"size": [2, 2], "counts": [0, 4]}, "area": 4,
                    "bbox": [0, 0, 2, 2]},
                   {"category_id": 2, "segmentation": {"size": [2, 2], "counts": [1, 3]}, "area": 3,
                    "bbox": [0, 0, 2, 2], "iscrowd": 1},
                   # a string in a tail with what %-formatting would read as a placeholder: it stays as it is
                   {"category_id": 1, "segmentation": {"size": [2, 2], "counts": "1%d%%s"}, "area": 1,
                    "bbox": [0, 0, 1, 1]}]
    blocks = {f"masks/{n}.png": tails_block(annotation_tails(annotations[n:], TAXONOMY.class_ids)) for n in range(3)}
    blocks["masks/3.png"] = tails_block([])  # an image without annotations
    # the items arrive in archive order; "zeta" landed first, so its images (2 and 3) come first
    groups = ["later", "later", "zeta", "zeta"]
    document = CocoDocument(TAXONOMY, "demo", blocks.__getitem__, {"zeta": 0, "later": 1})
    for n in range(4):
        document.add_image(f"images/train/{n}.png", 4, 2, f"masks/{n}.png", *_held(blocks[f"masks/{n}.png"]), groups[n])
    order = [2, 3, 0, 1]
    images = [{"id": image_id, "file_name": f"images/train/{n}.png", "width": 4, "height": 2}
              for image_id, n in enumerate(order, start=1)]
    expected = [{"id": 0, "image_id": image_id, "category_id": a["category_id"], "segmentation": a["segmentation"],
                 "area": a["area"], "iscrowd": a.get("iscrowd", 0), "bbox": a["bbox"]}
                for image_id, n in enumerate(order, start=1) if n < 3
                for a in annotations[n:] if a["category_id"] != 255]
    for n, annotation in enumerate(expected):
        annotation["id"] = n + 1
    written = _written(document)
    serialized = orjson.dumps({
        "info": {"description": "demo", "version": "v1"}, "licenses": [], "images": images,
        "categories": [{"id": c.id, "name": c.name, "supercategory": ""} for c in TAXONOMY.classes],
        "annotations": expected})
    assert written == serialized.replace(b"[[0.5,1.0,2.0,3.0]]", b"[[0.5,1,2,3]]")  # whole vertices unpointed
    assert orjson.loads(written) == orjson.loads(serialized)  # the same numbers
    # the digest follows what fixes the annotations: another landing order is another document
    swapped = CocoDocument(TAXONOMY, "demo", blocks.__getitem__, {"zeta": 1, "later": 0})
    for n in range(4):
        swapped.add_image(f"images/train/{n}.png", 4, 2, f"masks/{n}.png", *_held(blocks[f"masks/{n}.png"]), groups[n])
    assert _written(swapped) != written
    assert swapped.annotations_digest() != document.annotations_digest()


class _SegmentLog(HashingWriter):
    def __init__(self) -> None:
        super().__init__(io.BytesIO())
        self.segments: list[bytes] = []

    def segment(self, data: bytes) -> None:
        self.segments.append(bytes(data))
        super().segment(data)


def test_a_new_batch_that_landed_last_leaves_every_segment_before_it_as_it_was(monkeypatch):
    monkeypatch.setattr(coco_document, "SEGMENT_BYTES", 300)
    tails = [b'"category_id":1,"segmentation":[[%d.0,1.0,2.0,3.0]],"area":4,"bbox":[0,1,2,3]}' % n for n in range(9)]
    blocks = {f"masks/{n}.png": tails_block(tails[n % 7:n % 7 + n % 3]) for n in range(40)}

    def segments(batches: int) -> list[bytes]:
        """The segments of a document of `batches` batches, their images arriving in name order, mixed."""
        document = CocoDocument(TAXONOMY, "demo", blocks.__getitem__, {f"b{b}": b for b in range(batches)})
        for n in range(10 * batches):
            mask = f"masks/{n}.png"
            document.add_image(f"images/train/{n % 10:02d}-{n}.png", 4, 2, mask, *_held(blocks[mask]), f"b{n // 10}")
        log = _SegmentLog()
        document.write(log, f"v{batches}")
        assert orjson.loads(log._target.getvalue())  # whole JSON, whatever the cuts
        return log.segments

    three, four = segments(3), segments(4)
    assert len(three) > 3  # cut by size within a batch as well as between batches
    assert four[:len(three)] == three and len(four) > len(three)


def test_a_shelf_holds_each_masks_tails_and_refuses_a_fragment_whose_hash_does_not_match():
    fragment = encode_fragment([("masks/a.png", [b'"category_id":1}', b'"category_id":2}']), ("masks/b.png", [])])
    shelf = AnnotationShelf()
    assert not shelf.shelve(fragment[:-3])
    assert not shelf.shelve(fragment.replace(b"masks/b", b"masks/c"))
    assert len(shelf) == 0
    assert shelf.shelve(fragment)
    assert shelf.shelve(encode_fragment([("masks/c.png", [b'"category_id":0}'])]))
    assert shelf.block("masks/a.png") == b'"category_id":1}\n"category_id":2}'
    assert shelf.block("masks/b.png") == b""
    assert shelf.block("masks/c.png") == b'"category_id":0}'
    assert shelf.block("masks/d.png") is None  # no fragment holds it: the writer draws its classes
    assert shelf.held("masks/a.png") == _held(b'"category_id":1}\n"category_id":2}')
    assert shelf.held("masks/b.png") == _held(b"") and shelf.held("masks/c.png") == _held(b'"category_id":0}')
    assert shelf.held("masks/d.png") is None
    shelf.close()


def test_only_a_batch_whose_shapes_or_released_masks_changed_gets_a_new_fragment():
    shapes = drawn_shapes()
    other = shapes.with_columns(entry_id=pl.lit("e-other"), mask_key=pl.lit("masks/m9.png"))
    items = pl.DataFrame({"mask_key": ["masks/m0.png", "masks/m9.png"], "width": [320, 320], "height": [240, 240]})
    masks = {"b0": pl.DataFrame({"mask_key": ["masks/m0.png"], "entry_id": ["e-train"]}),
             "b1": pl.DataFrame({"mask_key": ["masks/m9.png"], "entry_id": ["e-other"]})}
    consensus = pl.DataFrame({"mask_key": ["masks/m0.png", "masks/m9.png"], "status": ["accepted", "accepted"],
                              "mask_source": ["single", "single"]})

    def keys(mapped: dict[str, pl.DataFrame], consensus: pl.DataFrame) -> list[str]:
        return [batch.key for batch in shape_batches(items, consensus, FrameBatches(masks), FrameBatches(mapped),
                                                     TAXONOMY)]

    before = keys({"b0": shapes, "b1": other}, consensus)
    moved = other.with_columns(rings=pl.col("rings").list.eval(pl.element().list.eval(pl.element() + 1)))
    after = keys({"b0": shapes, "b1": moved}, consensus)
    assert after[0] == before[0] and after[1] != before[1]
    fused = keys({"b0": shapes, "b1": other}, consensus.with_columns(mask_source=pl.Series(["single", "fused"])))
    assert fused[0] == before[0] and fused[1] != before[1]  # b1's mask is no longer drawn from its shapes
    [batch] = [b for b in shape_batches(items, consensus, FrameBatches(masks), FrameBatches({"b0": shapes}), TAXONOMY)]
    assert batch.masks == ("masks/m0.png",) and batch.shapes()["mask_key"].unique().to_list() == ["masks/m0.png"]
