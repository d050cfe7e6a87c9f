"""Keeping secrets out of what segpipe logs: a webhook URL carries its credential in its path, and keys are keys.

A known secret URL (the failure webhook) keeps its scheme and host and loses its path and query
wherever it appears; a known key (the pseudonym key, the AWS secret key and session token) becomes
REDACTED; and in any URL a `user:password@` part and a query string are dropped, since that is where
credentials travel in URLs segpipe does not know of (a presigned link in an error message).
"""

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from segpipe.environment import Environment

REDACTED = "<redacted>"
SECRET_VARIABLES = ("SEGPIPE_PSEUDONYM_KEY", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
MIN_SECRET_CHARS = 8  # a shorter value would blank out ordinary words
URL = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^\s/?#@'\"<>]*@)?(?P<rest>[^\s'\"<>]*)")


def redact_url(url: str) -> str:
    """`https://hooks.example.org/<redacted>` for `https://hooks.example.org/T0/B0/secret?x=1`."""
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    hidden = parts.path not in ("", "/") or parts.query or parts.fragment
    return f"{parts.scheme}://{host}/{REDACTED}" if hidden else f"{parts.scheme}://{host}"


@dataclass(frozen=True)
class Redactor:
    urls: tuple[str, ...]  # secret URLs, shown as scheme and host only
    values: tuple[str, ...]  # secret values, shown as REDACTED

    @classmethod
    def for_environment(cls, env: Environment, urls: Iterable[str | None] = (),
                        variables: Mapping[str, str] = os.environ) -> "Redactor":
        """The given secret URLs and the keys this environment holds: the variables in
        SECRET_VARIABLES and the pseudonym key file's contents."""
        values = [variables.get(name) for name in SECRET_VARIABLES]
        if env.pseudonym_key_path.is_file():
            values.append(env.pseudonym_key_path.read_text().strip())
        kept = {v for v in values if v and len(v) >= MIN_SECRET_CHARS}
        return cls(tuple(sorted({u for u in urls if u}, key=len, reverse=True)),
                   tuple(sorted(kept, key=len, reverse=True)))

    def redact(self, text: str) -> str:
        for url in self.urls:
            text = text.replace(url, redact_url(url))
        for value in self.values:
            text = text.replace(value, REDACTED)
        return URL.sub(_without_credentials, text)


def _without_credentials(match: re.Match) -> str:
    rest = match["rest"]
    if "?" in rest:
        rest = rest.split("?", 1)[0] + f"?{REDACTED}"
    return f"{match['scheme']}{REDACTED + '@' if match['userinfo'] else ''}{rest}"
