"""Names of derived artefacts, taken from what they are made of.

An artefact named after its inputs (or its bytes) never changes under its name: a rerun that
finds the name in the store has nothing to do, and a result cached under it stays valid for as
long as the inputs are the same. This is what lets a taxonomy backfill skip every mask, fusion
and encoding the edit did not touch.
"""

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

DIGEST_CHARS = 16  # 64 bits of sha256: collisions among one dataset's artefacts are out of reach


def content_digest(*parts: bytes) -> str:
    """A digest of the parts, length-prefixed so that ("ab", "c") and ("a", "bc") differ."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(len(part).to_bytes(8, "big") + part)
    return digest.hexdigest()[:DIGEST_CHARS]


@dataclass(frozen=True)
class ArtefactStore:
    """The operations derived artefacts need, as plain callables: an ObjectStore's methods in the
    pipeline, a dict's in tests (`ArtefactStore.in_memory`)."""

    read: Callable[[str], bytes]
    write: Callable[[str, bytes], object]
    exists: Callable[[str], bool]

    @classmethod
    def in_memory(cls, objects: dict[str, bytes]) -> "ArtefactStore":
        return cls(objects.__getitem__, objects.__setitem__, objects.__contains__)

    def write_once(self, key: str, data: bytes) -> None:
        """Write an artefact named after its content unless the store already holds it."""
        if not self.exists(key):
            self.write(key, data)

    def recall(self, key: str) -> Any | None:
        """A JSON result remembered under a content-derived key, or None."""
        return orjson.loads(self.read(key)) if self.exists(key) else None

    def remember(self, key: str, result: Any) -> None:
        self.write(key, orjson.dumps(result))
