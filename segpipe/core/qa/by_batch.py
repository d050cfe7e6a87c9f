"""QA over every batch, one batch at a time: memory that does not grow with the batches, and a
rerun that works through only the batches whose tables changed.

Most of QA is an entry's own: its mask's pixels and structure, its polygons' outlines, its unmapped
labels. Three facts depend on every batch: which delivery of an image counts (deliveries.py), which
images are near copies (near_duplicates.py), and each class's usual instance size
(instance_areas.py). They are found first from narrow columns (ids, names, hashes) or from
statistics combined batch by batch (ClassAreas); then each batch is judged alone, its shapes read
in the columns QA needs and let go before the next batch's are read.

A batch's shape work (polygon_findings, drawn_shape_areas, unmapped_segments) is remembered in the
store under a digest of the batch's shape and image tables, the taxonomy's instance classes and
the vertex tolerance: a nightly build outlines only the new batch's polygons, and a taxonomy edit
that leaves a batch's mapped shapes as they were reuses its work. Mask structure is remembered per
mask (mask_structure.py). So is each batch's judgement by every rule but the instance-area one
(BATCH_RULES), under its tables, the taxonomy, the QA settings and the shared facts about its own
entries (which are superseded, which are near copies): a nightly build judges the new batch and any
batch whose entries it supersedes or copies, and recalls the others. The instance-area rule reads
statistics over every batch, which each new batch moves, so it is judged in every build.
"""

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

import orjson
import polars as pl

from segpipe.core.qa.deliveries import Superseded, superseded_entries
from segpipe.core.qa.instance_areas import AREA_SCHEMA, INSTANCE_AREA_OUTLIER, ClassAreas, area_outliers, drawn_shape_areas
from segpipe.core.qa.mask_structure import mask_structure
from segpipe.core.qa.near_duplicates import near_duplicate_entries
from segpipe.core.qa.pictures import OUTLINED_RULES, PER_RULE, render_qa_thumbnails
from segpipe.core.qa.polygon_checks import FINDINGS_SCHEMA, polygon_findings
from segpipe.core.qa.rules import QA_RULES, evaluate_entries, findings_results, with_thumbnails
from segpipe.core.qa.settings import QaSettings
from segpipe.core.shared.artefacts import ArtefactStore, content_digest
from segpipe.core.shared.batch_tables import BatchTables
from segpipe.core.shared.schemas import ImageRecord, QaResultRecord, polars_schema, with_later_columns
from segpipe.core.taxonomy.model import Taxonomy, unmapped_segments
from segpipe.store import keys as store_keys

MEMO_FORMAT = 1  # part of every remembered batch's name: a new format never reads an old one
JUDGED_FORMAT = 1  # likewise for a batch's results: bump it when a rule of BATCH_RULES judges otherwise
# The instance-area rule compares a batch's shapes with every batch's (a new batch moves every class's
# mean a little, and the reasons say by how much): it is judged each build, by the batch's shape
# findings alone (rules.findings_results); the others are remembered.
DATASET_RULES = tuple(rule for rule in QA_RULES if rule.id == INSTANCE_AREA_OUTLIER)
BATCH_RULES = tuple(rule for rule in QA_RULES if rule.id != INSTANCE_AREA_OUTLIER)
QA_SCHEMA = polars_schema(QaResultRecord)
IMAGE_COLUMNS = ("entry_id", "batch_id", "file_name", "landed_at", "perceptual_hash", "image_key")
MASK_COLUMNS = ("entry_id", "image_id", "annotator", "mask_key", "class_pixels", "width", "height")
SHAPE_COLUMNS = ("entry_id", "shape_index", "raw_label", "kind", "mapping", "is_crowd", "class_id", "rings")
UNMAPPED_SCHEMA = {"entry_id": pl.String, "raw_label": pl.String}


@dataclass(frozen=True)
class QaOutcome:
    results: pl.DataFrame  # QaResultRecord rows of every batch, failures with their thumbnails
    entries_checked: int


@dataclass(frozen=True)
class _BatchShapes:
    """One batch's shape work, as remembered."""

    polygons: pl.DataFrame  # polygon_findings rows
    areas: pl.DataFrame  # drawn_shape_areas rows
    unmapped: pl.DataFrame  # unmapped_segments rows


def qa_by_batch(masks: BatchTables, images: BatchTables, shapes: BatchTables, taxonomy: Taxonomy,
                settings: QaSettings, store: ArtefactStore) -> QaOutcome:
    """Every QA rule on every entry of `masks` (annotation_masks), as evaluate_entries judges them all
    at once, with thumbnails of the first failures of each rule (render_qa_thumbnails)."""
    image_index = with_later_columns(images.concat(IMAGE_COLUMNS), ImageRecord).select(IMAGE_COLUMNS)
    entry_index = masks.concat(("entry_id", "image_id", "annotator", "mask_key")).join(
        image_index, on="entry_id", how="left", validate="1:1")
    superseded = superseded_entries(entry_index)
    near_duplicates = near_duplicate_entries(entry_index, settings.near_duplicate_bits)

    shape_work = {batch: _shapes_digest(shapes, images, batch, taxonomy, settings) for batch in masks.batches}
    class_areas = ClassAreas()
    for batch, digest in shape_work.items():
        class_areas = class_areas.combined(_class_areas(shapes, images, batch, digest, taxonomy, settings, store))
    judged, findings, outliers = [], [], []
    for batch, digest in shape_work.items():
        local = _batch_shapes(shapes, images, batch, digest, taxonomy, settings, store)
        outliers.append(area_outliers(local.areas, class_areas, taxonomy, settings.instance_area_sigma))
        findings.append(pl.concat([local.polygons, outliers[-1]]))
        shared = _BatchFacts(superseded, near_duplicates, frozenset(masks.read(batch, ("entry_id",))["entry_id"]))
        judgement = _judged_memo(masks, batch, digest, taxonomy, settings, shared)
        alone = _recalled_results(store.recall(judgement))
        if alone is None:
            batch_masks = masks.read(batch, MASK_COLUMNS)
            entries = batch_masks.join(image_index.drop("image_key"), on="entry_id", how="left")
            structure = mask_structure(batch_masks, taxonomy, settings.min_fragment_px, store)
            alone = evaluate_entries(entries, local.unmapped, taxonomy, settings, local.polygons, structure,
                                     superseded, near_duplicates, BATCH_RULES)
            store.remember(judgement, alone.to_dict(as_series=False))
        judged.append(alone)
    # the instance-area rule, the rule order and the failures over every batch at once: done batch by
    # batch, their fixed cost (a few ms a batch) was most of a nightly's QA
    areas_outlying = pl.concat(outliers) if outliers else pl.DataFrame(schema=FINDINGS_SCHEMA)
    all_results = (_in_rule_order(pl.concat(judged), findings_results(entry_index, areas_outlying, taxonomy, settings,
                                                                       DATASET_RULES))
                   if judged else pl.DataFrame(schema=QA_SCHEMA))
    failures = all_results.filter(~pl.col("passed")).join(entry_index.select("entry_id", "mask_key", "image_key"),
                                                          on="entry_id")
    thumbnails = _thumbnails(failures, findings, shapes, image_index, taxonomy, settings, store)
    return QaOutcome(with_thumbnails(all_results, thumbnails), entry_index.height)


@dataclass(frozen=True)
class _BatchFacts:
    """What one batch's judgement takes from every batch: which of its entries are superseded, and by
    what, and which are near copies, and of what."""

    superseded: Mapping[str, Superseded]
    near_duplicates: Mapping[str, str]
    entries: frozenset[str]

    def fingerprint(self) -> bytes:
        return orjson.dumps([
            sorted([entry, dataclasses.astuple(why)] for entry, why in self.superseded.items() if entry in self.entries),
            sorted([entry, of] for entry, of in self.near_duplicates.items() if entry in self.entries)])


def _judged_memo(masks: BatchTables, batch: str, shape_work: str, taxonomy: Taxonomy, settings: QaSettings,
                 shared: _BatchFacts) -> str:
    """Where a batch's results by BATCH_RULES are remembered: named after everything they depend on
    (the batch's masks, its shape work's name, which covers its shape and image tables, the whole
    taxonomy, every QA setting and its shared facts), so a nightly build judges only the new batch."""
    return store_keys.qa_judged_memo(batch, content_digest(
        masks.digest(batch).encode(), shape_work.encode(), taxonomy.content_hash.encode(),
        orjson.dumps([JUDGED_FORMAT, dataclasses.asdict(settings)]), shared.fingerprint()))


def _recalled_results(remembered: object) -> pl.DataFrame | None:
    """A remembered judgement as the table it was, or None when it is none (not there, or damaged)."""
    if not isinstance(remembered, dict) or set(remembered) != set(QA_SCHEMA):
        return None
    try:
        return pl.DataFrame(remembered, schema=QA_SCHEMA)
    except (pl.exceptions.PolarsError, TypeError, ValueError):
        return None


def _in_rule_order(alone: pl.DataFrame, across: pl.DataFrame) -> pl.DataFrame:
    """The results of BATCH_RULES and DATASET_RULES over the same entries as evaluate_entries gives them
    all: entry after entry, in the order of `alone` (which may come from an earlier build), each
    entry's rules in QA_RULES order."""
    rule_order = {rule.id: n for n, rule in enumerate(QA_RULES)}
    entry_order = alone.select("entry_id").unique(maintain_order=True).with_row_index("_entry")
    return (pl.concat([alone, across]).join(entry_order, on="entry_id", how="left")
            .sort("_entry", pl.col("check_id").replace_strict(rule_order, return_dtype=pl.Int64))
            .drop("_entry"))


def _thumbnails(failing: pl.DataFrame, findings: list[pl.DataFrame], shapes: BatchTables,
                image_index: pl.DataFrame, taxonomy: Taxonomy, settings: QaSettings,
                store: ArtefactStore) -> pl.DataFrame:
    """render_qa_thumbnails of the first failures of each rule over every batch (results with their
    mask_key and image_key), the outlined ones' shapes read from their batches alone."""
    chosen = failing.sort("check_id", "entry_id").group_by("check_id", maintain_order=True).head(PER_RULE)
    outlined = chosen.filter(pl.col("check_id").is_in(OUTLINED_RULES)).select("entry_id").unique()
    batches = outlined.join(image_index.select("entry_id", "batch_id"), on="entry_id")
    drawn = [shapes.read(batch, ("entry_id", "shape_index", "rings")).join(group.select("entry_id"), on="entry_id")
             for (batch,), group in batches.group_by("batch_id")]
    polygons = pl.concat(findings) if findings else pl.DataFrame(schema=FINDINGS_SCHEMA)
    drawn_shapes = pl.concat(drawn) if drawn else pl.DataFrame(
        schema={"entry_id": pl.String, "shape_index": pl.Int64, "rings": pl.List(pl.List(pl.Float64))})
    return render_qa_thumbnails(chosen, polygons, drawn_shapes, taxonomy, store, settings.min_fragment_px)


def _shapes_digest(shapes: BatchTables, images: BatchTables, batch: str, taxonomy: Taxonomy,
                   settings: QaSettings) -> str:
    """The name of a batch's shape work: a digest of everything it depends on."""
    counted = sorted(c.id for c in taxonomy.classes if c.has_instances)
    return content_digest(shapes.digest(batch).encode(), images.digest(batch).encode(),
                          orjson.dumps([MEMO_FORMAT, counted, settings.vertex_tolerance_px]))


def _class_areas(shapes: BatchTables, images: BatchTables, batch: str, digest: str, taxonomy: Taxonomy,
                 settings: QaSettings, store: ArtefactStore) -> ClassAreas:
    """A batch's instance-area statistics, remembered beside its shape work (under the same digest):
    the pass that combines every batch's reads a few numbers a class, not the batch's findings."""
    memo = store_keys.qa_batch_areas_memo(batch, digest)
    remembered = store.recall(memo)
    if isinstance(remembered, list):
        return ClassAreas.of_rows(remembered)
    stats = ClassAreas.of(_batch_shapes(shapes, images, batch, digest, taxonomy, settings, store).areas)
    store.remember(memo, stats.rows())
    return stats


def _batch_shapes(shapes: BatchTables, images: BatchTables, batch: str, digest: str, taxonomy: Taxonomy,
                  settings: QaSettings, store: ArtefactStore) -> _BatchShapes:
    """One batch's shape work: remembered, or done from its shapes and remembered."""
    key = store_keys.qa_batch_memo(batch, digest)
    remembered = store.recall(key)
    if remembered is None:
        batch_shapes = shapes.read(batch, SHAPE_COLUMNS)
        frames = images.read(batch, ("entry_id", "width", "height"))
        found = _BatchShapes(polygon_findings(batch_shapes, frames, settings.vertex_tolerance_px),
                             drawn_shape_areas(batch_shapes, taxonomy), unmapped_segments(batch_shapes))
        store.remember(key, {name: getattr(found, name).to_dict(as_series=False)
                             for name in ("polygons", "areas", "unmapped")})
        return found
    return _BatchShapes(pl.DataFrame(remembered["polygons"], schema=FINDINGS_SCHEMA),
                        pl.DataFrame(remembered["areas"], schema=AREA_SCHEMA),
                        pl.DataFrame(remembered["unmapped"], schema=UNMAPPED_SCHEMA))
