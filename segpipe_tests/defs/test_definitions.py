"""Snapshot of the asset graph: a renamed asset loses its history, so renames must fail a test."""

import dagster as dg

from segpipe.defs.partitions import BACKFILL_RUN_BATCHES
from segpipe.definitions import defs

EXPECTED_ASSETS = {
    "batch_images": ("ingest", set()),
    "batch_shapes": ("ingest", set()),
    "batch_quarantine": ("ingest", set()),
    "batch_files": ("ingest", set()),
    "taxonomy_spec": ("taxonomy", set()),
    "mapped_shapes": ("taxonomy", {"batch_shapes", "batch_images", "taxonomy_spec"}),
    "label_masks": ("rasterize", {"batch_images", "batch_shapes"}),
    "annotation_masks": ("rasterize", {"batch_images", "label_masks", "mapped_shapes"}),
    "qa_report": ("qa", {"annotation_masks", "batch_images", "mapped_shapes"}),
    "consensus_masks": ("consensus", {"annotation_masks", "qa_report"}),
    "annotator_scores": ("consensus", {"annotation_masks", "qa_report"}),
    "annotator_pair_agreement": ("consensus", {"annotation_masks", "qa_report"}),
    "annotator_reliability": ("consensus", {"annotation_masks", "qa_report"}),
    "dataset_split": ("sampling", {"consensus_masks", "batch_images"}),
    "sampling_report": ("sampling", {"consensus_masks", "batch_images"}),
    "class_balance": ("sampling", {"consensus_masks", "batch_images"}),
    "dataset_release": ("release", {"dataset_split", "sampling_report", "class_balance", "consensus_masks", "batch_images",
                                    "batch_quarantine", "qa_report", "annotation_masks", "mapped_shapes"}),
}

# Under the packaged taxonomy (`unmapped: error`): ERROR rules and the unmapped labels block.
EXPECTED_CHECKS = {
    "batch_quarantine:entries_accepted": False,
    "batch_images:batch_usable": False,
    "qa_report:mask_matches_image_size": True,
    "qa_report:mask_ids_in_taxonomy": True,
    "qa_report:mask_not_empty": False,
    "qa_report:unlabeled_fraction": False,
    "qa_report:labels_mapped": True,
    "qa_report:unmapped_labels": True,
    "qa_report:entry_not_superseded": False,
    "qa_report:image_not_near_duplicate": False,
    "qa_report:class_constraints": False,
    "qa_report:class_never_present": False,
    "qa_report:class_imbalance": False,
    "qa_report:tiny_fragments": False,
    "qa_report:instance_area_typical": False,
    "qa_report:polygon_self_intersection": False,
    "qa_report:polygon_too_few_points": False,
    "qa_report:polygon_zero_area": False,
    "qa_report:vertices_outside_image": False,
    "dataset_split:near_duplicates_in_one_split": False,
    "dataset_split:distribution_within_tolerance": False,
    "dataset_split:rare_class_floors": False,
    "dataset_release:ledger_balances": False,
}


def test_asset_graph_has_every_stage_with_its_dependencies():
    specs = {s.key.to_user_string(): s for s in defs().resolve_all_asset_specs()}
    actual = {k: (s.group_name, {d.asset_key.to_user_string() for d in s.deps}) for k, s in specs.items()}
    assert actual == EXPECTED_ASSETS
    assert {g for g, _ in actual.values()} == {"ingest", "taxonomy", "rasterize", "qa", "consensus", "sampling", "release"}


def test_checks_exist_and_error_rules_are_blocking():
    graph = defs().resolve_asset_graph()
    checks = {key.to_user_string(): graph.get_check_spec(key).blocking for key in graph.asset_check_keys}
    assert checks == EXPECTED_CHECKS


def test_batch_stages_are_partitioned_by_annotation_batch_and_the_rest_are_not():
    graph = defs().resolve_asset_graph()
    partitioned = {
        key.to_user_string() for key in graph.get_all_asset_keys() if graph.get(key).partitions_def is not None
    }
    assert partitioned == {"batch_images", "batch_shapes", "batch_quarantine", "batch_files", "mapped_shapes", "label_masks", "annotation_masks"}


def test_a_backfill_runs_the_batch_stages_in_runs_of_at_most_the_cli_backfills_batches():
    """A backfill from the UI is cut as `segpipe backfill` cuts its runs: memory per run stays bounded."""
    graph = defs().resolve_asset_graph()
    policies = {graph.get(key).backfill_policy for key in graph.get_all_asset_keys() if graph.get(key).partitions_def}
    assert policies == {dg.BackfillPolicy.multi_run(max_partitions_per_run=BACKFILL_RUN_BATCHES)}
    assert BACKFILL_RUN_BATCHES > 1  # one step over several batches, not a run per batch


def test_jobs_schedule_and_sensor_resolve():
    d = defs()
    assert {j.name for j in d.jobs} == {"batch_job", "release_job", "taxonomy_job", "taxonomy_backfill_job",
                                        "store_gc_job"}
    backfill_keys = {k.to_user_string() for k in d.resolve_job_def("taxonomy_backfill_job").asset_layer.selected_asset_keys}
    assert backfill_keys == {"mapped_shapes", "annotation_masks"}  # label masks are reused, never redrawn
    assert d.resolve_schedule_def("nightly_release").cron_schedule == "0 2 * * *"
    assert d.resolve_sensor_def("landing_batches_sensor").job_name == "batch_job"
    assert {s.name: s.default_status for s in d.sensors} == {
        "landing_batches_sensor": dg.DefaultSensorStatus.RUNNING, "run_failure_alert": dg.DefaultSensorStatus.RUNNING,
        "bad_input_alert": dg.DefaultSensorStatus.RUNNING}
    release_keys = {k.to_user_string() for k in d.resolve_job_def("release_job").asset_layer.selected_asset_keys}
    assert release_keys == {"qa_report", "consensus_masks", "annotator_scores", "annotator_pair_agreement",
                            "annotator_reliability", "dataset_split",
                            "sampling_report", "class_balance", "dataset_release"}


def test_taxonomy_code_version_is_the_file_hash():
    spec = next(s for s in defs().resolve_all_asset_specs() if s.key == dg.AssetKey("taxonomy_spec"))
    assert spec.code_version.startswith("v1:") and len(spec.code_version) == 15
