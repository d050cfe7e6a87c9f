"""The landing zone: one folder per annotation batch, readable once its batch.json exists.

batch.json is written last by whoever uploads a batch, so a half-uploaded batch is never read.
"""

import hashlib
import re
from dataclasses import dataclass

import fsspec
import orjson

from segpipe.core.errors import InputError
from segpipe.core.formats import READERS

BATCH_MANIFEST = "batch.json"
BATCH_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
MANIFEST_KEYS = {"batch_id", "format", "annotation_file", "images_dir", "metadata_file", "annotator", "source", "gold"}


@dataclass(frozen=True)
class BatchManifest:
    batch_id: str
    format: str
    annotation_file: str
    images_dir: str
    metadata_file: str | None
    annotator: str
    source: str
    gold: bool


def entry_id(batch_id: str, file_name: str) -> str:
    """Stable key of one input entry (an image file of a batch), safe to use in object keys."""
    return hashlib.sha256(f"{batch_id}\0{file_name}".encode()).hexdigest()[:20]


def list_ready_batches(fs: fsspec.AbstractFileSystem, landing_root: str) -> list[str]:
    """Batch ids under the landing root that have their ready marker, sorted."""
    if not fs.exists(landing_root):
        return []
    ready = []
    for path in fs.ls(landing_root, detail=False):
        name = path.rstrip("/").rsplit("/", 1)[-1]
        if BATCH_ID_PATTERN.match(name) and fs.exists(f"{path.rstrip('/')}/{BATCH_MANIFEST}"):
            ready.append(name)
    return sorted(ready)


def parse_batch_manifest(data: bytes, batch_id: str, origin: str) -> BatchManifest:
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise InputError("invalid_batch_manifest", f"{origin}: not valid JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise InputError("invalid_batch_manifest", f"{origin}: expected a JSON object")
    missing = {"format", "annotation_file", "annotator", "source"} - set(doc)
    unknown = set(doc) - MANIFEST_KEYS
    if missing or unknown:
        raise InputError("invalid_batch_manifest", f"{origin}: missing keys {sorted(missing)}, unknown keys {sorted(unknown)}")
    if doc.get("batch_id", batch_id) != batch_id:
        raise InputError("invalid_batch_manifest", f"{origin}: batch_id {doc['batch_id']!r} differs from its folder {batch_id!r}")
    if doc["format"] not in READERS:
        raise InputError("unknown_format", f"{origin}: format {doc['format']!r} is not one of {sorted(READERS)}")
    for key in ("annotation_file", "images_dir", "metadata_file"):
        value = doc.get(key)
        if value is not None and (not isinstance(value, str) or value.startswith("/") or ".." in value.split("/")):
            raise InputError("invalid_batch_manifest", f"{origin}: {key} must be a relative path inside the batch, got {value!r}")
    return BatchManifest(
        batch_id=batch_id,
        format=doc["format"],
        annotation_file=doc["annotation_file"],
        images_dir=doc.get("images_dir", "images"),
        metadata_file=doc.get("metadata_file"),
        annotator=str(doc["annotator"]),
        source=str(doc["source"]),
        gold=bool(doc.get("gold", False)),
    )
