"""Names of derived artefacts, taken from what they are made of.

An artefact named after its inputs (or its bytes) never changes under its name: a rerun that
finds the name in the store has nothing to do, and a result cached under it stays valid for as
long as the inputs are the same. This is what lets a taxonomy backfill skip every mask, fusion
and encoding the edit did not touch. What the store holds under a name is still checked before
it is trusted: a partly written object (a full disk, a killed writer) is rewritten by the next
run, and a read that finds one fails naming the key.
"""

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from segpipe.core.shared.png import png_damage

DIGEST_CHARS = 16  # 64 bits of sha256: collisions among one dataset's artefacts are out of reach


class DamagedArtefact(ValueError):
    """A stored artefact whose bytes are not what its name promises: partly written or overwritten."""


def content_digest(*parts: bytes) -> str:
    """A digest of the parts, length-prefixed so that ("ab", "c") and ("a", "bc") differ."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(len(part).to_bytes(8, "big") + part)
    return digest.hexdigest()[:DIGEST_CHARS]


def sealed(form: bytes, body: bytes) -> bytes:
    """`body` after a line naming its format and its SHA-256, for an artefact read back whole (unsealed)."""
    return form + b" " + hashlib.sha256(body).hexdigest().encode() + b"\n" + bytes(body)


def unsealed(form: bytes, stored: bytes) -> bytes | None:
    """The body of a whole sealed artefact of this format; None for another format, or one partly
    written or overwritten (its hash does not match), to be made again."""
    header, _, body = stored.partition(b"\n")
    return body if header == form + b" " + hashlib.sha256(body).hexdigest().encode() else None


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
        """Write an artefact named after its content unless the store already holds exactly these
        bytes under its name; any other bytes there (a truncated write) are replaced."""
        if not self.exists(key) or self.read(key) != data:
            self.write(key, data)

    def holds_png(self, key: str) -> bool:
        """Whether the store holds a whole PNG under `key`: a damaged one counts as missing, to be redrawn."""
        return self.exists(key) and png_damage(self.read(key)) is None

    def read_png(self, key: str) -> bytes:
        """A stored PNG, checked whole before anything decodes it, so a damaged one is named by its key."""
        data = self.read(key)
        problem = png_damage(data)
        if problem is not None:
            raise DamagedArtefact(
                f"{key}: {problem}; the stored artefact is damaged (partly written?). Rerun the step that "
                f"writes it, which rewrites it: for a batch's masks, `segpipe batch retry {_batch_of(key)}`")
        return data

    def stored(self, key: str) -> bytes | None:
        """A memo's bytes; None when there is none, or it went between the lookup and the read (pruned
        by a build beside this one, store/memo_prune.py), so the caller makes it again."""
        try:
            return self.read(key) if self.exists(key) else None
        except (FileNotFoundError, KeyError):  # an ObjectStore's, a dict's
            return None

    def recall(self, key: str) -> Any | None:
        """A JSON result remembered under a content-derived key, or None."""
        data = self.stored(key)
        if data is None:
            return None
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:  # partly written: computed again and rewritten
            return None

    def recording(self) -> tuple["ArtefactStore", set[str]]:
        """This store, and the keys read, looked up or written through it as they are: what a step
        used, so that the memos it did not use can be pruned (store/memo_prune.py)."""
        used: set[str] = set()

        def noted(operation: Callable[..., Any]) -> Callable[..., Any]:
            def on(key: str, *args: Any) -> Any:
                used.add(key)
                return operation(key, *args)
            return on

        return ArtefactStore(noted(self.read), noted(self.write), noted(self.exists)), used

    def remember(self, key: str, result: Any) -> None:
        self.write(key, orjson.dumps(result))


def _batch_of(key: str) -> str:
    """The batch of a per-batch mask key (`masks/<batch>/<entry>-<digest>.png`), else a placeholder."""
    parts = key.split("/")
    return parts[1] if len(parts) == 3 and parts[1] != "fused" else "BATCH"
