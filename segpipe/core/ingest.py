"""Turn one landing batch into canonical tables: accepted images, their shapes, and quarantine.

Every image file and every annotated image name of the batch ends up in exactly one of
`images` or `quarantine`; nothing is dropped silently.
"""

import csv
import hashlib
import io
from dataclasses import dataclass

import fsspec
import polars as pl

from segpipe.core.errors import InputError
from segpipe.core.formats import READERS, AnnotatedImage
from segpipe.core.images import decoded_size
from segpipe.core.landing import BATCH_MANIFEST, BatchManifest, entry_id, parse_batch_manifest
from segpipe.core.schemas import ImageRecord, QuarantineRecord, ShapeRecord

METADATA_COLUMNS = ("camera", "city", "time_of_day", "weather", "sequence_id")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


@dataclass(frozen=True)
class IngestedBatch:
    images: pl.DataFrame
    shapes: pl.DataFrame
    quarantine: pl.DataFrame


def ingest_batch(fs: fsspec.AbstractFileSystem, landing_root: str, batch_id: str) -> IngestedBatch:
    batch_root = f"{landing_root.rstrip('/')}/{batch_id}"
    manifest_path = f"{batch_root}/{BATCH_MANIFEST}"
    try:
        manifest = parse_batch_manifest(fs.cat_file(manifest_path), batch_id, manifest_path)
    except InputError as exc:
        return _quarantine_all(batch_id, _files_under(fs, batch_root, batch_root, exclude={BATCH_MANIFEST}), exc)
    images_root = f"{batch_root}/{manifest.images_dir}"
    image_files = _files_under(fs, images_root, images_root, suffixes=IMAGE_SUFFIXES)
    annotation_path = f"{batch_root}/{manifest.annotation_file}"
    try:
        annotated = READERS[manifest.format](fs.cat_file(annotation_path), annotation_path)
    except FileNotFoundError:
        return _quarantine_all(batch_id, image_files, InputError(
            "annotations_missing", f"{annotation_path}: the annotation file named in {BATCH_MANIFEST} does not exist"))
    except InputError as exc:
        return _quarantine_all(batch_id, image_files, exc)
    metadata = _read_metadata(fs, batch_root, manifest)
    return _ingest_entries(fs, images_root, manifest, annotated, image_files, metadata)


def _ingest_entries(
    fs: fsspec.AbstractFileSystem,
    images_root: str,
    manifest: BatchManifest,
    annotated: list[AnnotatedImage],
    image_files: list[str],
    metadata: dict[str, dict[str, str]],
) -> IngestedBatch:
    images, shapes, quarantine = [], [], []
    by_name: dict[str, AnnotatedImage] = {}
    for annotation in annotated:
        if annotation.file_name in by_name:
            quarantine.append(_quarantine_row(manifest.batch_id, annotation.file_name, InputError(
                "duplicate_annotation", f"{images_root}: image {annotation.file_name!r} is annotated twice in one file")))
            continue
        by_name[annotation.file_name] = annotation
    files = set(image_files)
    for name in sorted(files - by_name.keys()):
        quarantine.append(_quarantine_row(manifest.batch_id, name, InputError(
            "annotation_missing", f"{images_root}/{name}: image file has no annotation in {manifest.annotation_file}")))
    for name in sorted(by_name):
        annotation = by_name[name]
        uri = f"{images_root}/{name}"
        try:
            if name not in files:
                raise InputError("image_missing", f"{uri}: annotated in {manifest.annotation_file} but the file does not exist")
            if annotation.error is not None:
                raise annotation.error
            data = fs.cat_file(uri)
            width, height = decoded_size(data, uri)
            if (width, height) != (annotation.width, annotation.height):
                raise InputError("size_mismatch", (
                    f"{uri}: image is {width}x{height} but its annotation says {annotation.width}x{annotation.height}"))
        except InputError as exc:
            quarantine.append(_quarantine_row(manifest.batch_id, name, exc))
            continue
        eid = entry_id(manifest.batch_id, name)
        row_metadata = metadata.get(name, {})
        images.append({
            "entry_id": eid, "batch_id": manifest.batch_id, "file_name": name, "source_uri": uri,
            "image_id": hashlib.sha256(data).hexdigest(), "annotator": manifest.annotator,
            "source": manifest.source, "is_gold": manifest.gold, "width": width, "height": height,
            **{column: row_metadata.get(column) or None for column in METADATA_COLUMNS},
        })
        shapes.extend(
            {"entry_id": eid, "shape_index": i, "raw_label": s.raw_label, "z_order": s.z_order,
             "rings": [list(ring) for ring in s.rings]}
            for i, s in enumerate(annotation.shapes)
        )
    return IngestedBatch(_images_frame(images), _shapes_frame(shapes), _quarantine_frame(quarantine))


def image_metadata(images: pl.DataFrame) -> pl.DataFrame:
    """One row per image_id: an image delivered in several batches takes, per column, the first
    non-empty value in batch order, plus its first file and the batches and annotators that had it."""
    return (
        images.sort("batch_id", "file_name")
        .group_by("image_id", maintain_order=True)
        .agg(
            pl.col("source_uri").first(), pl.col("file_name").first(), pl.col("width").first(), pl.col("height").first(),
            pl.col("batch_id").unique().sort().str.join(";").alias("source_batches"),
            pl.col("annotator").unique().sort().str.join(";").alias("annotators"),
            *[pl.col(c).drop_nulls().first().alias(c) for c in METADATA_COLUMNS],
        )
    )


def _files_under(fs, root: str, base: str, suffixes: tuple[str, ...] = (), exclude: set[str] = frozenset()) -> list[str]:
    """Paths of files under root, relative to base, so subfolders survive as part of the name."""
    if not fs.exists(root):
        return []
    prefix = fs._strip_protocol(base).rstrip("/") + "/"
    names = []
    for path in fs.find(root):
        relative = fs._strip_protocol(path)[len(prefix):]
        if relative in exclude or (suffixes and not relative.lower().endswith(suffixes)):
            continue
        names.append(relative)
    return sorted(names)


def _read_metadata(fs, batch_root: str, manifest: BatchManifest) -> dict[str, dict[str, str]]:
    if manifest.metadata_file is None:
        return {}
    path = f"{batch_root}/{manifest.metadata_file}"
    if not fs.exists(path):
        return {}
    reader = csv.DictReader(io.StringIO(fs.cat_file(path).decode("utf-8", errors="replace")))
    return {row["file_name"]: row for row in reader if row.get("file_name")}


def _quarantine_row(batch_id: str, file_name: str, error: InputError) -> dict:
    return {"batch_id": batch_id, "file_name": file_name, "stage": "ingest", "rule": error.rule, "message": str(error)}


def _quarantine_all(batch_id: str, file_names: list[str], error: InputError) -> IngestedBatch:
    rows = [_quarantine_row(batch_id, name, error) for name in file_names]
    return IngestedBatch(_images_frame([]), _shapes_frame([]), _quarantine_frame(rows))


IMAGE_SCHEMA = {
    "entry_id": pl.String, "batch_id": pl.String, "file_name": pl.String, "source_uri": pl.String,
    "image_id": pl.String, "annotator": pl.String, "source": pl.String, "is_gold": pl.Boolean,
    "width": pl.Int64, "height": pl.Int64, **{c: pl.String for c in METADATA_COLUMNS},
}
SHAPE_SCHEMA = {
    "entry_id": pl.String, "shape_index": pl.Int64, "raw_label": pl.String, "z_order": pl.Int64,
    "rings": pl.List(pl.List(pl.Float64)),
}
QUARANTINE_SCHEMA = {"batch_id": pl.String, "file_name": pl.String, "stage": pl.String, "rule": pl.String, "message": pl.String}


def _images_frame(rows: list[dict]) -> pl.DataFrame:
    return ImageRecord.validate(pl.DataFrame(rows, schema=IMAGE_SCHEMA))


def _shapes_frame(rows: list[dict]) -> pl.DataFrame:
    return ShapeRecord.validate(pl.DataFrame(rows, schema=SHAPE_SCHEMA))


def _quarantine_frame(rows: list[dict]) -> pl.DataFrame:
    return QuarantineRecord.validate(pl.DataFrame(rows, schema=QUARANTINE_SCHEMA))
