import dagster as dg

from segpipe.defs.alerts.bad_input_message import bad_input_alert
from segpipe.defs.alerts.failure_message import FailureAlert
from segpipe.defs.root_cause import root_cause
from segpipe.core.config.pipeline import load_pipeline_settings
from segpipe.environment import current_environment
from segpipe.io.redaction import Redactor
from segpipe.io.webhook import post_json


def failure_alert(context: dg.RunFailureSensorContext, redactor: Redactor) -> FailureAlert:
    """The first failed step and the root cause of its error, not Dagster's wrapper of it (secrets
    redacted: it is logged and posted); a run that failed outside any step gets the run's own message."""
    step_failures = context.get_step_failure_events()
    if step_failures:
        first = step_failures[0]
        error_type, message = root_cause(first.step_failure_data.error, first.message)
        return FailureAlert(context.dagster_run.job_name, context.dagster_run.run_id, first.step_key,
                            redactor.redact(f"{error_type}: {message}"))
    return FailureAlert(context.dagster_run.job_name, context.dagster_run.run_id, None,
                        redactor.redact(context.failure_event.message or "no error recorded"))


def run_failure_alert_sensor(webhook_url: str | None) -> dg.SensorDefinition:
    @dg.run_failure_sensor(name="run_failure_alert", default_status=dg.DefaultSensorStatus.RUNNING,
                           description="Logs every failed segpipe run (job, run, step, error) and POSTs it to "
                                       "nightly.failure_webhook_url when that is set; a batch of which nothing "
                                       "can be released is reported too, as bad_input_alert does.")
    def run_failure_alert(context: dg.RunFailureSensorContext) -> None:
        redactor = Redactor.for_environment(current_environment(), [webhook_url])
        alert = failure_alert(context, redactor)
        context.log.error(redactor.redact(alert.message()))
        _post(context, webhook_url, alert.payload(), f"failure alert for run {alert.run_id}", redactor)
        report_bad_input(context, webhook_url, redactor)

    return run_failure_alert


def bad_input_alert_sensor(webhook_url: str | None) -> dg.SensorDefinition:
    @dg.run_status_sensor(run_status=dg.DagsterRunStatus.SUCCESS, name="bad_input_alert",
                          default_status=dg.DefaultSensorStatus.RUNNING,
                          description="Reports each batch of which nothing can be released (format unreadable, "
                                      "every item quarantined), though its run succeeded: a warning line per "
                                      "batch with the file, the reason and what to do, also POSTed to "
                                      "nightly.failure_webhook_url when that is set.")
    def bad_input_alert(context: dg.RunStatusSensorContext) -> None:
        report_bad_input(context, webhook_url, Redactor.for_environment(current_environment(), [webhook_url]))

    return bad_input_alert


def report_bad_input(context: dg.RunStatusSensorContext, webhook_url: str | None, redactor: Redactor) -> None:
    """A warning line per unusable batch of the run, and one POST for them all."""
    alert = bad_input_alert(context.instance, context.dagster_run, redactor.redact)
    if alert is None:
        return
    for line in alert.messages():
        context.log.warning(line)
    _post(context, webhook_url, alert.payload(), f"bad-input alert for run {alert.run_id}", redactor)


def _post(context: dg.RunStatusSensorContext, webhook_url: str | None, payload: dict, what: str,
          redactor: Redactor) -> None:
    if webhook_url:
        problem = post_json(webhook_url, payload)
        if problem:
            context.log.warning(redactor.redact(f"{what} not delivered to {webhook_url}: {problem}"))


@dg.definitions
def alerts() -> dg.Definitions:
    nightly = load_pipeline_settings(current_environment().pipeline_path).nightly
    return dg.Definitions(sensors=[run_failure_alert_sensor(nightly.failure_webhook_url),
                                   bad_input_alert_sensor(nightly.failure_webhook_url)])
