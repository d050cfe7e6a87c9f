"""The executor is deployment config (SEGPIPE_EXECUTOR, SEGPIPE_CELERY_BROKER), checked when the definitions
load: every job gets the chosen one, and a wrong or incomplete choice stops the load naming the variable."""

import sys

import pytest

from segpipe.cli.main import main
from segpipe.core.shared.errors import ConfigError
from segpipe.definitions import defs as load_defs
from segpipe.defs.executor import celery_result_backend

BROKER = "redis://127.0.0.1:6379/0"
JOBS = ("taxonomy_job", "batch_job", "release_job", "taxonomy_backfill_job")


@pytest.fixture
def deployment(monkeypatch):
    """No executor variables set, whatever the shell running the tests has."""
    for name in ("SEGPIPE_EXECUTOR", "SEGPIPE_CELERY_BROKER"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def executors() -> dict[str, str]:
    definitions = load_defs()
    return {job: definitions.resolve_job_def(job).executor_def.name for job in JOBS}


def test_every_job_runs_its_steps_in_processes_of_their_own_unless_told_otherwise(deployment):
    assert set(executors().values()) == {"multiprocess"}
    deployment.setenv("SEGPIPE_EXECUTOR", "in_process")
    assert set(executors().values()) == {"in_process"}


def test_celery_sends_every_job_to_the_broker_the_variable_names(deployment):
    deployment.setenv("SEGPIPE_EXECUTOR", "celery")
    deployment.setenv("SEGPIPE_CELERY_BROKER", BROKER)
    assert set(executors().values()) == {"celery"}
    # the steps' events come back through the same Redis (the workers' deploy/celery.yaml says the same);
    # Celery's RPC backend for an AMQP broker, which keeps no results of its own
    assert celery_result_backend(BROKER) == BROKER
    assert celery_result_backend("amqp://guest@127.0.0.1:5672//") == "rpc://"


@pytest.mark.parametrize("variables, named", [
    ({"SEGPIPE_EXECUTOR": "dask"}, "SEGPIPE_EXECUTOR: 'dask' is not an executor segpipe knows"),
    ({"SEGPIPE_EXECUTOR": "celery"}, "SEGPIPE_CELERY_BROKER: not set; SEGPIPE_EXECUTOR=celery needs the URL"),
])
def test_a_wrong_or_incomplete_choice_stops_the_load_naming_the_variable(deployment, variables, named):
    for name, value in variables.items():
        deployment.setenv(name, value)
    with pytest.raises(ConfigError, match="^" + named.replace("(", r"\(")):
        load_defs()


def test_celery_without_its_package_names_the_package(deployment):
    deployment.setenv("SEGPIPE_EXECUTOR", "celery")
    deployment.setenv("SEGPIPE_CELERY_BROKER", BROKER)
    deployment.setitem(sys.modules, "dagster_celery", None)  # as if it were not installed: import fails
    with pytest.raises(ConfigError, match="^SEGPIPE_EXECUTOR: celery needs the dagster-celery package"):
        load_defs()


def test_segpipe_build_reports_the_variable_as_a_configuration_error(deployment, tmp_path, capsys):
    deployment.setenv("SEGPIPE_HOME", str(tmp_path))
    deployment.setenv("DAGSTER_HOME", str(tmp_path))
    deployment.setenv("SEGPIPE_EXECUTOR", "celery")
    assert main(["build"]) == 2
    assert "SEGPIPE_CELERY_BROKER: not set" in capsys.readouterr().err
