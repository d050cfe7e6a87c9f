"""Keyed pseudonyms for annotator identities, so nothing personal leaves ingestion, and for batch
ids, which releases carry instead of ids that may name an annotator.

An HMAC rather than a plain hash: user names and emails are guessable, and an unkeyed hash of
a guessable value is reversible by trying candidates. Whoever holds the key can still compute
a known person's pseudonym, to read the leaderboard.
"""

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from segpipe.core.shared.errors import ConfigError

PSEUDONYM_PREFIX = "annotator-"
# Every review batch's entries are the review's, whoever reviewed: one annotator, so of two reviews of an
# image the later replaces the earlier as any re-delivery does (core/qa/deliveries.py). No digest is "review".
REVIEW_ANNOTATOR = f"{PSEUDONYM_PREFIX}review"
BATCH_PREFIX = "batch-"
MODEL_PREFIX = "model:"  # a model batch's annotator, model:<name>: a model's name is not personal data


def is_model(annotator: str) -> bool:
    """Whether an annotator is a model (a model batch's), not a person."""
    return annotator.startswith(MODEL_PREFIX)


def pseudonymize(identity: str, key: bytes) -> str:
    """The stable pseudonym of an identity; case and surrounding spaces do not matter."""
    digest = hmac.new(key, identity.strip().casefold().encode("utf-8"), hashlib.sha256).hexdigest()
    return f"{PSEUDONYM_PREFIX}{digest[:16]}"


def batch_pseudonym(batch_id: str, key: bytes) -> str:
    """The stable pseudonym of a batch id, exactly as written (ids are case-sensitive folder names);
    keyed apart from annotator identities, so a batch never shares a digest with a person."""
    digest = hmac.new(key, f"batch\0{batch_id}".encode(), hashlib.sha256).hexdigest()
    return f"{BATCH_PREFIX}{digest[:16]}"


def load_or_create_key(path: Path) -> bytes:
    """The key stored at path, created (random, readable by the owner only) on first use.

    Written to a temporary file and hard-linked into place, so two processes starting at once
    agree on one complete key."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32))
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass
        finally:
            temporary.unlink()
    return bytes.fromhex(path.read_text().strip())


def annotator_key(key_hex: str | None, key_file: Path) -> bytes:
    """The configured key: an explicit hex key (from a deployment's secret store) or the key file."""
    if key_hex is None:
        return load_or_create_key(key_file)
    try:
        key = bytes.fromhex(key_hex)
    except ValueError as exc:
        raise ConfigError("SEGPIPE_PSEUDONYM_KEY must be a hex string (e.g. from `openssl rand -hex 32`)") from exc
    if len(key) < 16:
        raise ConfigError("SEGPIPE_PSEUDONYM_KEY must hold at least 16 bytes (32 hex digits)")
    return key
