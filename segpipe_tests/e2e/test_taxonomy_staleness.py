"""What the UI shows as Unsynced after a taxonomy edit, asked of the resolver the UI itself uses.

taxonomy_spec's code version is the taxonomy file's hash, taken when the code location loads
(the UI's "Reload definitions"; here, reloading the module). Its data version is the taxonomy's
normalized content hash. Dagster marks an asset stale one hop at a time: when its own code version
changed, or when an input has a new data version. So an edit first marks taxonomy_spec alone; once
it is materialized, every batch's mapped_shapes (and nothing else) is stale, and so on down the
backfill. A comment-only edit changes the file's hash but not the content hash: after
taxonomy_spec is re-materialized nothing downstream is stale.

Dagster has no public API for staleness; CachingStaleStatusResolver is what the webserver and the
asset daemon call.
"""

import importlib
import shutil
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.asset_graph_view.asset_graph_view import AssetGraphView, TemporalContext
from dagster._core.definitions.data_version import CachingStaleStatusResolver
from dagster._time import get_current_datetime

import segpipe.defs.taxonomy.assets as taxonomy_assets
from segpipe.definitions import defs as load_defs
from segpipe.demo import DEMO_CONFIG
from segpipe.environment import current_environment
from segpipe.cli import local_build
from segpipe.cli.local_build import run_local_build, run_taxonomy_backfill
from segpipe_tests.conftest import tiny_demo_pipeline

pytestmark = pytest.mark.slow


def stale_assets(instance: dg.DagsterInstance) -> set[str]:
    """Every asset, or asset partition as `asset[partition]`, that the UI would show as Unsynced."""
    graph = load_defs().resolve_asset_graph()
    view = AssetGraphView(temporal_context=TemporalContext(effective_dt=get_current_datetime(), last_event_id=None),
                          instance=instance, asset_graph=graph)
    resolver = CachingStaleStatusResolver(instance=instance, asset_graph=graph, loading_context=view)
    stale = set()
    for key in graph.get_all_asset_keys():
        partitions = graph.get(key).partitions_def
        for partition in partitions.get_partition_keys(dynamic_partitions_store=instance) if partitions else [None]:
            if resolver.get_status(key, partition).value == "STALE":
                stale.add(key.to_user_string() + (f"[{partition}]" if partition else ""))
    return stale


def reload_code_location() -> None:
    importlib.reload(taxonomy_assets)


@pytest.fixture
def built(tiny_demo, tmp_path):
    """A cold build on a private copy of the demo and taxonomy; the module is reloaded back after."""
    taxonomy = tmp_path / "taxonomy.yaml"
    taxonomy.write_text((DEMO_CONFIG / "taxonomy.yaml").read_text())
    with pytest.MonkeyPatch.context() as env, dg.instance_for_test() as instance:
        shutil.copytree(Path(tiny_demo.landing_root), tmp_path / "landing")
        env.setenv("SEGPIPE_LANDING_ROOT", str(tmp_path / "landing"))
        env.setenv("SEGPIPE_STORAGE_ROOT", str(tmp_path / "store"))
        env.setenv("SEGPIPE_TAXONOMY", str(taxonomy))
        pipeline = tmp_path / "pipeline.yaml"
        pipeline.write_text(tiny_demo_pipeline())
        env.setenv("SEGPIPE_PIPELINE_CONFIG", str(pipeline))
        reload_code_location()
        outcome = run_local_build(load_defs(), instance, current_environment())
        assert outcome.success
        yield instance, taxonomy, outcome.batches
    reload_code_location()


def test_an_alias_edit_marks_the_taxonomy_then_each_batch_mapping_stale_and_a_backfill_clears_it(built, monkeypatch):
    """The backfill remaps the batches in runs of BACKFILL_RUN_BATCHES (2 here), which together cover them all."""
    instance, taxonomy, batches = built
    monkeypatch.setattr(local_build, "BACKFILL_RUN_BATCHES", 2)
    assert stale_assets(instance) == set()
    taxonomy.write_text(taxonomy.read_text().replace("    automobile: car", "    automobile: road"))
    reload_code_location()
    assert stale_assets(instance) == {"taxonomy_spec"}

    load_defs().resolve_job_def("taxonomy_job").execute_in_process(instance=instance)
    # Every batch's mapping depends on the taxonomy; label masks and the ingest tables do not.
    assert stale_assets(instance) == {f"mapped_shapes[{batch}]" for batch in batches}

    assert run_taxonomy_backfill(load_defs(), instance, current_environment()).success
    assert stale_assets(instance) == set()
    runs = instance.get_run_records(dg.RunsFilter(job_name="taxonomy_backfill_job"))
    ranges = sorted((r.dagster_run.tags["dagster/asset_partition_range_start"],
                     r.dagster_run.tags["dagster/asset_partition_range_end"]) for r in runs)
    assert ranges == sorted((batches[i], batches[min(i + 1, len(batches) - 1)]) for i in range(0, len(batches), 2))
    assert len(batches) > 2


def test_a_comment_only_edit_leaves_everything_downstream_fresh(built):
    instance, taxonomy, _ = built
    taxonomy.write_text("# reviewed 2026-12-01\n" + taxonomy.read_text())
    reload_code_location()
    assert stale_assets(instance) == {"taxonomy_spec"}
    load_defs().resolve_job_def("taxonomy_job").execute_in_process(instance=instance)
    assert stale_assets(instance) == set()
