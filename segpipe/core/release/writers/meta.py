"""meta.json: the release described for machines, and its lineage."""

import importlib.metadata
from collections.abc import Iterator

import orjson
import polars as pl

from segpipe.core.release import layout
from segpipe.core.release.provenance import provenance_content, source_entries
from segpipe.core.release.writers.writer import Member, ReleaseContext, ReleaseWriter


class Meta(ReleaseWriter):
    """meta.json: what the release is (dataset, content version, taxonomy, mask format, classes,
    pixels, image sizes, splits, the ledger's counts, QA failures per rule, the source batches with
    their licence, origin and attribution) and its lineage, the only part that names the build (run
    id and time) and so the only part a rebuild of the same data changes."""

    name = "meta"

    def version_content(self) -> bytes:
        """The source batches' stated terms: a changed licence is another release."""
        return provenance_content(source_entries(self.release.provenance, self.release.manifest))

    def closing_members(self) -> Iterator[Member]:
        yield Member(layout.META, orjson.dumps(self.release.meta, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))


def release_meta(release: ReleaseContext) -> dict:
    """meta.json's content, from the sealed manifest and version: the datasheet and data.yaml are
    written from it too."""
    manifest, taxonomy = release.manifest, release.taxonomy
    sizes = manifest.group_by("width", "height").len().sort("width", "height")
    totals = {c.name: 0 for c in sorted(taxonomy.classes, key=lambda c: c.id)}
    for per_image in manifest["class_pixels"]:
        for name, pixels in orjson.loads(per_image).items():
            totals[name] += pixels
    failures = release.qa_results.filter(~pl.col("passed")).group_by("check_id").len().sort("check_id")
    return {
        "dataset": release.dataset_name,
        "version": release.version,
        "release_format": layout.RELEASE_FORMAT,
        "task": "semantic_segmentation",
        "taxonomy_version": taxonomy.taxonomy_version,
        "mask_encoding": release.mask_encoding,
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
        "counts": release.counts,
        "sources": source_entries(release.provenance, manifest),
        "lineage": {
            "taxonomy_version": taxonomy.taxonomy_version,
            "taxonomy_hash": taxonomy.content_hash,
            "source_batches": sorted({b for joined in manifest["source_batches"] for b in joined.split(";")}),
            "segpipe_version": importlib.metadata.version("segpipe"),
            "run_id": release.stamp.run_id,
            "created_at": release.stamp.created_at,
        },
        "qa_failures": dict(failures.iter_rows()),
        **({"exports": list(release.exports)} if release.exports else {}),
    }
