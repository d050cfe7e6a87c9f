"""Which steps share a concurrency pool and which retry, checked on the definitions and on the
repository's dagster.yaml; and that a decision is not retried while a store error is."""

from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster._core.instance.config import PoolGranularity

from segpipe.core.shared.errors import ConfigError
from segpipe.store.publish import ReleaseConflictError
from segpipe.definitions import defs
from segpipe.defs.retries import OBJECT_STORE_RETRY, only_transient_retried

DAGSTER_YAML = Path(__file__).parents[2] / "dagster.yaml"

EXPECTED_POOLS = {
    "batch_images": "object_store", "batch_shapes": "object_store", "batch_quarantine": "object_store",
    "batch_files": "object_store", "dataset_release": "object_store",
    "label_masks": "rasterize", "annotation_masks": "rasterize",
}


def test_store_and_drawing_steps_are_pooled_and_every_step_on_the_store_retries():
    d = defs()
    keys = [spec.key for spec in d.resolve_all_asset_specs()]
    ops = {key.to_user_string(): d.resolve_assets_def(key).op for key in keys}
    assert {name: op.pool for name, op in ops.items() if op.pool} == EXPECTED_POOLS
    retried = {name for name, op in ops.items() if op.retry_policy is not None}
    assert retried == set(ops) - {"taxonomy_spec"}  # every other step reads or writes the store
    assert all(ops[name].retry_policy == OBJECT_STORE_RETRY for name in retried)
    assert (OBJECT_STORE_RETRY.backoff, OBJECT_STORE_RETRY.jitter) == (dg.Backoff.EXPONENTIAL, dg.Jitter.PLUS_MINUS)


def test_the_repository_dagster_yaml_limits_pools_and_frees_slots_of_ended_runs():
    settings = yaml.safe_load(DAGSTER_YAML.read_text())
    with dg.instance_for_test(overrides=settings) as instance:
        pools = instance.get_concurrency_config().pool_config
        assert (pools.default_pool_limit, pools.pool_granularity) == (2, PoolGranularity.OP)
        assert instance.run_monitoring_settings["free_slots_after_run_end_seconds"] == 300
        assert (instance.run_retries_enabled, instance.run_retries_max_retries,
                instance.run_retries_retry_on_asset_or_op_failure) == (True, 1, False)
        assert instance.get_concurrency_config().run_queue_config.max_concurrent_runs == 2


def _attempts_of_a_step_raising(error: Exception) -> tuple[int, dg.ExecuteInProcessResult]:
    attempts = []

    @dg.asset(retry_policy=dg.RetryPolicy(max_retries=2))
    def store_step() -> None:
        attempts.append(1)
        with only_transient_retried():
            raise error

    with dg.instance_for_test() as instance:
        result = dg.materialize([store_step], instance=instance, raise_on_error=False)
    return len(attempts), result


def test_a_store_error_is_retried_up_to_the_policy():
    attempts, result = _attempts_of_a_step_raising(ConnectionResetError("connection reset by peer"))
    assert (attempts, result.success) == (3, False)


@pytest.mark.parametrize("decision", [
    MemoryError("no memory for a 16384x16384 mask"),
    PermissionError(13, "Access Denied"),
    ConfigError("pipeline.yaml: consensus.quorum: must be a number in [0, 1], got 1.5"),
    ReleaseConflictError("releases/x/v1/_RELEASE.json: version v1 was published by run r2 with other content"),
])
def test_a_decision_fails_at_once_naming_itself(decision):
    attempts, result = _attempts_of_a_step_raising(decision)
    assert (attempts, result.success) == (1, False)
    [failure] = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    assert failure.step_failure_data.user_failure_data.description == f"{type(decision).__name__}: {decision}"
