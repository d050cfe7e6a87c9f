"""store_gc_job runs `segpipe gc` on the deployment's store and says what it deleted in the run; the
store_gc schedule follows pipeline.yaml's `nightly.gc_cron`."""

import re
import time

import dagster as dg
import fsspec
import pytest

from segpipe.core.shared.errors import ConfigError
from segpipe.definitions import defs
from segpipe_tests.store.superseded_stores import planted_store, stored

GRACE_HOURS = 0.0003  # about a second


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A store planted with masks its tables name and some they do not, and a pipeline.yaml whose grace
    period is a second (plus `nightly` lines); the store's filesystem and root."""
    def configure(nightly: str = "") -> tuple[fsspec.AbstractFileSystem, str]:
        (tmp_path / "pipeline.yaml").write_text(
            f"dataset_name: demo\nrelease:\n  gc_grace_hours: {GRACE_HOURS}\n"
            + (f"nightly:\n{nightly}" if nightly else ""))
        monkeypatch.setenv("SEGPIPE_PIPELINE_CONFIG", str(tmp_path / "pipeline.yaml"))
        monkeypatch.setenv("SEGPIPE_STORAGE_ROOT", str(tmp_path / "store"))
        return fsspec.filesystem("file", auto_mkdir=True), str(tmp_path / "store")
    return configure


def test_the_job_deletes_what_no_table_names_and_reports_it_in_the_run(project):
    fs, root = project()
    kept, stale = planted_store(fs, root)
    time.sleep(GRACE_HOURS * 3600 + 0.5)
    with dg.instance_for_test() as instance:
        result = defs().resolve_job_def("store_gc_job").execute_in_process(instance=instance)
    assert result.success
    # what is left: what the tables name, and the claim gc held and gave up (it holds no release)
    assert {key for key in stored(fs, root) if not key.startswith("releases/demo/_claims/")} == kept
    [output] = [event for event in result.all_events if event.is_successful_output]
    metadata = {key: value.value for key, value in output.step_output_data.metadata.items()}
    assert (metadata["versions_retired"], metadata["parts_deleted"], metadata["masks_and_memos_deleted"]) == (
        0, 0, len(stale))
    assert metadata["report"].splitlines()[-1] == (
        f"  deleted {len(stale)} masks, their memos and QA thumbnails no table names any more (0.0 MiB: a taxonomy "
        "edit's earlier class masks, and what was made of them)")


def test_the_schedule_follows_gc_cron_in_the_nightly_timezone_and_null_means_none(project):
    project('  gc_cron: "15 3 * * 6"\n  timezone: Europe/Berlin\n')
    schedule = defs().resolve_schedule_def("store_gc")
    assert (schedule.cron_schedule, schedule.execution_timezone, schedule.job_name) == (
        "15 3 * * 6", "Europe/Berlin", "store_gc_job")
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    project("  gc_cron: null\n")
    assert "store_gc" not in {s.name for s in defs().schedules}
    assert defs().resolve_job_def("store_gc_job").name == "store_gc_job"  # launched from the UI instead


def test_a_bad_gc_cron_fails_at_load_naming_the_key(project):
    project('  gc_cron: "0 4 * * 8"\n')
    with pytest.raises(Exception) as raised:  # noqa: PT011 - Dagster wraps it; the cause is asserted below
        defs()
    cause = raised.value
    while not isinstance(cause, ConfigError) and cause.__cause__ is not None:
        cause = cause.__cause__
    assert isinstance(cause, ConfigError) and re.search(r"nightly.gc_cron: day of week field '8': '8' is outside 0-7", str(cause)), str(cause)
