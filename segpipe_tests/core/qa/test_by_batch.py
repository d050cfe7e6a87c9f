"""QA one batch at a time gives what QA over every batch at once gives, and a rerun redoes only the
batches whose tables changed."""

from pathlib import Path

import fsspec
import orjson
import polars as pl
import pytest

from segpipe.core.ingest.batch import ingest_batch
from segpipe.core.ingest.sources import open_source
from segpipe.core.qa.by_batch import qa_by_batch
from segpipe.core.qa.instance_areas import ClassAreas, drawn_shape_areas, instance_area_findings
from segpipe.core.qa.mask_structure import mask_structure
from segpipe.core.qa.pictures import render_qa_thumbnails
from segpipe.core.qa.polygon_checks import polygon_findings
from segpipe.core.qa.rules import evaluate_entries, with_thumbnails
from segpipe.core.rasterize.label_masks import rasterize_label_masks, render_class_masks
from segpipe.core.shared.artefacts import ArtefactStore
from segpipe.core.shared.batch_tables import FrameBatches
from segpipe.core.taxonomy.model import load_taxonomy, map_labels, unmapped_segments
from segpipe.core.config.pipeline import load_pipeline_settings
from segpipe.demo import DEMO_CONFIG

KEY = b"qa-by-batch-test-key"


@pytest.fixture(scope="module")
def demo_tables(tiny_demo):
    """Every batch of the tiny demo ingested, mapped and drawn, as the pipeline's batch tables (with
    its defects: corrections, copies, unmapped labels, broken polygons), and the store they wrote."""
    taxonomy, objects = load_taxonomy(DEMO_CONFIG / "taxonomy.yaml"), {}
    store = ArtefactStore.in_memory(objects)
    landing = Path(tiny_demo.landing_root)
    images, shapes, masks = {}, {}, {}
    for landed_at, directory in enumerate(sorted(p for p in landing.iterdir() if (p / "batch.json").exists())):
        with open_source(fsspec.filesystem("file"), str(directory)) as source:
            batch = ingest_batch(source, directory.name, KEY, objects.__setitem__, landed_at=1.7e9 + landed_at)
        mapped = map_labels(batch.shapes, batch.images.select("entry_id", "source"), taxonomy)
        labels = rasterize_label_masks(batch.images, batch.shapes, store)
        images[directory.name], shapes[directory.name] = batch.images, mapped
        masks[directory.name] = render_class_masks(labels, mapped, batch.images, taxonomy, "grayscale", store)
    assert len(images) > 2
    return FrameBatches(masks), FrameBatches(images), FrameBatches(shapes), taxonomy, objects


def all_at_once(masks, images, shapes, taxonomy, settings, store):
    """QA as the qa_report asset ran it before batches were read one at a time: every table whole."""
    masks, images, shapes = masks.concat(), images.concat(), shapes.concat()
    entries = masks.join(images.select("entry_id", "batch_id", "file_name", "landed_at", "perceptual_hash"),
                         on="entry_id", how="left", validate="1:1")
    polygons = pl.concat([polygon_findings(shapes, images, settings.vertex_tolerance_px),
                          instance_area_findings(shapes, taxonomy, settings.instance_area_sigma)])
    structure = mask_structure(masks, taxonomy, settings.min_fragment_px, store)
    results = evaluate_entries(entries, unmapped_segments(shapes), taxonomy, settings, polygons, structure)
    failures = results.filter(~pl.col("passed")).join(masks.select("entry_id", "mask_key"), on="entry_id").join(
        images.select("entry_id", "image_key"), on="entry_id")
    thumbnails = render_qa_thumbnails(failures, polygons, shapes, taxonomy, store, settings.min_fragment_px)
    return with_thumbnails(results, thumbnails)


def test_batch_by_batch_qa_equals_qa_over_every_batch_at_once(demo_tables):
    masks, images, shapes, taxonomy, objects = demo_tables
    settings = load_pipeline_settings(DEMO_CONFIG / "pipeline.yaml").qa
    store = ArtefactStore.in_memory(dict(objects))  # the fixture's store stays without memos
    expected = all_at_once(masks, images, shapes, taxonomy, settings, store)
    outcome = qa_by_batch(masks, images, shapes, taxonomy, settings, store)
    assert outcome.entries_checked == masks.concat().height
    assert not expected.filter(~pl.col("passed")).is_empty()  # the demo's defects are found
    assert set(expected.filter(~pl.col("passed"))["check_id"]) >= {"entry_not_superseded", "labels_mapped"}
    assert outcome.results.equals(expected)


def test_instance_area_statistics_combined_batch_by_batch_equal_those_of_every_shape(demo_tables):
    _, _, shapes, taxonomy, _ = demo_tables
    combined = ClassAreas()
    for _, batch_shapes in shapes.each():
        combined = combined.combined(ClassAreas.of(drawn_shape_areas(batch_shapes, taxonomy)))
    whole = ClassAreas.of(drawn_shape_areas(shapes.concat(), taxonomy))
    assert combined.count == whole.count and combined.count
    for name in ("mean", "std"):
        assert combined.table()[name].to_list() == pytest.approx(whole.table()[name].to_list(), rel=1e-12)


class CountingShapes(FrameBatches):
    """Batch tables that count the batches whose shapes were read."""

    def __init__(self, frames):
        super().__init__(frames)
        self.read_batches: list[str] = []

    def read(self, batch, columns=None):
        self.read_batches.append(batch)
        return super().read(batch, columns)


def test_a_rerun_with_a_new_batch_reads_only_the_new_batchs_shapes(demo_tables):
    masks, images, shapes, taxonomy, objects = demo_tables
    settings = load_pipeline_settings(DEMO_CONFIG / "pipeline.yaml").qa
    store = ArtefactStore.in_memory(dict(objects))
    *earlier, newest = shapes.batches

    def only(tables, batches):
        return {batch: tables.read(batch) for batch in batches}

    first = CountingShapes(only(shapes, earlier))
    qa_by_batch(FrameBatches(only(masks, earlier)), FrameBatches(only(images, earlier)), first, taxonomy, settings,
                store)
    assert set(first.read_batches) >= set(earlier)
    nightly = CountingShapes(only(shapes, shapes.batches))
    outcome = qa_by_batch(masks, images, nightly, taxonomy, settings, store)
    assert set(nightly.read_batches) <= {newest, *_batches_with_outlined_failures(outcome.results, images)}
    assert newest in nightly.read_batches
    assert outcome.results.equals(qa_by_batch(masks, images, shapes, taxonomy, settings,
                                              ArtefactStore.in_memory(dict(objects))).results)


def _batches_with_outlined_failures(results: pl.DataFrame, images: FrameBatches) -> set[str]:
    """Batches whose shapes the thumbnails of outlined failures read again (a few, never all)."""
    return set(results.filter(pl.col("thumbnail_key").is_not_null())["batch_id"])


def test_a_batchs_judgement_is_remembered_and_made_again_only_when_what_it_depends_on_changes(demo_tables):
    masks, images, shapes, taxonomy, objects = demo_tables
    settings = load_pipeline_settings(DEMO_CONFIG / "pipeline.yaml").qa
    written = dict(objects)
    store = ArtefactStore.in_memory(written)

    def judged() -> set[str]:
        return {key for key in written if key.startswith("qa-judged/")}

    first = qa_by_batch(masks, images, shapes, taxonomy, settings, store)
    assert {key.split("/")[1] for key in judged()} == set(masks.batches)
    before = judged()
    again = qa_by_batch(masks, images, shapes, taxonomy, settings, store)  # nothing changed: every batch recalled
    assert judged() == before and again.results.equals(first.results)
    for key in before:  # a memo that says otherwise ...
        memo = orjson.loads(written[key])
        memo["passed"][0] = not memo["passed"][0]
        written[key] = orjson.dumps(memo)
    assert not qa_by_batch(masks, images, shapes, taxonomy, settings, store).results.equals(first.results)
    for key in before:  # ... is what a build reads; one that is no table is made again
        written[key] = b'{"passed": [true]}'
    assert qa_by_batch(masks, images, shapes, taxonomy, settings, store).results.equals(first.results)
    looser = settings.__class__(**{**settings.__dict__, "max_unlabeled_fraction": 0.9})
    rejudged = qa_by_batch(masks, images, shapes, taxonomy, looser, store)  # a setting is in every batch's name
    assert len(judged()) == 2 * len(before)
    assert rejudged.results.equals(all_at_once(masks, images, shapes, taxonomy, looser,
                                               ArtefactStore.in_memory(dict(objects))))


def test_a_correction_landed_later_judges_again_the_batch_it_corrects(demo_tables):
    masks, images, shapes, taxonomy, objects = demo_tables
    settings = load_pipeline_settings(DEMO_CONFIG / "pipeline.yaml").qa
    corrected = masks.batches[1]
    entry = masks.read(corrected)["entry_id"][0]

    def redelivered(table: pl.DataFrame) -> pl.DataFrame:  # the entry again, in a batch landed later
        again = table.filter(pl.col("entry_id") == entry).with_columns(entry_id=pl.lit("correction-1"))
        if "batch_id" in again.columns:
            again = again.with_columns(batch_id=pl.lit("b999_correction"), landed_at=pl.col("landed_at") + pl.duration(days=1))
        return again

    def with_correction(tables: FrameBatches) -> FrameBatches:
        return FrameBatches({**{b: tables.read(b) for b in tables.batches},
                             "b999_correction": redelivered(tables.read(corrected))})

    store = ArtefactStore.in_memory(dict(objects))
    earlier = qa_by_batch(masks, images, shapes, taxonomy, settings, store)
    later = qa_by_batch(with_correction(masks), with_correction(images), with_correction(shapes), taxonomy, settings,
                        store)
    superseded = (pl.col("check_id") == "entry_not_superseded") & (pl.col("entry_id") == entry)
    assert earlier.results.filter(superseded)["passed"].to_list() == [True]
    # judged again although its batch is as it was: a later batch replaces the entry
    assert later.results.filter(superseded)["passed"].to_list() == [False]
    assert later.results.equals(qa_by_batch(with_correction(masks), with_correction(images), with_correction(shapes),
                                            taxonomy, settings, ArtefactStore.in_memory(dict(objects))).results)
