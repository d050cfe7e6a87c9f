"""The landing zone: where annotation batches arrive, and when a batch is ready to read.

A batch is either a folder (a local directory or an `s3://` prefix) holding a `batch.json`, or a
`<batch>.zip` archive. The folder's batch.json is written last by whoever uploads it, so a
half-uploaded folder is never read. An archive is one object: S3 makes it visible only once its
upload completes, and a local uploader must write it under another name (`x.zip.part`) and
rename it, which is atomic; anything not ending in `.zip` is ignored. Inside an archive
batch.json is optional: without it the format is detected.

An entry that looks like a batch but can never be read as one (a name that is not a batch id, a
folder and an archive claiming one id, a symbolic link, a special file) is a LandingProblem: it
is reported where people look (the landing sensor, `segpipe batches`, `segpipe build`), never
skipped without a word. Hidden entries (a name starting with '.') and unmarked folders are not
batches yet, so they are neither.
"""

import difflib
import hashlib
import re
import unicodedata
from dataclasses import dataclass

import fsspec

from segpipe.core.ingest.pseudonym import MODEL_PREFIX
from segpipe.core.shared.errors import InputError
from segpipe.core.shared.quarantine_rules import INVALID_BATCH_MANIFEST

BATCH_MANIFEST = "batch.json"
ARCHIVE_SUFFIX = ".zip"
BATCH_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
PROVENANCE_KEYS = ("licence", "origin", "attribution")
MANIFEST_KEYS = {"batch_id", "format", "annotation_file", "images_dir", "metadata_file", "annotator", "source", "gold",
                 *PROVENANCE_KEYS, "comment", "kind", "model"}
TEXT_KEYS = ("format", "annotation_file", "images_dir", "metadata_file", "annotator", "source", "kind",
             *PROVENANCE_KEYS, "comment")
# What a batch holds: people's annotations (the default), a model's predictions, or a reviewer's
# corrections of images of the review queue (`segpipe review export`), which replace the fused masks
# of those images.
BATCH_KINDS = ("annotation", "model", "review")
REVIEW_KIND = "review"
REVIEW_SOURCE = "review"  # the source of every review batch: its labels are the taxonomy's class names
MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
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
    kind: str = "annotation"  # one of BATCH_KINDS
    model: "ModelIdentity | None" = None  # set exactly when kind is "model" (the class is defined below)


@dataclass(frozen=True)
class ModelIdentity:
    """The model whose predictions a `kind: model` batch holds. Its name is not personal data, so it is
    the batch's annotator as it is (`model:<name>`), readable on the leaderboard."""

    name: str
    version: str

    @property
    def annotator(self) -> str:
        return f"{MODEL_PREFIX}{self.name}"


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


@dataclass(frozen=True)
class LandingProblem:
    """An entry of the landing zone that cannot become a batch: where it is (as messages name a
    location), why, and what whoever landed it should do."""

    path: str
    reason: str
    what_to_do: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}. {self.what_to_do}"


@dataclass(frozen=True)
class LandingScan:
    """What the landing root holds: the ready batches by id, and the entries that cannot be batches."""

    ready: dict[str, LandedBatch]
    problems: list[LandingProblem]


def location_uri(fs: fsspec.AbstractFileSystem, path: str) -> str:
    """How messages name a location: a local path as it is, anything else as a URL."""
    return fs.unstrip_protocol(path) if fs.protocol not in ("file", ("file", "local")) else path


def printable_name(name: str) -> str:
    """A name with undecodable bytes (surrogates from os.fsdecode) escaped, safe for Parquet and logs."""
    return name.encode("utf-8", "backslashreplace").decode("utf-8")


def scan_landing(fs: fsspec.AbstractFileSystem, landing_root: str) -> LandingScan:
    """Every ready batch under the landing root, and every entry that looks like a batch but cannot be
    read as one. A folder and an archive that claim the same id are both held back, each reported
    naming the other, until one is removed: neither may silently win."""
    if not fs.exists(landing_root):
        return LandingScan({}, [])
    found: dict[str, list[LandedBatch]] = {}
    problems: list[LandingProblem] = []
    for info in fs.ls(landing_root, detail=True):
        path = info["name"].rstrip("/")
        name = path.rsplit("/", 1)[-1]
        if name.startswith("."):
            continue  # hidden: an uploader's temporary file, a desktop's metadata
        if info.get("islink"):
            problems.append(LandingProblem(_shown(fs, path), "is a symbolic link; links are never followed, so "
                            "a batch cannot read files from outside the landing zone", _LINK_ACTION))
        elif info["type"] == "directory" and _marked(fs, path):
            marker = f"{path}/{BATCH_MANIFEST}"
            batch = LandedBatch(name, path, False, _modified(_info_or(fs, marker, info)))
            _add(found, problems, fs, batch, f"{marker} exists")
        elif info["type"] == "file" and name.endswith(ARCHIVE_SUFFIX):
            _add(found, problems, fs, LandedBatch(name[: -len(ARCHIVE_SUFFIX)], path, True, _modified(info)), "")
        elif info["type"] not in ("file", "directory") and name.endswith(ARCHIVE_SUFFIX):
            problems.append(LandingProblem(_shown(fs, path), "is not a regular file (a device, socket or pipe)",
                                           "Replace it with the .zip archive itself."))
    ready = {}
    for batch_id, batches in sorted(found.items()):
        if len(batches) == 1:
            ready[batch_id] = batches[0]
            continue
        folder, archive = (_shown(fs, b.path) for b in sorted(batches, key=lambda b: b.is_archive))
        problems += [LandingProblem(_shown(fs, b.path), (
            f"a folder and an archive both claim batch id {batch_id!r} ({folder} and {archive}), so neither is read"),
            "Remove the copy that is not the delivery; the other is read at the next look.") for b in batches]
    return LandingScan(ready, sorted(problems, key=lambda p: p.path))


def find_ready_batches(fs: fsspec.AbstractFileSystem, landing_root: str) -> dict[str, LandedBatch]:
    """Every ready batch under the landing root, by batch id (scan_landing says what else is there)."""
    return scan_landing(fs, landing_root).ready


def _shown(fs: fsspec.AbstractFileSystem, path: str) -> str:
    return printable_name(location_uri(fs, path))


_LINK_ACTION = "Put the batch itself there, a copy and not a link, or move it there."


def _marked(fs: fsspec.AbstractFileSystem, folder: str) -> bool:
    """Whether a folder holds a batch.json in any form: a link counts, so ingest can refuse it by name."""
    return fs.lexists(f"{folder}/{BATCH_MANIFEST}")


def _info_or(fs: fsspec.AbstractFileSystem, path: str, fallback: dict) -> dict:
    """The info of `path`, or `fallback` for a link that points nowhere."""
    try:
        return fs.info(path)
    except FileNotFoundError:
        return fallback


def _add(found: dict[str, list[LandedBatch]], problems: list[LandingProblem], fs: fsspec.AbstractFileSystem,
         batch: LandedBatch, marked: str) -> None:
    """A candidate batch, or a problem when its name is not a batch id."""
    if BATCH_ID_PATTERN.match(batch.batch_id):
        found.setdefault(batch.batch_id, []).append(batch)
        return
    what = "folder" if not batch.is_archive else "archive"
    suggested = _batch_id_like(batch.batch_id)
    rename = f" such as {suggested + (ARCHIVE_SUFFIX if batch.is_archive else '')!r}" if suggested else ""
    shown_id = printable_name(batch.batch_id)
    problems.append(LandingProblem(
        _shown(fs, batch.path),
        f"{shown_id!r} is not a batch id{' (' + marked + ')' if marked else ''}, so the {what} is not read",
        f"Rename the {what} to a batch id{rename}: letters, digits, '.', '_' and '-', starting with a letter or "
        "digit, at most 128 characters."))


def _batch_id_like(name: str) -> str | None:
    """A batch id close to `name`, to suggest; None when nothing of it is left."""
    ascii_name = unicodedata.normalize("NFKD", printable_name(name)).encode("ascii", "ignore").decode()
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", ascii_name).strip("._-")[:128]
    return cleaned if BATCH_ID_PATTERN.match(cleaned) else None


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
    kind, model = _kind_and_model(doc, origin)
    if kind == REVIEW_KIND and (doc.get("gold", False) or doc.get("source", REVIEW_SOURCE) != REVIEW_SOURCE):
        raise InputError(INVALID_BATCH_MANIFEST, (
            f"{origin}: a review batch (kind \"review\") is neither gold nor of another source: its labels are the "
            f"taxonomy's class names (source {REVIEW_SOURCE!r}); remove gold and source"))
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
        kind=kind,
        model=model,
    )


def _kind_and_model(doc: dict, origin: str) -> tuple[str, ModelIdentity | None]:
    """The batch's kind, and for a model batch its `model: {name, version}`, which it must give: a
    leaderboard row that cannot say which model and which version it scores is no use."""
    kind = doc.get("kind", "annotation")
    if kind not in BATCH_KINDS:
        raise InputError(INVALID_BATCH_MANIFEST, f"{origin}: kind must be one of {list(BATCH_KINDS)}, got {kind!r}")
    if kind != "model":
        if "model" in doc:
            raise InputError(INVALID_BATCH_MANIFEST, f"{origin}: model is given but kind is {kind!r}; add \"kind\": \"model\"")
        return kind, None
    model = doc.get("model")
    if not isinstance(model, dict) or set(model) != {"name", "version"} or not all(
            isinstance(model[key], str) and model[key].strip() for key in ("name", "version")):
        raise InputError(INVALID_BATCH_MANIFEST, (
            f"{origin}: a model batch needs \"model\": {{\"name\": ..., \"version\": ...}} (two non-empty strings), "
            f"got {model!r}"))
    if not MODEL_NAME.match(model["name"]):
        raise InputError(INVALID_BATCH_MANIFEST, (
            f"{origin}: model name {model['name']!r} must be letters, digits, '.', '_' and '-' (at most 64), "
            "as it names the model on the leaderboard"))
    if doc.get("gold", False) or "annotator" in doc:
        raise InputError(INVALID_BATCH_MANIFEST, (
            f"{origin}: a model batch is neither gold nor an annotator's: remove \"gold\" and \"annotator\""))
    return kind, ModelIdentity(model["name"], model["version"].strip())
