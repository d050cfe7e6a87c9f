"""POSTing JSON to a team's webhook; an unreachable or refusing endpoint is a reported value, so the
alert that was to be sent is still logged and the sensor keeps running."""

import http.client
import urllib.request

import orjson

WEBHOOK_TIMEOUT_SECONDS = 10.0


def post_json(url: str, payload: dict, timeout: float = WEBHOOK_TIMEOUT_SECONDS) -> str | None:
    """None once the endpoint accepted the payload, otherwise why the delivery failed (an HTTP error
    status raises HTTPError, so it lands here too)."""
    request = urllib.request.Request(url, data=orjson.dumps(payload), method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout):
            pass
    except (OSError, http.client.HTTPException, ValueError) as exc:  # URLError and HTTPError are OSErrors
        return f"{type(exc).__name__}: {exc}"
    return None
