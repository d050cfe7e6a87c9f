"""Building a release archive: images, masks, COCO JSON, index.csv and meta.json in one ZIP.

The archive is deterministic (sorted entries, fixed timestamps), and its version is a hash
of what it contains, so rebuilding the same data gives the same version and the same bytes.
"""

import csv
import hashlib
import io
import re
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from typing import BinaryIO

import orjson
import polars as pl

from segpipe.core.artefact_keys import ArtefactStore
from segpipe.core.ingest import METADATA_COLUMNS, image_metadata
from segpipe.core.png import png_frame
from segpipe.core.raster import decode_mask_png
from segpipe.core.rle import encode_value_rles
from segpipe.core.schemas import ManifestRecord
from segpipe.core.taxonomy import Taxonomy

ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
MANIFEST_COLUMNS = list(ManifestRecord.to_schema().columns)


@dataclass(frozen=True)
class ReleaseContents:
    version: str
    manifest: pl.DataFrame
    meta: dict


def release_stem(file_name: str, image_id: str) -> str:
    """A safe, unique archive name: the original stem for humans, the content hash for uniqueness."""
    stem = file_name.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    return f"{re.sub(r'[^A-Za-z0-9._-]+', '_', stem)[:80]}_{image_id[:12]}"


def write_release_archive(
    out: BinaryIO,
    items: pl.DataFrame,
    store: ArtefactStore,
    taxonomy: Taxonomy,
    dataset_name: str,
    mask_encoding: str,
    counts: dict[str, int],
    qa_results: pl.DataFrame,
    report_files: Mapping[str, bytes] | None = None,
) -> ReleaseContents:
    """Write the ZIP for `items` (one row per released image) and return its manifest and meta.
    qa/ holds the QA failures (report.csv) and their thumbnails; report_files (path in the ZIP ->
    bytes) the other reports, such as sampling's."""
    report_files = dict(sorted((report_files or {}).items()))
    rows, annotations, coco_images = [], [], []
    with zipfile.ZipFile(out, "w") as archive:
        for n, item in enumerate(items.sort("split", "image_id").iter_rows(named=True), start=1):
            stem = release_stem(item["file_name"], item["image_id"])
            suffix = item["image_key"].rsplit(".", 1)[-1]
            image_path, mask_path = f"images/{item['split']}/{stem}.{suffix}", f"masks/{item['split']}/{stem}.png"
            image_bytes, mask_bytes = store.read(item["image_key"]), store.read(item["mask_key"])
            _check_frame(item["mask_key"], mask_bytes, item["width"], item["height"], 8)
            _add(archive, image_path, image_bytes, compress=False)
            _add(archive, mask_path, mask_bytes, compress=False)
            instance_path = None
            if item["instance_mask_key"] is not None:
                instance_path = f"instances/{item['split']}/{stem}.png"
                instance_bytes = store.read(item["instance_mask_key"])
                _check_frame(item["instance_mask_key"], instance_bytes, item["width"], item["height"], 16)
                _add(archive, instance_path, instance_bytes, compress=False)
            rows.append({
                "image_id": item["image_id"], "split": item["split"], "image_path": image_path, "mask_path": mask_path,
                "width": item["width"], "height": item["height"], "original_file_name": item["file_name"],
                "source_batches": item["source_batches"], "annotators": item["annotators"],
                "mask_source": item["mask_source"], "agreement": item["agreement"], "instance_path": instance_path,
                **{c: item[c] for c in METADATA_COLUMNS},
                "image_sha256": hashlib.sha256(image_bytes).hexdigest(), "mask_sha256": hashlib.sha256(mask_bytes).hexdigest(),
            })
            coco_images.append({"id": n, "file_name": image_path, "width": item["width"], "height": item["height"]})
            for found in _class_annotations(item["mask_key"], mask_bytes, store):
                if found["category_id"] in taxonomy.class_ids:
                    annotations.append({
                        "id": len(annotations) + 1, "image_id": n, "category_id": found["category_id"],
                        "segmentation": {"size": found["segmentation"]["size"], "counts": found["segmentation"]["counts"]},
                        "area": found["area"], "iscrowd": 0, "bbox": found["bbox"]})
        manifest = ManifestRecord.validate(pl.DataFrame(rows, schema=_manifest_schema()))
        qa_csv, thumbnails = _qa_folder(qa_results)
        version = release_version(manifest, taxonomy, dataset_name, mask_encoding, qa_csv, report_files)
        meta = _meta(manifest, taxonomy, dataset_name, version, mask_encoding, counts)
        meta["qa_failures"] = dict(qa_results.filter(~pl.col("passed")).group_by("check_id").len().sort("check_id").iter_rows())
        _add(archive, "qa/report.csv", qa_csv)
        for path, data in report_files.items():
            _add(archive, path, data)
        for path, key in thumbnails:
            _add(archive, path, store.read(key), compress=False)
        coco = {"info": {"description": dataset_name, "version": version}, "licenses": [], "images": coco_images,
                "categories": [{"id": c.id, "name": c.name, "supercategory": ""} for c in taxonomy.classes],
                "annotations": annotations}
        _add(archive, "coco/coco.json", orjson.dumps(coco))
        _add(archive, "index.csv", _index_csv(manifest))
        _add(archive, "meta.json", orjson.dumps(meta, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
    return ReleaseContents(version, manifest, meta)


def release_version(
    manifest: pl.DataFrame, taxonomy: Taxonomy, dataset_name: str, mask_encoding: str, qa_csv: bytes,
    report_files: Mapping[str, bytes] | None = None,
) -> str:
    """Content hash of what the release holds: same data, same version."""
    digest = hashlib.sha256()
    digest.update(f"{dataset_name}\0{taxonomy.taxonomy_version}\0{mask_encoding}\0".encode())
    digest.update(manifest.sort("image_id").write_csv().encode())
    digest.update(qa_csv)
    for path, data in sorted((report_files or {}).items()):
        digest.update(f"\0{path}\0".encode())
        digest.update(data)
    return digest.hexdigest()[:12]


def _qa_folder(qa_results: pl.DataFrame) -> tuple[bytes, list[tuple[str, str]]]:
    """qa/report.csv (one row per failed rule and entry) and the (path in the ZIP, store key) of
    each failure's thumbnail."""
    failures = qa_results.filter(~pl.col("passed")).sort("check_id", "batch_id", "file_name").with_columns(
        pl.when(pl.col("thumbnail_key").is_not_null())
        .then(pl.format("qa/thumbnails/{}/{}.png", pl.col("check_id"), pl.col("entry_id")))
        .alias("thumbnail_path"))
    report = failures.select("check_id", "severity", "batch_id", "file_name", "entry_id", "excludes_entry", "reason",
                             "thumbnail_path")
    thumbnails = failures.filter(pl.col("thumbnail_key").is_not_null()).select("thumbnail_path", "thumbnail_key")
    return report.write_csv().encode(), list(thumbnails.iter_rows())


def _manifest_schema() -> dict:
    types = {"width": pl.Int64, "height": pl.Int64, "agreement": pl.Float64}
    return {c: types.get(c, pl.String) for c in MANIFEST_COLUMNS}


def _check_frame(key: str, png: bytes, width: int, height: int, bit_depth: int) -> None:
    """A stored mask must be the image's size: a mismatch here is a bug upstream, never shipped."""
    frame = png_frame(png)
    if frame != (width, height, bit_depth):
        raise ValueError(f"{key}: stored mask is {frame[0]}x{frame[1]} at {frame[2]} bits, "
                         f"the image is {width}x{height} and the mask should have {bit_depth} bits")


def _class_annotations(mask_key: str, mask_bytes: bytes, store: ArtefactStore) -> list[dict]:
    """COCO-Stuff style annotations of one mask, one per value present: an RLE of its pixels.
    Mask keys are content-derived, so the result is remembered beside the mask and a release
    that ships the mask again does not decode it."""
    memo = f"coco-annotations/{mask_key.removesuffix('.png')}.json"
    remembered = store.recall(memo)
    if remembered is not None:
        return remembered
    found = encode_value_rles(decode_mask_png(mask_bytes))
    annotations = [{"category_id": value, **found[value]} for value in sorted(found)]
    store.remember(memo, annotations)
    return annotations


def _meta(manifest: pl.DataFrame, taxonomy: Taxonomy, dataset_name: str, version: str, mask_encoding: str, counts: dict) -> dict:
    sizes = manifest.group_by("width", "height").len().sort("width", "height")
    return {
        "dataset": dataset_name,
        "version": version,
        "task": "semantic_segmentation",
        "taxonomy_version": taxonomy.taxonomy_version,
        "mask_encoding": mask_encoding,
        "mask_format": "PNG, 8-bit, one class id per pixel",
        "instance_format": ("PNG, 16-bit grayscale: class_id * 1000 + k for object k of a class with instances, "
                            "the class id for crowds and classes without instances, ignore_index where unlabeled; "
                            "images with a fused mask have none"),
        "instance_masks": int(manifest["instance_path"].is_not_null().sum()),
        "ignore_index": taxonomy.ignore_index,
        "classes": [{"id": c.id, "name": c.name, "color": list(c.color)} for c in taxonomy.classes],
        "image_sizes": [{"width": w, "height": h, "count": n} for w, h, n in sizes.iter_rows()],
        "splits": dict(manifest.group_by("split").len().sort("split").iter_rows()),
        "counts": counts,
    }


def _index_csv(manifest: pl.DataFrame) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(MANIFEST_COLUMNS)
    writer.writerows(manifest.select(MANIFEST_COLUMNS).iter_rows())
    return buffer.getvalue().encode()


def _add(archive: zipfile.ZipFile, name: str, data: bytes, compress: bool = True) -> None:
    info = zipfile.ZipInfo(name, date_time=ZIP_EPOCH)
    info.compress_type = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    info.external_attr = 0o644 << 16
    archive.writestr(info, data)


def release_items(splits: pl.DataFrame, consensus: pl.DataFrame, images: pl.DataFrame) -> pl.DataFrame:
    """One row per image to release: its split, released mask, a source file and merged metadata."""
    per_image = image_metadata(images)
    accepted = consensus.filter(pl.col("status") == "accepted").select(
        "image_id", "mask_key", "instance_mask_key", "mask_source", "agreement")
    chosen = splits.filter(pl.col("split").is_not_null()).select("image_id", "split")
    return chosen.join(accepted, on="image_id").join(per_image, on="image_id").sort("image_id")
