"""The failure sensor on a genuinely failed run: release_job over an empty store fails at its
first step, and the team's log and webhook learn the job, the run, the step and the error."""

import errno
import http.server
import json
import os
import socket
import threading

import dagster as dg
import pytest

from segpipe.definitions import defs
from segpipe.defs.alerts.sensors import run_failure_alert_sensor
from segpipe.defs.retries import only_transient_retried
from segpipe.environment import PACKAGE_CONFIG, current_environment
from segpipe_tests.defs.alert_capture import LogLines

MISSING_INPUT_ERROR = 'DagsterTypeCheckDidNotPass: Type check failed for step input "annotation_masks"'


class _Refuser(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(403)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def failed_release(tmp_path, monkeypatch):
    """An instance holding one failed release_job run, and that run's RUN_FAILURE event."""
    monkeypatch.setenv("SEGPIPE_HOME", str(tmp_path / "home"))
    with dg.instance_for_test() as instance:
        result = defs().resolve_job_def("release_job").execute_in_process(instance=instance, raise_on_error=False)
        assert not result.success
        failure = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.RUN_FAILURE)
        yield instance, instance.get_run_by_id(result.run_id), failure


def _evaluate(sensor: dg.SensorDefinition, instance, run, failure) -> list[tuple[str, str]]:
    """The sensor's log lines (level, message), read from the logger the daemon would show for its tick."""
    context = dg.build_run_status_sensor_context(
        sensor_name=sensor.name, dagster_instance=instance, dagster_run=run, dagster_event=failure).for_run_failure()
    lines = LogLines()
    context.log.addHandler(lines)
    sensor(context)
    return lines.lines


def test_a_failed_run_is_logged_and_posted_to_the_webhook_pipeline_yaml_names(failed_release, webhook, tmp_path,
                                                                                monkeypatch):
    instance, run, failure = failed_release
    url, received = webhook
    text = PACKAGE_CONFIG.joinpath("pipeline.yaml").read_text()
    assert "  # failure_webhook_url: https://hooks.example.org/segpipe\n" in text
    (tmp_path / "pipeline.yaml").write_text(text.replace(
        "  # failure_webhook_url: https://hooks.example.org/segpipe", f"  failure_webhook_url: {url}"))
    monkeypatch.setenv("SEGPIPE_PIPELINE_CONFIG", str(tmp_path / "pipeline.yaml"))
    sensor = defs().resolve_sensor_def("run_failure_alert")
    [(level, line)] = _evaluate(sensor, instance, run, failure)
    assert level == "ERROR"
    assert line.startswith(f"Run {run.run_id} of release_job failed in step qa_report: {MISSING_INPUT_ERROR}")
    assert line.endswith(f"(see /runs/{run.run_id})")
    [delivery] = received
    assert delivery["content_type"] == "application/json"
    body = delivery["body"]
    assert set(body) == {"job", "run_id", "step", "error", "run_path"}
    assert (body["job"], body["run_id"], body["step"], body["run_path"]) == (
        "release_job", run.run_id, "qa_report", f"/runs/{run.run_id}")
    assert body["error"].startswith(MISSING_INPUT_ERROR)


def test_an_unreachable_webhook_is_logged_and_the_alert_still_is(failed_release):
    instance, run, failure = failed_release
    with socket.socket() as probe:  # a port nobody listens on once the probe closes
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/hook"
    [(alert_level, alert), (warning_level, warning)] = _evaluate(run_failure_alert_sensor(url), instance, run, failure)
    assert (alert_level, warning_level) == ("ERROR", "WARNING")
    assert alert.startswith(f"Run {run.run_id} of release_job failed in step qa_report: ")
    assert warning.startswith(
        f"failure alert for run {run.run_id} not delivered to http://127.0.0.1:{port}/<redacted>: URLError:")
    assert "Connection refused" in warning


def test_without_a_webhook_the_failure_is_only_logged(failed_release):
    instance, run, failure = failed_release
    [(level, line)] = _evaluate(run_failure_alert_sensor(None), instance, run, failure)
    assert (level, line.split(":")[0]) == ("ERROR", f"Run {run.run_id} of release_job failed in step qa_report")


def test_a_webhook_that_refuses_is_logged_by_scheme_and_host_only(failed_release):
    """The webhook's path and query are its credential (a chat webhook's token): no log line shows them."""
    instance, run, failure = failed_release
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Refuser)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        host = f"127.0.0.1:{server.server_address[1]}"
        url = f"http://{host}/services/T0SECRET/B0SECRET/xoxbSECRETtoken?signature=SECRETsig"
        lines = _evaluate(run_failure_alert_sensor(url), instance, run, failure)
    finally:
        server.shutdown()
        server.server_close()
    [(_, alert), (level, warning)] = lines
    assert (level, warning) == (
        "WARNING",
        f"failure alert for run {run.run_id} not delivered to http://{host}/<redacted>: HTTPError: HTTP Error 403: Forbidden")
    assert not [line for _, line in lines if "SECRET" in line]


@dg.op
def _leaks_secrets() -> None:
    """Fails as segpipe's steps report a decision (defs/retries.py): a Failure whose description is the error."""
    file_key = current_environment().pseudonym_key_path.read_text().strip()
    raise dg.Failure(description=(
        f"RuntimeError: could not reach http://user:hunter2-password@db.example.org/x with key "
        f"{os.environ['SEGPIPE_PSEUDONYM_KEY']} (file: {file_key}) and {os.environ['AWS_SECRET_ACCESS_KEY']}; "
        "see https://bucket.example.org/a.zip?X-Amz-Signature=SECRETsig&X-Amz-Credential=SECRETcred"))


def test_keys_and_credentials_in_a_failed_step_are_redacted_in_the_log_line_and_the_payload(tmp_path, monkeypatch,
                                                                                          webhook):
    url, received = webhook
    monkeypatch.setenv("SEGPIPE_HOME", str(tmp_path / "home"))
    pseudonym_key, aws_secret = "5ecre7" * 8, "wJalrXUtnFEMI/K7MDENG/bPxRfiCYSECRETKEY"
    monkeypatch.setenv("SEGPIPE_PSEUDONYM_KEY", pseudonym_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", aws_secret)
    file_key = "f11e" * 16
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "pseudonym.key").write_text(f"{file_key}\n")
    with dg.instance_for_test() as instance:
        result = dg.GraphDefinition(name="leaky", node_defs=[_leaks_secrets]).to_job().execute_in_process(
            instance=instance, raise_on_error=False)
        failure = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.RUN_FAILURE)
        [(level, line)] = _evaluate(run_failure_alert_sensor(url), instance, instance.get_run_by_id(result.run_id),
                                    failure)
    assert level == "ERROR"
    expected = ("RuntimeError: could not reach http://<redacted>@db.example.org/x with key <redacted> "
                "(file: <redacted>) and <redacted>; "
                "see https://bucket.example.org/a.zip?<redacted>")
    assert expected in line
    [delivery] = received
    assert expected in delivery["body"]["error"]
    for secret in (pseudonym_key, file_key, aws_secret, "hunter2", "SECRETsig", "SECRETcred"):
        assert secret not in line and secret not in json.dumps(delivery["body"])


def _denied() -> None:
    try:
        raise PermissionError(errno.EACCES, "Access Denied reading s3://bucket/masks/b1/e1.png")
    except PermissionError as exc:
        raise RuntimeError("reading the masks of batch b1 failed") from exc


@pytest.mark.parametrize(("error", "root"), [
    (_denied, "PermissionError: [Errno 13] Access Denied reading s3://bucket/masks/b1/e1.png"),
    (lambda: _raise(ConnectionResetError(errno.ECONNRESET, "Connection reset by peer")),
     "ConnectionResetError: [Errno 104] Connection reset by peer"),
])
def test_the_alert_names_the_root_cause_not_dagsters_wrapper(error, root):
    """A decision is raised as a Failure from the error, and a transient error ends in "Exceeded
    max_retries": the alert names the error under both."""
    @dg.asset(retry_policy=dg.RetryPolicy(max_retries=1))
    def store_step() -> None:
        with only_transient_retried():
            error()

    with dg.instance_for_test() as instance:
        result = dg.materialize([store_step], instance=instance, raise_on_error=False)
        failure = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.RUN_FAILURE)
        [(level, line)] = _evaluate(run_failure_alert_sensor(None), instance, instance.get_run_by_id(result.run_id),
                                    failure)
    assert (level, line) == ("ERROR", f"Run {result.run_id} of __ephemeral_asset_job__ failed in step store_step: "
                                      f"{root} (see /runs/{result.run_id})")


def _raise(error: Exception) -> None:
    raise error
