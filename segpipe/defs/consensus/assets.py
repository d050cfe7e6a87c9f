import dagster as dg
import polars as pl

from segpipe.core.consensus.annotator_pairs import pair_summary
from segpipe.core.consensus.annotator_reliability import annotator_summary
from segpipe.core.consensus.fusion import build_consensus
from segpipe.core.consensus.review import agreement_map_pictures, confidence_map_pictures, review_queue
from segpipe.core.qa.rules import excluded_entries
from segpipe.core.shared.batch_tables import BatchTables
from segpipe.core.shared.class_pixels import concat_sparse
from segpipe.defs.metadata import md_table
from segpipe.defs.pictures import gallery, stored_pictures
from segpipe.defs.retries import OBJECT_STORE_RETRY, only_transient_retried
from segpipe.io.object_store import ObjectStore
from segpipe.io.pipeline_config import PipelineConfig
from segpipe.store import keys as store_keys

# What consensus reads of each batch's masks (the rest is the QA's and the release's).
CONSENSUS_COLUMNS = ("entry_id", "image_id", "annotator", "is_gold", "mask_key", "instance_mask_key", "class_pixels")
AGREEMENT_MAP_NOTE = ("Agreement maps: white where all annotators agree, darker where they split (the share of the "
                      "vote behind each pixel's leading class).")
CONFIDENCE_MAP_NOTE = ("Confidence maps (reliability-fused images): white where the released class has all the "
                       "vote weight behind it, darker as its posterior falls; below consensus.min_confidence the "
                       "pixel was released as ignore.")


@dg.multi_asset(
    outs={
        "consensus_masks": dg.AssetOut(kinds={"polars"}, description="Per image: released mask (gold, single or fused) and annotator agreement."),
        "annotator_scores": dg.AssetOut(kinds={"polars"}, description="Honeypot leaderboard: each annotator against gold annotations."),
        "annotator_pair_agreement": dg.AssetOut(kinds={"polars"}, description="Per fused image, annotator pair and class: the class IoU and the pair's mean IoU."),
        "annotator_reliability": dg.AssetOut(kinds={"polars"}, description="Per annotator and class, as reliability fusion estimates it over every image: recall, the class confused with, error rate and vote weight."),
    },
    group_name="consensus",
    retry_policy=OBJECT_STORE_RETRY,
)
def consensus(
    context: dg.AssetExecutionContext,
    pipeline_config: PipelineConfig,
    object_store: ObjectStore,
    annotation_masks: BatchTables,
    qa_report: pl.DataFrame,
):
    """Fuse annotators pixel by pixel where several labelled an image, score them on honeypots,
    measure each pair's agreement class by class and estimate each annotator's per-class
    reliability. Entries a QA rule excluded take no part; images whose masks are unchanged since an
    earlier run reuse its outcome (see segpipe.core.consensus.fusion). The review queue shows the
    agreement and confidence maps of its first images (AGREEMENT_MAP_NOTE, CONFIDENCE_MAP_NOTE)."""
    with only_transient_retried():
        taxonomy, settings = pipeline_config.taxonomy(), pipeline_config.settings()
        palette = taxonomy.palette() if settings.mask_encoding == "palette" else None
        masks = concat_sparse(annotation_masks, CONSENSUS_COLUMNS)
        usable = masks.join(excluded_entries(qa_report), on="entry_id", how="anti")
        store, used = object_store.artefacts().recording()
        images, scores, pairs, reliability = build_consensus(
            usable, store, settings.consensus, taxonomy.ignore_index, palette,
            {c.id: c.name for c in taxonomy.classes}, {c.id: c.category for c in taxonomy.classes})
        if pruned := object_store.prune_unused_memos(store_keys.CONSENSUS_MEMO_DIRS, used):
            context.log.info(f"deleted {len(pruned)} consensus outcomes of earlier masks or settings, unused for an "
                             "hour")
        queue = review_queue(images, masks.select("entry_id", "image_id").join(
            qa_report.select("entry_id", "file_name").unique("entry_id"), on="entry_id"))
        yield dg.Output(images, output_name="consensus_masks", metadata={
            "images": images.height,
            "by_status": dg.MetadataValue.json(dict(images.group_by("status").len().sort("status").iter_rows())),
            "by_mask_source": dg.MetadataValue.json(dict(images.group_by("mask_source").len().sort("mask_source").iter_rows())),
            "by_fusion_rule": dg.MetadataValue.json(dict(images.filter(pl.col("fusion_rule").is_not_null())
                                                         .group_by("fusion_rule").len().sort("fusion_rule").iter_rows())),
            "review_queue": md_table(queue.select("file_name", "status", "annotators", "agreement", "disputed_classes")),
            "agreement_maps": gallery(stored_pictures(object_store, agreement_map_pictures(queue)),
                                      everything=object_store.url(store_keys.AGREEMENT_MAPS_DIR), note=AGREEMENT_MAP_NOTE),
            "confidence_maps": gallery(stored_pictures(object_store, confidence_map_pictures(queue)),
                                       everything=object_store.url(store_keys.CONFIDENCE_MAPS_DIR),
                                       note=CONFIDENCE_MAP_NOTE),
        })
        yield dg.Output(scores, output_name="annotator_scores", metadata={
            "leaderboard": md_table(scores),
        })
        yield dg.Output(pairs, output_name="annotator_pair_agreement", metadata={
            "rows": pairs.height,
            "by_pair": md_table(pair_summary(pairs)),
        })
        yield dg.Output(reliability, output_name="annotator_reliability", metadata={
            "rows": reliability.height,
            "leaderboard": md_table(annotator_summary(reliability), percent=("error_rate",)),
        })
