"""Bad input shows at run level without failing ingest: a batch whose every image is a truncated JPEG and
one whose COCO file is cut in half are ingested (their partitions materialized, so later releases are not
held up), their run gets the segpipe/bad_input tag, their partitions a failed WARN batch_usable check, and
the alert sensors report each with the file, the reason and what to do."""

import json
import shutil
from pathlib import Path

import dagster as dg
import pytest

from segpipe.core.shared.quarantine_rules import IMAGE_UNDECODABLE, UNPARSEABLE_ANNOTATIONS, quarantine_rule
from segpipe.definitions import defs
from segpipe.defs.alerts.sensors import bad_input_alert_sensor, run_failure_alert_sensor
from segpipe.defs.ingest.bad_input import BAD_INPUT_TAG
from segpipe.demo import DEMO_CONFIG
from segpipe_tests.defs.alert_capture import LogLines

GOOD, TRUNCATED, HALF_JSON = "b003_vendor_c_carol", "b010_truncated_jpegs", "b011_half_json"


def _land(landing: Path, folder_from: Path, batch_id: str, **manifest: str) -> Path:
    folder = landing / batch_id
    shutil.copytree(folder_from, folder)
    meta = json.loads((folder / "batch.json").read_text())
    (folder / "batch.json").write_text(json.dumps({**meta, "batch_id": batch_id, **manifest}))
    return folder


@pytest.fixture
def project(tiny_demo, tmp_path, monkeypatch) -> Path:
    """A landing zone with a good CVAT batch, a CVAT batch of truncated JPEGs and a COCO batch whose
    annotations.json is cut in half."""
    landing, demo = tmp_path / "landing", Path(tiny_demo.landing_root)
    _land(landing, demo / GOOD, GOOD)
    truncated = _land(landing, demo / "b001_vendor_a_alice", TRUNCATED)
    for image in (truncated / "images").glob("*.jpg"):
        image.write_bytes(image.read_bytes()[:len(image.read_bytes()) // 2])
    half = _land(landing, demo / "b002_vendor_b_bob", HALF_JSON)
    text = (half / "annotations.json").read_bytes()
    (half / "annotations.json").write_bytes(text[:len(text) // 2])
    for name, value in (("SEGPIPE_HOME", tmp_path), ("SEGPIPE_LANDING_ROOT", landing),
                        ("SEGPIPE_STORAGE_ROOT", tmp_path / "store"), ("SEGPIPE_TAXONOMY", DEMO_CONFIG / "taxonomy.yaml"),
                        ("SEGPIPE_PIPELINE_CONFIG", DEMO_CONFIG / "pipeline.yaml")):
        monkeypatch.setenv(name, str(value))
    return tmp_path


def _run_batch_job(instance: dg.DagsterInstance, batches: list[str]) -> dg.ExecuteInProcessResult:
    """batch_job over `batches` in one run, as a backfill of them launches it."""
    instance.add_dynamic_partitions("annotation_batches", batches)
    return defs().resolve_job_def("batch_job").execute_in_process(
        instance=instance, raise_on_error=False,
        tags={"dagster/asset_partition_range_start": batches[0], "dagster/asset_partition_range_end": batches[-1]})


def _tick(sensor: dg.SensorDefinition, instance, result: dg.ExecuteInProcessResult, status: str) -> list[tuple[str, str]]:
    """The sensor's log lines (level, message) for the run's final event, as its tick log would show them."""
    event = next(e for e in result.all_events if e.event_type_value == status)
    context = dg.build_run_status_sensor_context(sensor_name=sensor.name, dagster_instance=instance,
                                                 dagster_run=instance.get_run_by_id(result.run_id), dagster_event=event)
    if status == "PIPELINE_FAILURE":
        context = context.for_run_failure()
    lines = LogLines()
    context.log.addHandler(lines)
    sensor(context)
    return lines.lines


def test_unusable_batches_tag_their_run_fail_a_warn_check_and_are_alerted_while_ingest_succeeds(project, webhook):
    url, received = webhook
    batches = sorted([GOOD, TRUNCATED, HALF_JSON])
    with dg.instance_for_test() as instance:
        result = _run_batch_job(instance, batches)
        assert result.success  # ingest, mapping and drawing all succeed: bad input is reported, not raised
        done = instance.get_materialized_partitions(dg.AssetKey("annotation_masks"))
        assert done == set(batches)  # so no bad batch holds up a release
        run = instance.get_run_by_id(result.run_id)
        assert run.tags[BAD_INPUT_TAG] == f"{TRUNCATED}, {HALF_JSON}"

        usable = {e.partition: e for e in result.get_asset_check_evaluations() if e.check_name == "batch_usable"}
        assert set(usable) == set(batches) and usable[GOOD].passed
        for batch in (TRUNCATED, HALF_JSON):
            assert not usable[batch].passed and usable[batch].severity == dg.AssetCheckSeverity.WARN
            assert usable[batch].blocking is False
            assert usable[batch].description.startswith(f"Warning: nothing of batch {batch} can be released: ")
        assert usable[TRUNCATED].metadata["rule"].value == IMAGE_UNDECODABLE
        assert usable[HALF_JSON].metadata["rule"].value == UNPARSEABLE_ANNOTATIONS
        assert usable[HALF_JSON].metadata["file"].value == "annotations.json"

        lines = _tick(bad_input_alert_sensor(url), instance, result, "PIPELINE_SUCCESS")
    assert [level for level, _ in lines] == ["WARNING", "WARNING"]
    truncated, half = (line for _, line in lines)
    assert truncated.startswith(f"Batch {TRUNCATED} (run {result.run_id} of batch_job) has nothing to release: it "
                                "was read as cvat_images_1.1, but all ")
    assert f"{IMAGE_UNDECODABLE}: " in truncated and "image file is truncated" in truncated
    assert truncated.endswith(f"What to do: {quarantine_rule(IMAGE_UNDECODABLE).action} (see /runs/{result.run_id})")
    assert half.startswith(f"Batch {HALF_JSON} (run {result.run_id} of batch_job) has nothing to release: its "
                           f"format could not be read ({UNPARSEABLE_ANNOTATIONS}), so all ")
    assert f"{HALF_JSON}/annotations.json: not valid JSON" in half and "(file annotations.json)" in half
    assert f"What to do: {quarantine_rule(UNPARSEABLE_ANNOTATIONS).action}" in half
    [delivery] = received
    body = delivery["body"]
    assert (body["alert"], body["job"], body["run_id"], body["run_path"]) == (
        "bad_input", "batch_job", result.run_id, f"/runs/{result.run_id}")
    assert [(b["batch"], b["rule"], b["what_to_do"]) for b in body["batches"]] == [
        (TRUNCATED, IMAGE_UNDECODABLE, quarantine_rule(IMAGE_UNDECODABLE).action),
        (HALF_JSON, UNPARSEABLE_ANNOTATIONS, quarantine_rule(UNPARSEABLE_ANNOTATIONS).action)]


def test_a_run_without_bad_input_is_neither_tagged_nor_alerted(project, webhook):
    url, received = webhook
    with dg.instance_for_test() as instance:
        result = _run_batch_job(instance, [GOOD])
        assert result.success and BAD_INPUT_TAG not in instance.get_run_by_id(result.run_id).tags
        assert _tick(bad_input_alert_sensor(url), instance, result, "PIPELINE_SUCCESS") == []
    assert received == []


def test_a_failed_run_reports_its_bad_batches_beside_the_failure(project):
    """A run that failed for another reason (a batch whose source no rule maps) still names its bad batch."""
    unmapped = _land(project / "landing", project / "landing" / GOOD, "b012_vendor_z", source="vendor_z")
    with dg.instance_for_test() as instance:
        result = _run_batch_job(instance, sorted([unmapped.name, HALF_JSON]))
        assert not result.success
        assert instance.get_run_by_id(result.run_id).tags[BAD_INPUT_TAG] == HALF_JSON
        lines = _tick(run_failure_alert_sensor(None), instance, result, "PIPELINE_FAILURE")
    assert [level for level, _ in lines] == ["ERROR", "WARNING"]
    assert "failed in step mapped_shapes: ConfigError: " in lines[0][1]
    assert lines[1][1].startswith(f"Batch {HALF_JSON} (run {result.run_id} of batch_job) has nothing to release: ")
