"""The error a failed step's code raised, under Dagster's wrappers ("Error occurred while executing
op", "Exceeded max_retries of 3", a Failure raised from it): the innermost link of the error's
cause chain, which is what a reader of an alert or a build summary can act on."""

from dagster._utils.error import SerializableErrorInfo


def root_cause(error: SerializableErrorInfo | None, fallback: str | None) -> tuple[str, str]:
    """(error class, message) of the innermost cause, following `cause`, else `context` (an error
    raised while handling another)."""
    if error is None:
        return "error", fallback or "no error recorded"
    while (inner := error.cause or error.context) is not None:
        error = inner
    qualified, _, rest = error.message.partition(": ")  # the message starts with the error's qualified class name
    message = rest if qualified.rsplit(".", 1)[-1] == error.cls_name else error.message
    return error.cls_name or "error", message.strip()
