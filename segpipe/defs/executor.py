"""Where a run's steps execute, chosen by deployment settings (SEGPIPE_EXECUTOR), not by editing code.

`multiprocess` (the default) runs each step in a process of its own on the run's host; `in_process`
runs them one after another in the run's process (least memory and start-up, for a small host). `celery`
sends each step to Celery workers through a broker (SEGPIPE_CELERY_BROKER, e.g. Redis), so a run's
steps spread over every machine that runs `dagster-celery worker start` (docs/deployment.md)."""

import dagster as dg

from segpipe.core.shared.errors import ConfigError
from segpipe.environment import Environment

MULTIPROCESS = "multiprocess"
IN_PROCESS = "in_process"
CELERY = "celery"
EXECUTORS = (MULTIPROCESS, IN_PROCESS, CELERY)
STEPS_PER_HOST = 2  # multiprocess: steps at once on the run's host (the pools limit them across runs too)


def run_executor(env: Environment) -> dg.ExecutorDefinition:
    """The executor `env` names, configured; a ConfigError naming the variable when it cannot be used."""
    if env.executor == MULTIPROCESS:
        return dg.multiprocess_executor.configured({"max_concurrent": STEPS_PER_HOST})
    if env.executor == IN_PROCESS:
        return dg.in_process_executor
    if env.executor != CELERY:
        raise ConfigError(f"SEGPIPE_EXECUTOR: {env.executor!r} is not an executor segpipe knows; "
                          f"use one of: {', '.join(EXECUTORS)}")
    if not env.celery_broker_url:
        raise ConfigError("SEGPIPE_CELERY_BROKER: not set; SEGPIPE_EXECUTOR=celery needs the URL of the broker the "
                          "workers listen on, e.g. redis://127.0.0.1:6379/0 (see docs/deployment.md)")
    try:
        from dagster_celery import celery_executor
    except ImportError as exc:
        raise ConfigError(f"SEGPIPE_EXECUTOR: celery needs the dagster-celery package, which cannot be imported "
                          f"({exc}); install segpipe with its dependencies (pip install -e .)") from exc

    return celery_executor.configured({"broker": env.celery_broker_url,
                                       "backend": celery_result_backend(env.celery_broker_url)})


def celery_result_backend(broker_url: str) -> str:
    """Where workers send each step's events back: Redis holds them too; with an AMQP broker, Celery's RPC backend."""
    return broker_url if broker_url.startswith(("redis://", "rediss://")) else "rpc://"
