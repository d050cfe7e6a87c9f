import dagster as dg

taxonomy_job = dg.define_asset_job(
    "taxonomy_job",
    selection=dg.AssetSelection.assets("taxonomy_spec"),
    description="Validate the taxonomy file and record its version.",
)

# After a taxonomy edit: remap every batch's masks (label masks stay as drawn), one run per batch
# partition; then release_job rebuilds QA, consensus, sampling and the release.
taxonomy_backfill_job = dg.define_asset_job(
    "taxonomy_backfill_job",
    selection=dg.AssetSelection.assets("mapped_shapes", "annotation_masks"),
    description="Map labels and remap masks of one batch with the current taxonomy (no image decoding, no redrawing).",
)
