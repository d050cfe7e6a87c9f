import dagster as dg

taxonomy_job = dg.define_asset_job(
    "taxonomy_job",
    selection=dg.AssetSelection.assets("taxonomy_spec"),
    description="Validate the taxonomy file and record its version.",
)
