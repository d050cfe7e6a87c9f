"""The nightly schedule follows pipeline.yaml's `nightly` section; a bad value stops the code location
from loading, naming the key."""

import datetime as dt
import re

import dagster as dg
import pytest

from segpipe.core.shared.errors import ConfigError
from segpipe.definitions import defs
from segpipe.defs.batches import BATCH_DONE_ASSET
from segpipe.defs.partitions import annotation_batches
from segpipe.environment import PACKAGE_CONFIG


@pytest.fixture
def pipeline_yaml(tmp_path, monkeypatch):
    """Write the packaged pipeline.yaml with another `nightly` section (None: none at all), and point
    segpipe at it."""
    def write(nightly_lines: str | None) -> None:
        text = PACKAGE_CONFIG.joinpath("pipeline.yaml").read_text()
        before, section = text.split("\nnightly:\n")
        assert all(line.startswith("  ") for line in section.splitlines()), "nightly: is no longer the last section"
        nightly = "" if nightly_lines is None else f"nightly:\n{nightly_lines}"
        (tmp_path / "pipeline.yaml").write_text(f"{before}\n{nightly}")
        monkeypatch.setenv("SEGPIPE_PIPELINE_CONFIG", str(tmp_path / "pipeline.yaml"))
    return write


def test_the_configured_cron_and_timezone_schedule_release_job(pipeline_yaml):
    pipeline_yaml('  cron: "30 4 * * 1-5"\n  timezone: Europe/Berlin\n')
    schedule = defs().resolve_schedule_def("nightly_release")
    assert (schedule.cron_schedule, schedule.execution_timezone, schedule.job_name) == (
        "30 4 * * 1-5", "Europe/Berlin", "release_job")
    with dg.instance_for_test() as instance:
        tick_time = dt.datetime(2026, 12, 2, 4, 30, tzinfo=dt.timezone(dt.timedelta(hours=1)))  # a Wednesday, CET
        with dg.build_schedule_context(instance=instance, scheduled_execution_time=tick_time) as context:
            before_any_batch = schedule.evaluate_tick(context)
        instance.add_dynamic_partitions(annotation_batches.name, ["b000_gold"])
        instance.report_runless_asset_event(dg.AssetMaterialization(BATCH_DONE_ASSET, partition="b000_gold"))
        with dg.build_schedule_context(instance=instance, scheduled_execution_time=tick_time) as context:
            result = schedule.evaluate_tick(context)  # the context's exit releases the instance it entered
    assert before_any_batch.run_requests == [] and "no batch is done yet" in before_any_batch.skip_message
    [request] = result.run_requests  # for the schedule's own job, release_job
    assert (request.job_name, request.tags) == (None, {"dagster/schedule_name": "nightly_release"})


def test_without_a_nightly_section_the_build_runs_at_two_utc(pipeline_yaml):
    pipeline_yaml(None)
    schedule = defs().resolve_schedule_def("nightly_release")
    assert (schedule.cron_schedule, schedule.execution_timezone) == ("0 2 * * *", "UTC")


def test_the_packaged_schedule_is_two_utc():
    schedule = defs().resolve_schedule_def("nightly_release")
    assert (schedule.cron_schedule, schedule.execution_timezone) == ("0 2 * * *", "UTC")


@pytest.mark.parametrize(("lines", "message"), [
    ('  cron: "0 25 * * *"\n', r"nightly.cron: hour field '25': '25' is outside 0-23, got '0 25 \* \* \*'"),
    ('  cron: "0 2 * *"\n', r"nightly.cron: expected 5 fields .*, got 4, got '0 2 \* \*'"),
    ("  timezone: Mars/Olympus\n", r"nightly.timezone: must be an IANA time zone name .*, got 'Mars/Olympus'"),
    ("  failure_webhook_url: hooks.example.org\n", r"nightly.failure_webhook_url: must be an http\(s\) URL"),
    ("  crontab: 0 2 * * *\n", r"nightly.crontab: unknown key; did you mean 'cron'\?"),
])
def test_a_bad_nightly_value_fails_at_load_naming_the_key(pipeline_yaml, lines, message):
    pipeline_yaml(lines)
    with pytest.raises(Exception) as raised:  # noqa: PT011 - Dagster wraps it; the cause is asserted below
        defs()
    cause = raised.value
    while not isinstance(cause, ConfigError) and cause.__cause__ is not None:
        cause = cause.__cause__
    assert isinstance(cause, ConfigError)
    assert re.search(message, str(cause)), str(cause)
