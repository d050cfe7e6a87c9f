import dagster as dg
import polars as pl

from segpipe.core.shared.artefacts import content_digest
from segpipe.core.sampling.chart import render_distribution_chart
from segpipe.core.sampling.spec import SPLITS
from segpipe.core.sampling.report import distribution_report, unmet_floors
from segpipe.core.ingest.batch import image_metadata
from segpipe.core.consensus.review import unapplied_reviews
from segpipe.core.qa.deliveries import superseded_entries
from segpipe.core.qa.near_duplicates import leaks_across_splits, near_duplicate_pairs
from segpipe.core.sampling.sample import (
    kept_assignments,
    remember_assignments,
    remembered_assignments,
    sample_dataset,
    split_proportions,
)
from segpipe.core.shared.pictures import Picture
from segpipe.core.taxonomy.legend import class_legend
from segpipe.defs.metadata import md_table, readable, with_file_names
from segpipe.defs.pictures import gallery, legend
from segpipe.defs.readable import percentages
from segpipe.defs.retries import OBJECT_STORE_RETRY, only_transient_retried
from segpipe.io.object_store import ObjectStore
from segpipe.io.pipeline_config import PipelineConfig
from segpipe.store import keys as store_keys

CHART_CAPTION = "distribution: target, selection and each split per dimension; each class's pixel share"
DISTANCE_SHARES = ("achieved_distance", "worst_split_distance")  # total variation distances between shares
DISTRIBUTION_SHARES = ("target", "natural", "achieved", *SPLITS)


class SamplingConfig(dg.Config):
    """rebalance: assign every image afresh instead of keeping the splits of the last build, which a
    build under an unchanged distribution spec otherwise keeps."""

    rebalance: bool = False


@dg.multi_asset(
    outs={
        "dataset_split": dg.AssetOut(kinds={"polars"}, description=(
            "Per accepted image: its split, or none when the spec's target size left it out, and which step chose it.")),
        "sampling_report": dg.AssetOut(kinds={"polars"}, description=(
            "Achieved against target share per split and strata value, overall and per split.")),
        "class_balance": dg.AssetOut(kinds={"polars"}, description=(
            "Per trainable class and split: images holding it, its share of the labelled pixels, floors met.")),
    },
    check_specs=[
        dg.AssetCheckSpec(
            "near_duplicates_in_one_split", asset="dataset_split",
            description="No two near-duplicate images (perceptual hash within qa.near_duplicate_bits) are in different "
                        "splits, where a copy in test would leak what train saw. A warning: a failure is reported "
                        "and the release goes on."),
        dg.AssetCheckSpec(
            "distribution_within_tolerance", asset="dataset_split",
            description="The selection's split sizes and strata shares lie within sampling.tolerance of their "
                        "targets (whole groups can leave them a little off). A warning: a failure is reported and "
                        "the release goes on."),
        dg.AssetCheckSpec(
            "rare_class_floors", asset="dataset_split",
            description="Every trainable class the data holds is in sampling.rare_classes.min_images images and "
                        "min_pixel_share of the labelled pixels of every split. A warning: a failure is reported and "
                        "the release goes on."),
    ],
    group_name="sampling",
    retry_policy=OBJECT_STORE_RETRY,
)
def golden_sample(
    config: SamplingConfig, pipeline_config: PipelineConfig, object_store: ObjectStore,
    consensus_masks: pl.DataFrame, batch_images: pl.DataFrame,
):
    """Select and split the accepted images as the distribution spec (pipeline.yaml `sampling`)
    asks: foundation, targeted strata shares, rare-class floors, groups and near copies kept in one
    split, earlier assignments kept. An infeasible spec fails here, naming what cannot be met."""
    with only_transient_retried():
        taxonomy, settings = pipeline_config.taxonomy(), pipeline_config.settings()
        spec, store = settings.sampling, object_store.artefacts()
        accepted = consensus_masks.filter(pl.col("status") == "accepted").select("image_id", "class_pixels")
        # Strata come from the current deliveries first: a correction may correct an image's metadata too.
        metadata = image_metadata(batch_images, {*superseded_entries(batch_images),
                                                 *unapplied_reviews(batch_images, consensus_masks)})
        candidates = accepted.join(metadata, on="image_id", how="left")
        pairs = near_duplicate_pairs(batch_images.filter(pl.col("image_id").is_in(accepted["image_id"].to_list())),
                                     settings.qa.near_duplicate_bits)
        previous = None if config.rebalance else remembered_assignments(store)
        trainable = sorted(c.id for c in taxonomy.classes if c.trainable)
        sample = sample_dataset(candidates, spec, trainable, previous, [(a, b) for a, b, _ in pairs])
        remember_assignments(store, sample.splits)
        report = distribution_report(sample, spec, {c.id: c.name for c in taxonomy.classes})
        chart = render_distribution_chart(report.distribution, report.classes, {c.id: c.color for c in taxonomy.classes})
        chart_key = store_keys.distribution_chart(content_digest(chart))
        store.write_once(chart_key, chart)
        splits = sample.splits
        leaks = leaks_across_splits(splits.filter(pl.col("split").is_not_null()), pairs)  # the pairs found above
        distances = md_table(report.distances, percent=DISTANCE_SHARES)
        yield dg.Output(splits, output_name="dataset_split", metadata=readable({
            "images_selected": splits.filter(pl.col("split").is_not_null()).height,
            "images_not_selected": splits.filter(pl.col("split").is_null()).height,
            "proportions": dg.MetadataValue.json(percentages(split_proportions(splits))),
            "targets": dg.MetadataValue.json(percentages(spec.splits)),
            "selected_by": dg.MetadataValue.json(dict(splits.group_by("selected_by").len().sort("selected_by").drop_nulls().iter_rows())),
            "kept_from_last_build": kept_assignments(splits, previous),
            "rebalanced": config.rebalance,
        }))
        yield dg.Output(report.distribution, output_name="sampling_report", metadata={
            "distances": distances,
            "chart": gallery([Picture(CHART_CAPTION, lambda: chart, object_store.url(chart_key))]),
            "legend": legend(class_legend(taxonomy)),
            "achieved_vs_target": md_table(report.distribution, max_rows=200, percent=DISTRIBUTION_SHARES),
        })
        yield dg.Output(report.classes, output_name="class_balance", metadata={
            "classes": md_table(report.classes, max_rows=256, percent=_share_columns(report.classes)),
        })
        yield dg.AssetCheckResult(
            asset_key="dataset_split", check_name="distribution_within_tolerance",
            passed=bool(report.distances["within_tolerance"].all()), severity=dg.AssetCheckSeverity.WARN,
            metadata=readable({"tolerance": spec.tolerance, "distances": distances}))
        short = unmet_floors(report.classes)
        yield dg.AssetCheckResult(
            asset_key="dataset_split", check_name="rare_class_floors", passed=short.is_empty(),
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"unmet": short.height, "classes": md_table(short, percent=_share_columns(short))})
        yield dg.AssetCheckResult(
            asset_key="dataset_split", check_name="near_duplicates_in_one_split", passed=leaks.is_empty(),
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"pairs_across_splits": leaks.height, "pairs": md_table(
                with_file_names(with_file_names(leaks, batch_images, "image_a"), batch_images, "image_b"))})


def _share_columns(classes: pl.DataFrame) -> list[str]:
    return [name for name in classes.columns if name.startswith("pixel_share")]
