"""The landing zone: where annotation batches arrive, and when a batch is ready to read.

A batch is either a folder (a local directory or an `s3://` prefix) holding a `batch.json`, or a
`<batch>.zip` archive. The folder's batch.json is written last by whoever uploads it, so a
half-uploaded folder is never read. An archive is one object: S3 makes it visible only once its
upload completes, and a local uploader must write it under another name (`x.zip.part`) and
rename it, which is atomic; anything not ending in `.zip` is ignored. Inside an archive
batch.json is optional: without it the format is detected.
"""

import difflib
import hashlib
import re
from dataclasses import dataclass

import fsspec

from segpipe.core.shared.errors import InputError
from segpipe.core.shared.quarantine_rules import INVALID_BATCH_MANIFEST

BATCH_MANIFEST = "batch.json"
ARCHIVE_SUFFIX = ".zip"
BATCH_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
PROVENANCE_KEYS = ("licence", "origin", "attribution")
MANIFEST_KEYS = {"batch_id", "format", "annotation_file", "images_dir", "metadata_file", "annotator", "source", "gold",
                 *PROVENANCE_KEYS, "comment"}
TEXT_KEYS = ("format", "annotation_file", "images_dir", "metadata_file", "annotator", "source", *PROVENANCE_KEYS, "comment")
URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://\S+$")


@dataclass(frozen=True)
class BatchManifest:
    """What batch.json declares; every key is optional, and a missing format is detected."""

    batch_id: str
    format: str | None = None
    annotation_file: str | None = None
    images_dir: str = "images"
    metadata_file: str | None = None
    annotator: str | None = None
    source: str | None = None
    gold: bool = False
    # Under which terms the batch may be used, where it came from, whom to credit: reach the release's
    # meta.json and datasheet. Blank (empty) is the same as not stated.
    licence: str | None = None  # an SPDX id (CC-BY-4.0) or free text
    origin: str | None = None  # a URL
    attribution: str | None = None


@dataclass(frozen=True)
class LandedBatch:
    batch_id: str
    path: str
    is_archive: bool
    ready_at: float  # when the marker or archive was last modified, seconds since the epoch


def _modified(info: dict) -> float:
    """Modification time from an fsspec info dict: local files have mtime, S3 objects LastModified."""
    if "mtime" in info:
        return float(info["mtime"])
    stamp = info.get("LastModified")
    return stamp.timestamp() if stamp is not None else 0.0


def entry_id(batch_id: str, file_name: str) -> str:
    """Stable key of one input entry (an image file of a batch), safe to use in object keys."""
    return hashlib.sha256(f"{batch_id}\0{file_name}".encode()).hexdigest()[:20]


def find_ready_batches(fs: fsspec.AbstractFileSystem, landing_root: str) -> dict[str, LandedBatch]:
    """Every ready batch under the landing root, by batch id. A folder and an archive that claim
    the same id are both left out until one is removed: neither may silently win."""
    if not fs.exists(landing_root):
        return {}
    found: dict[str, list[LandedBatch]] = {}
    for info in fs.ls(landing_root, detail=True):
        path = info["name"]
        name = path.rstrip("/").rsplit("/", 1)[-1]
        if info["type"] == "directory" and BATCH_ID_PATTERN.match(name):
            marker = f"{path.rstrip('/')}/{BATCH_MANIFEST}"
            if fs.exists(marker):
                found.setdefault(name, []).append(LandedBatch(name, path.rstrip("/"), False, _modified(fs.info(marker))))
        elif info["type"] == "file" and name.endswith(ARCHIVE_SUFFIX):
            batch_id = name[: -len(ARCHIVE_SUFFIX)]
            if BATCH_ID_PATTERN.match(batch_id) and not info.get("islink"):
                found.setdefault(batch_id, []).append(LandedBatch(batch_id, path, True, _modified(info)))
    return {batch_id: batches[0] for batch_id, batches in sorted(found.items()) if len(batches) == 1}


def list_ready_batches(fs: fsspec.AbstractFileSystem, landing_root: str) -> list[str]:
    """Ids of the ready batches, sorted."""
    return list(find_ready_batches(fs, landing_root))


def parse_batch_manifest(data: bytes, batch_id: str, origin: str) -> BatchManifest:
    """The manifest, read as strictly as annotation files: a key given twice (`"gold": false, "gold":
    true`) is refused rather than the last value silently taken."""
    from segpipe.core.ingest.formats.strict_json import load_json  # formats import sources, which import this module

    try:
        doc = load_json(data, origin)
    except InputError as exc:  # not JSON, a duplicate key, nesting: the manifest is invalid
        raise InputError(INVALID_BATCH_MANIFEST, str(exc)) from exc
    if not isinstance(doc, dict):
        raise InputError(INVALID_BATCH_MANIFEST, f"{origin}: expected a JSON object")
    unknown = sorted(set(doc) - MANIFEST_KEYS)
    if unknown:
        close = {key: difflib.get_close_matches(key, sorted(MANIFEST_KEYS), n=1) for key in unknown}
        hints = "".join(f" ({key!r}: did you mean {match[0]!r}?)" for key, match in close.items() if match)
        raise InputError(INVALID_BATCH_MANIFEST, f"{origin}: unknown keys {unknown}{hints}; allowed: {sorted(MANIFEST_KEYS)}")
    if doc.get("batch_id", batch_id) != batch_id:
        raise InputError(INVALID_BATCH_MANIFEST, f"{origin}: batch_id {doc['batch_id']!r} differs from its folder {batch_id!r}")
    for key in TEXT_KEYS:
        if key in doc and not isinstance(doc[key], str):
            raise InputError(INVALID_BATCH_MANIFEST, f"{origin}: {key} must be a string, got {doc[key]!r}")
    for key in ("annotation_file", "images_dir", "metadata_file"):
        value = doc.get(key)
        if value is not None and (value.startswith("/") or ".." in value.split("/") or "\\" in value):
            raise InputError(INVALID_BATCH_MANIFEST, f"{origin}: {key} must be a relative path inside the batch, got {value!r}")
    if not isinstance(doc.get("gold", False), bool):
        raise InputError(INVALID_BATCH_MANIFEST, f"{origin}: gold must be true or false, got {doc['gold']!r}")
    provenance = {key: doc.get(key, "").strip() or None for key in PROVENANCE_KEYS}
    if provenance["origin"] is not None and not URL.match(provenance["origin"]):
        raise InputError(INVALID_BATCH_MANIFEST, (
            f"{origin}: origin must be a URL such as https://example.org/dataset, got {provenance['origin']!r}"))
    return BatchManifest(
        batch_id=batch_id,
        format=doc.get("format"),
        annotation_file=doc.get("annotation_file"),
        images_dir=doc.get("images_dir", "images").strip("/"),
        metadata_file=doc.get("metadata_file"),
        annotator=doc.get("annotator"),
        source=doc.get("source"),
        gold=doc.get("gold", False),
        **provenance,
    )
