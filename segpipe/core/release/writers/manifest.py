"""index.csv and index.parquet: the manifest, one row per released image."""

import csv
import io
from collections.abc import Iterable, Iterator

import orjson
import polars as pl

from segpipe.core.ingest.batch import METADATA_COLUMNS
from segpipe.core.release import layout
from segpipe.core.release.writers.writer import Member, ReleaseItem, ReleaseWriter
from segpipe.core.shared.class_pixels import dense
from segpipe.core.shared.schemas import ManifestRecord, polars_schema
from segpipe.core.taxonomy.model import Taxonomy

MANIFEST_TYPES = polars_schema(ManifestRecord)  # as written, and as index.csv is read back
MANIFEST_COLUMNS = list(MANIFEST_TYPES)


class Manifest(ReleaseWriter):
    """index.csv (for people and spreadsheets) and index.parquet (typed): one row per released image
    with its paths in the archive, source, metadata, the SHA-256 its image and mask were packaged
    with, its pixels per class and its QA status. Each item's row goes to the release's manifest
    rows, from which the build seals the manifest."""

    name = "manifest"

    def item_members(self, item: ReleaseItem) -> Iterable[Member]:
        row = item.row
        self.release.manifest_rows.append({
            "image_id": row["image_id"], "split": row["split"], "image_path": item.image_path,
            "mask_path": item.mask_path, "width": row["width"], "height": row["height"],
            "original_file_name": row["file_name"], "source_batches": row["source_batches"],
            "annotators": row["annotators"], "mask_source": row["mask_source"], "agreement": row["agreement"],
            "instance_path": item.instance_path, **{c: row[c] for c in METADATA_COLUMNS},
            "image_sha256": self.release.packaged[item.image_path], "mask_sha256": self.release.packaged[item.mask_path],
            **_pixel_columns(row["class_pixels"], self.release.taxonomy),
            "qa_status": "warned" if row["qa_warnings"] else "passed", "qa_warnings": row["qa_warnings"],
        })
        return ()

    def closing_members(self) -> Iterator[Member]:
        yield Member(layout.INDEX_CSV, _index_csv(self.release.manifest))
        yield Member(layout.INDEX_PARQUET, _index_parquet(self.release.manifest))


def manifest_table(rows: list[dict]) -> pl.DataFrame:
    """The manifest of these rows, checked against its public contract."""
    return ManifestRecord.validate(pl.DataFrame(rows, schema=MANIFEST_TYPES))


def _pixel_columns(present: list[dict], taxonomy: Taxonomy) -> dict:
    """Pixels per class as a JSON object keyed by class name (in id order, zeros included), so the
    column keeps one type whatever the taxonomy, in CSV as in Parquet; and the ignored pixels.
    `present`: the mask's classes and their pixels (core/shared/class_pixels.py)."""
    class_pixels = dense(present)
    per_class = {c.name: class_pixels[c.id] for c in sorted(taxonomy.classes, key=lambda c: c.id)}
    return {"class_pixels": orjson.dumps(per_class).decode(), "ignored_pixels": class_pixels[taxonomy.ignore_index]}


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
