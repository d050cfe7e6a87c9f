"""Building a release archive: images, masks, COCO JSON, YOLO labels, the manifest (index.csv and
index.parquet), meta.json, a README datasheet and SHA256SUMS in one ZIP.

The archive is deterministic (sorted entries, fixed timestamps), and its version is a hash
of what it contains, so rebuilding the same data gives the same version. Only meta.json's
`lineage.run_id` and `lineage.created_at` (and so SHA256SUMS) say which build made it: they are
left out of the version, so a rebuild of the same data is recognisably the same release.
"""

import contextlib
import csv
import hashlib
import importlib.metadata
import io
import re
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import BinaryIO

import orjson
import polars as pl

from segpipe.core.shared.artefacts import ArtefactStore, content_digest
from segpipe.core.release.coco_annotations import shape_annotations
from segpipe.core.release.coco_document import CocoDocument
from segpipe.core.shared.hashing_writer import HashingWriter
from segpipe.core.ingest.batch import METADATA_COLUMNS, image_metadata
from segpipe.core.shared.png import png_frame
from segpipe.core.rasterize.raster import decode_mask_png
from segpipe.core.release.datasheet import datasheet
from segpipe.core.shared.rle import encode_value_rles
from segpipe.core.shared.schemas import ManifestRecord
from segpipe.core.taxonomy.model import Taxonomy
from segpipe.core.release.yolo_labels import class_outlines, yolo_data_yaml, yolo_label_text
from segpipe.store import keys as store_keys

ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
MANIFEST_COLUMNS = list(ManifestRecord.to_schema().columns)
SHA256SUMS = "SHA256SUMS"
DISTRIBUTION_CHART = "sampling/distribution.png"


@dataclass(frozen=True)
class ReleaseContents:
    version: str
    manifest: pl.DataFrame
    meta: dict


@dataclass(frozen=True)
class BuildStamp:
    """Which build made a release: recorded in meta.json, never part of its content version."""

    run_id: str
    created_at: str  # UTC, ISO 8601

    @staticmethod
    def now(run_id: str) -> "BuildStamp":
        return BuildStamp(run_id, datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z"))


class _ChecksummedZip:
    """A deterministic ZIP that remembers each member's SHA-256 for SHA256SUMS."""

    def __init__(self, archive: zipfile.ZipFile) -> None:
        self.archive = archive
        self.sums: dict[str, str] = {}

    def add(self, name: str, data: bytes, compress: bool = True) -> str:
        """Add a member; its SHA-256, which the manifest also records for images and masks."""
        info = zipfile.ZipInfo(name, date_time=ZIP_EPOCH)
        info.compress_type = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
        info.external_attr = 0o644 << 16
        self.archive.writestr(info, data)
        self.sums[name] = hashlib.sha256(data).hexdigest()
        return self.sums[name]

    def add_streamed(self, name: str, write: Callable[[BinaryIO], None]) -> None:
        """A member too large to hold in memory, written in pieces by `write`."""
        info = zipfile.ZipInfo(name, date_time=ZIP_EPOCH)
        info.compress_type = zipfile.ZIP_DEFLATED
        info.external_attr = 0o644 << 16
        with self.archive.open(info, "w", force_zip64=True) as member:
            hashing = HashingWriter(member)
            write(hashing)
        self.sums[name] = hashing.hexdigest()

    def add_checksums(self) -> None:
        """SHA256SUMS in `sha256sum` format over every other member, written last so it covers them all."""
        self.add(SHA256SUMS, "".join(f"{digest}  {name}\n" for name, digest in sorted(self.sums.items())).encode())


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
    stamp: BuildStamp,
    report_files: Mapping[str, bytes] | None = None,
    shapes: pl.DataFrame | None = None,
) -> ReleaseContents:
    """Write the ZIP for `items` (one row per released image, see release_items) and return its
    manifest and meta. qa/ holds the QA failures (report.csv) and their thumbnails; report_files
    (path in the ZIP -> bytes) the other reports, such as sampling's. shapes (see released_shapes)
    are the polygons behind the masks drawn from them, which coco.json keeps; None when there are none."""
    report_files = dict(sorted((report_files or {}).items()))
    shapes_of = {} if shapes is None else _slices_by_mask(shapes)
    rows = []
    coco = CocoDocument(taxonomy, dataset_name)
    with contextlib.closing(coco), zipfile.ZipFile(out, "w") as zipped:
        archive = _ChecksummedZip(zipped)
        for item in items.sort("split", "image_id").iter_rows(named=True):
            stem = release_stem(item["file_name"], item["image_id"])
            suffix = item["image_key"].rsplit(".", 1)[-1]
            image_path, mask_path = f"images/{item['split']}/{stem}.{suffix}", f"masks/{item['split']}/{stem}.png"
            image_bytes, mask_bytes = store.read(item["image_key"]), store.read(item["mask_key"])
            _check_frame(item["mask_key"], mask_bytes, item["width"], item["height"], 8)
            image_sha256 = archive.add(image_path, image_bytes, compress=False)
            mask_sha256 = archive.add(mask_path, mask_bytes, compress=False)
            instance_path = None
            if item["instance_mask_key"] is not None:
                instance_path = f"instances/{item['split']}/{stem}.png"
                instance_bytes = store.read(item["instance_mask_key"])
                _check_frame(item["instance_mask_key"], instance_bytes, item["width"], item["height"], 16)
                archive.add(instance_path, instance_bytes, compress=False)
            rows.append({
                "image_id": item["image_id"], "split": item["split"], "image_path": image_path, "mask_path": mask_path,
                "width": item["width"], "height": item["height"], "original_file_name": item["file_name"],
                "source_batches": item["source_batches"], "annotators": item["annotators"],
                "mask_source": item["mask_source"], "agreement": item["agreement"], "instance_path": instance_path,
                **{c: item[c] for c in METADATA_COLUMNS},
                "image_sha256": image_sha256, "mask_sha256": mask_sha256,
                **_pixel_columns(item["class_pixels"], taxonomy),
                "qa_status": "warned" if item["qa_warnings"] else "passed", "qa_warnings": item["qa_warnings"],
            })
            outlines = _class_outlines(item["mask_key"], mask_bytes, store, taxonomy.ignore_index)
            archive.add(f"labels/{item['split']}/{stem}.txt",
                        yolo_label_text(outlines, taxonomy, item["width"], item["height"]).encode())
            drawn = shapes_of.get(item["mask_key"])
            coco.add_image(image_path, item["width"], item["height"],
                           _class_annotations(item["mask_key"], mask_bytes, store) if drawn is None
                           else _shape_annotations(item["mask_key"], drawn, taxonomy, item["width"], item["height"],
                                                   store))
        manifest = ManifestRecord.validate(pl.DataFrame(rows, schema=manifest_types()))
        qa_csv, thumbnails = _qa_folder(qa_results)
        version = release_version(manifest, taxonomy, dataset_name, mask_encoding, qa_csv, report_files,
                                  coco.annotations_digest())
        meta = _meta(manifest, taxonomy, dataset_name, version, mask_encoding, counts, stamp)
        meta["qa_failures"] = dict(qa_results.filter(~pl.col("passed")).group_by("check_id").len().sort("check_id").iter_rows())
        archive.add("qa/report.csv", qa_csv)
        for path, data in report_files.items():
            archive.add(path, data)
        for path, key in thumbnails:
            archive.add(path, store.read(key), compress=False)
        archive.add_streamed("coco/coco.json", lambda member: coco.write(member, version))
        archive.add("index.csv", _index_csv(manifest))
        archive.add("index.parquet", _index_parquet(manifest))
        archive.add("meta.json", orjson.dumps(meta, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
        archive.add("dataset_meta.json", _class_map(taxonomy))
        archive.add("yolo/data.yaml", yolo_data_yaml(taxonomy, sorted(meta["splits"])).encode())
        archive.add("README.md", datasheet(meta, DISTRIBUTION_CHART if DISTRIBUTION_CHART in report_files else None).encode())
        archive.add_checksums()
    return ReleaseContents(version, manifest, meta)


def _slices_by_mask(shapes: pl.DataFrame) -> dict[str, pl.DataFrame]:
    """Each mask's shapes as a zero-copy slice of the table (released_shapes sorts it by mask_key):
    grouping would copy every shape of the release once more."""
    if not shapes["mask_key"].is_sorted():
        raise ValueError("release shapes must be sorted by mask_key (see released_shapes)")
    runs = (shapes.select("mask_key").with_row_index("start")
            .group_by("mask_key").agg(pl.col("start").min(), pl.len().alias("rows")))
    return {key: shapes.slice(start, rows) for key, start, rows in runs.iter_rows()}


def release_version(
    manifest: pl.DataFrame, taxonomy: Taxonomy, dataset_name: str, mask_encoding: str, qa_csv: bytes,
    report_files: Mapping[str, bytes] | None = None, coco_annotations_digest: str = "",
) -> str:
    """Content hash of what the release holds: same data, same version. The COCO annotations count
    too: a polygon edit that moves no mask pixel still changes coco.json."""
    digest = hashlib.sha256()
    digest.update(f"{dataset_name}\0{taxonomy.taxonomy_version}\0{mask_encoding}\0".encode())
    digest.update(manifest.sort("image_id").write_csv().encode())
    digest.update(qa_csv)
    for path, data in sorted((report_files or {}).items()):
        digest.update(f"\0{path}\0".encode())
        digest.update(data)
    digest.update(coco_annotations_digest.encode())
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


def manifest_types() -> dict:
    """The Polars type of each manifest column, as written and as index.csv is read back."""
    types = {"width": pl.Int64, "height": pl.Int64, "agreement": pl.Float64, "ignored_pixels": pl.Int64}
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
    memo = store_keys.coco_annotations_memo(mask_key)
    remembered = store.recall(memo)
    if remembered is not None:
        return remembered
    found = encode_value_rles(decode_mask_png(mask_bytes))
    annotations = [{"category_id": value, **found[value]} for value in sorted(found)]
    store.remember(memo, annotations)
    return annotations


def _pixel_columns(class_pixels: list[int], taxonomy: Taxonomy) -> dict:
    """Pixels per class as a JSON object keyed by class name (in id order, zeros included), so the
    column keeps one type whatever the taxonomy, in CSV as in Parquet; and the ignored pixels."""
    per_class = {c.name: class_pixels[c.id] for c in sorted(taxonomy.classes, key=lambda c: c.id)}
    return {"class_pixels": orjson.dumps(per_class).decode(), "ignored_pixels": class_pixels[taxonomy.ignore_index]}


def _shape_annotations(mask_key: str, shapes: pl.DataFrame, taxonomy: Taxonomy, width: int, height: int,
                       store: ArtefactStore) -> list[dict]:
    """The COCO annotations of a mask's shapes, remembered under the mask and a digest of the shapes
    and trainable classes, so a backfill that leaves them alone does not draw them again."""
    trainable = sorted(c.id for c in taxonomy.classes if c.trainable)
    digest = content_digest(mask_key.encode(), orjson.dumps(shapes.to_dicts()), orjson.dumps([trainable, width, height]))
    memo = store_keys.coco_shapes_memo(digest)
    remembered = store.recall(memo)
    if remembered is None:
        remembered = shape_annotations(shapes, taxonomy, width, height)
        store.remember(memo, remembered)
    return remembered


def _class_outlines(mask_key: str, mask_bytes: bytes, store: ArtefactStore, ignore_index: int) -> dict[int, list]:
    """The mask's class outlines for YOLO labels, remembered beside the mask like its RLEs."""
    memo = store_keys.yolo_outlines_memo(mask_key, ignore_index)
    remembered = store.recall(memo)
    if remembered is not None:
        return {value: rings for value, rings in remembered}
    outlines = class_outlines(decode_mask_png(mask_bytes), ignore_index)
    store.remember(memo, sorted(outlines.items()))
    return outlines


def _meta(manifest: pl.DataFrame, taxonomy: Taxonomy, dataset_name: str, version: str, mask_encoding: str,
          counts: dict, stamp: BuildStamp) -> dict:
    sizes = manifest.group_by("width", "height").len().sort("width", "height")
    totals = {c.name: 0 for c in sorted(taxonomy.classes, key=lambda c: c.id)}
    for per_image in manifest["class_pixels"]:
        for name, pixels in orjson.loads(per_image).items():
            totals[name] += pixels
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
        "class_pixels": totals,
        "ignored_pixels": int(manifest["ignored_pixels"].sum()),
        "image_sizes": [{"width": w, "height": h, "count": n} for w, h, n in sizes.iter_rows()],
        "resize": None,
        "splits": dict(manifest.group_by("split").len().sort("split").iter_rows()),
        "counts": counts,
        "lineage": {
            "taxonomy_version": taxonomy.taxonomy_version,
            "taxonomy_hash": taxonomy.content_hash,
            "source_batches": sorted({b for joined in manifest["source_batches"] for b in joined.split(";")}),
            "segpipe_version": importlib.metadata.version("segpipe"),
            "run_id": stamp.run_id,
            "created_at": stamp.created_at,
        },
    }


def _class_map(taxonomy: Taxonomy) -> bytes:
    """Datumaro's dataset_meta.json beside images/ and masks/: what each mask value means, so the
    unzipped release is an `image_mask_folders` export that Datumaro and segpipe itself can read."""
    names = {str(c.id): c.name for c in sorted(taxonomy.classes, key=lambda c: c.id)}
    return orjson.dumps({"label_map": names | {str(taxonomy.ignore_index): "void"}}, option=orjson.OPT_INDENT_2)


def _index_parquet(manifest: pl.DataFrame) -> bytes:
    buffer = io.BytesIO()
    manifest.select(MANIFEST_COLUMNS).write_parquet(buffer)
    return buffer.getvalue()


def _index_csv(manifest: pl.DataFrame) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(MANIFEST_COLUMNS)
    writer.writerows(manifest.select(MANIFEST_COLUMNS).iter_rows())
    return buffer.getvalue().encode()


def release_items(splits: pl.DataFrame, consensus: pl.DataFrame, images: pl.DataFrame,
                  qa_results: pl.DataFrame) -> pl.DataFrame:
    """One row per image to release: its split, released mask and its class pixels, a source file,
    merged metadata, and qa_warnings: the QA rules its entries failed without being excluded
    (`;`-separated, null when none)."""
    per_image = image_metadata(images)
    accepted = consensus.filter(pl.col("status") == "accepted").select(
        "image_id", "mask_key", "instance_mask_key", "mask_source", "agreement", "class_pixels")
    chosen = splits.filter(pl.col("split").is_not_null()).select("image_id", "split")
    warnings = (qa_results.filter(~pl.col("passed") & ~pl.col("excludes_entry")).select("entry_id", "check_id")
                .join(images.select("entry_id", "image_id"), on="entry_id")
                .group_by("image_id").agg(pl.col("check_id").unique().sort().str.join(";").alias("qa_warnings")))
    return (chosen.join(accepted, on="image_id").join(per_image, on="image_id")
            .join(warnings, on="image_id", how="left").sort("image_id"))
