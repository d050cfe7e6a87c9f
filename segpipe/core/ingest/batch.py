"""Turn one landing batch into canonical tables: accepted images, their shapes, quarantine, and files.

Every image of the batch, annotated or found on disk, ends up in exactly one of `images` or
`quarantine`, one row each; a quarantined image's message names each of its problems (every bad
shape, and its image file's own problem), its rule is the first's. Every file of the batch
appears in `files` with what it was used as: read, unused (with why: no format reads it, the
format that would was passed over, or it is a companion the export's tool wrote beside the
annotations, such as VOC's instance masks) or rejected (with the error, for a file refused by
the source or an annotation file that could not be read). Nothing is dropped silently and no
malformed file raises out of here.
"""

import csv
import dataclasses
import hashlib
import io
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson
import polars as pl

from segpipe.core.shared.errors import InputError, ItemProblems, each_problem
from segpipe.core.shared.quarantine_rules import (
    ANNOTATIONS_MISSING,
    ANNOTATION_MISSING,
    DUPLICATE_ANNOTATION,
    FILE_TOO_LARGE,
    IMAGE_AMBIGUOUS,
    IMAGE_MISSING,
    INVALID_BATCH_MANIFEST,
    MASK_UNDECODABLE,
    UNPARSEABLE_ANNOTATIONS,
    UNREADABLE_METADATA,
    UNSAFE_PATH,
    quarantine_rule,
)
from segpipe.core.ingest.formats import AnnotatedImage, FormatChoice, ReaderOptions, select_reader
from segpipe.core.ingest.image_lookup import IMAGE_SUFFIXES, ImageIndex
from segpipe.core.ingest.images import annotation_frame, inspect_image, stored_image
from segpipe.core.ingest.model_settings import ModelSettings
from segpipe.core.ingest.landing import (
    BATCH_MANIFEST, REVIEW_KIND, REVIEW_SOURCE, BatchManifest, entry_id, parse_batch_manifest,
)
from segpipe.core.ingest.pseudonym import REVIEW_ANNOTATOR, pseudonymize
from segpipe.core.shared.schemas import BatchFileRecord, ImageRecord, QuarantineRecord, polars_schema
from segpipe.core.ingest.shape_table import ShapeTableBuilder
from segpipe.core.ingest.sources.source import BatchSource
from segpipe.core.ingest.sources.zip_archive import ArchiveRefused
from segpipe.store import keys as store_keys

METADATA_COLUMNS = ("camera", "city", "time_of_day", "weather", "sequence_id")
HEAD_BYTES = 64 * 1024
# The rules of an image that is not there to read, as opposed to one that is there but wrong.
IMAGE_ABSENT_RULES = frozenset({IMAGE_MISSING, IMAGE_AMBIGUOUS, UNSAFE_PATH})
# The rules of an annotation file that could not be read at all; files lists it as rejected.
UNREADABLE_FILE_RULES = frozenset({UNPARSEABLE_ANNOTATIONS, FILE_TOO_LARGE, MASK_UNDECODABLE})

ImageWriter = Callable[[str, bytes], None]


@dataclass(frozen=True)
class IngestedBatch:
    """The four tables of a batch. `images_missing` is filled only when ingest ran with
    `lint_without_images` (check-source): the quarantined entries whose image is absent but whose
    shapes are in `shapes` anyway, with the size their annotation declares."""

    images: pl.DataFrame
    shapes: pl.DataFrame
    quarantine: pl.DataFrame
    files: pl.DataFrame
    source_format: str | None
    images_missing: pl.DataFrame = dataclasses.field(default_factory=lambda: pl.DataFrame(schema=MISSING_SCHEMA))


def ingest_batch(
    source: BatchSource, batch_id: str, annotator_key: bytes, store_image: ImageWriter | None = None,
    declared_format: str | None = None, lint_without_images: bool = False, landed_at: float | None = None,
    models: ModelSettings | None = None,
) -> IngestedBatch:
    """Read a batch with the format given, else the one its manifest declares, else the one detected.

    Accepted images are handed to `store_image(key, bytes)` under a content-addressed key, so
    later stages and releases never read the landing zone again. With `lint_without_images`
    (check-source, never a build), an entry whose image is absent is quarantined all the same,
    but its shapes go into the shapes table and it is listed in `images_missing`, so an export's
    labels can be checked before its images are uploaded. `landed_at` is when the batch landed
    (LandedBatch.ready_at, seconds since the epoch), recorded on every entry so that a later delivery
    of an image replaces an earlier one; an export read outside the landing zone (check-source,
    init) has none. `models` decides which predictions of a model batch count (pipeline.yaml `models`).
    """
    names = source.names()
    index = ImageIndex([*names, *(rejected.name for rejected in source.rejected())])
    try:
        manifest = _read_manifest(source, batch_id, names)
        if declared_format is not None:
            manifest = dataclasses.replace(manifest, format=declared_format)
        choice = _choose_reader(source, names, manifest, index)
        _predictions_are_a_models(manifest, choice, source)
    except InputError as exc:  # the manifest is unusable, or no one format reads the batch
        return _quarantine_batch(source, batch_id, exc)
    try:
        metadata = _read_metadata(source, manifest)
    except InputError as exc:  # the metadata CSV it names is unusable
        return _quarantine_batch(source, batch_id, exc, manifest, choice)
    landed = None if landed_at is None else datetime.fromtimestamp(landed_at, tz=UTC)
    batch = _BatchIngest(source, manifest, choice, metadata, annotator_key, store_image, lint_without_images, landed)
    options = ReaderOptions(images_dir=manifest.images_dir, images=index, models=models or ModelSettings())
    try:
        # Streamed: an image's annotation is checked and turned into table rows as it is read, so
        # memory holds the tables, not every parsed file as well.
        return batch.run(choice.reader.read(source, choice.files, options))
    except InputError as exc:  # a file that annotates many images is unusable
        return _quarantine_batch(source, batch_id, exc, manifest, choice)


def _head(source: BatchSource) -> Callable[[str], bytes]:
    def head(name: str) -> bytes:
        with source.open(name) as stream:
            return stream.read(HEAD_BYTES)
    return head


def _read_manifest(source: BatchSource, batch_id: str, names: list[str]) -> BatchManifest:
    """The batch's manifest, or defaults when it has none. A batch.json that is there but cannot be
    read (a link, a special file, a folder, too large) makes the manifest invalid: reading the batch
    with defaults would silently drop its format, annotator, gold flag and licence."""
    if BATCH_MANIFEST in names:
        return parse_batch_manifest(source.read(BATCH_MANIFEST), batch_id, source.origin(BATCH_MANIFEST))
    refused = next((r.error for r in source.rejected() if r.name == BATCH_MANIFEST), None)
    if refused is None and any(name.startswith(f"{BATCH_MANIFEST}/") for name in names):
        refused = f"{source.origin(BATCH_MANIFEST)}: is a folder"
    if refused is not None:
        raise InputError(INVALID_BATCH_MANIFEST, (
            f"{refused}; batch.json must be a regular file, so the batch is quarantined rather than read "
            "without its settings"))
    return BatchManifest(batch_id)


def _predictions_are_a_models(manifest: BatchManifest, choice: FormatChoice, source: BatchSource) -> None:
    """A results file holds a model's predictions: read as a person's batch, they would be scored and fused
    as a person under a pseudonym, with no model named."""
    if choice.reader.name == "coco_results" and manifest.kind != "model":
        raise InputError(INVALID_BATCH_MANIFEST, (
            f"{source.origin(BATCH_MANIFEST)}: the batch holds COCO results, a model's predictions: declare "
            "\"kind\": \"model\" and \"model\": {\"name\": ..., \"version\": ...} in batch.json"))


def _choose_reader(source: BatchSource, names: list[str], manifest: BatchManifest, index: ImageIndex) -> FormatChoice:
    if manifest.annotation_file is None:
        candidates = [n for n in names if n != BATCH_MANIFEST]
        return select_reader(candidates, _head(source), manifest.format, source.uri, index, manifest.images_dir)
    if manifest.annotation_file not in names:
        raise InputError(ANNOTATIONS_MISSING, (
            f"{source.origin(manifest.annotation_file)}: the annotation file named in {BATCH_MANIFEST} does not exist"))
    choice = select_reader([manifest.annotation_file], _head(source), manifest.format, source.uri, index,
                           manifest.images_dir)
    return dataclasses.replace(choice, files=[manifest.annotation_file])


class _BatchIngest:
    """One batch's entries, checked one by one against the files the batch actually holds."""

    def __init__(self, source: BatchSource, manifest: BatchManifest, choice: FormatChoice,
                 metadata: dict[str, dict[str, str]], annotator_key: bytes, store_image: ImageWriter | None,
                 lint_without_images: bool, landed_at: datetime | None) -> None:
        self.source, self.manifest, self.choice, self.reader = source, manifest, choice, choice.reader
        self.landed_at = landed_at
        self.annotation_files = set(choice.files)
        self.passed_over = {file for files in choice.passed_over.values() for file in files}
        self.companions = set(choice.companions)
        self.annotator_key, self.store_image = annotator_key, store_image
        self.lint_without_images = lint_without_images
        self.names = set(source.names())
        self.rejected = {r.name: r.error for r in source.rejected()}
        self.metadata = metadata
        self.images: list[dict] = []
        self.shapes = ShapeTableBuilder()
        self.quarantine: list[dict] = []
        self.missing: list[dict] = []
        self.unreadable: dict[str, InputError] = {}
        self.origins = {source.origin(name): name for name in choice.files}

    def run(self, annotated: Iterator[AnnotatedImage]) -> IngestedBatch:
        """Raises InputError only when the reader does, for a file that concerns the whole batch."""
        seen: set[str] = set()
        for annotation in annotated:
            if annotation.file_name in seen:
                self._quarantine(annotation.file_name, InputError(DUPLICATE_ANNOTATION, (
                    f"{self.source.origin(annotation.file_name)}: image is annotated twice in this batch")))
                continue
            seen.add(annotation.file_name)
            try:
                self._accept(annotation)
            except InputError as exc:
                self._quarantine(annotation.file_name, exc)
                for problem in each_problem(exc):
                    if problem.rule in UNREADABLE_FILE_RULES:
                        self.unreadable.update(_unreadable(self.origins, problem))
        for name in sorted(self._image_files() - seen):
            error = self.rejected.get(name) or InputError(ANNOTATION_MISSING, (
                f"{self.source.origin(name)}: image file has no annotation in this {self.reader.name} batch"))
            self._quarantine(name, error)
        return IngestedBatch(
            images=ImageRecord.validate(pl.DataFrame(self.images, schema=IMAGE_SCHEMA)),
            shapes=self.shapes.frame(),
            quarantine=_quarantine_frame(self.quarantine),
            files=_files_frame(self.source, self.manifest, self.choice, seen, self.unreadable),
            source_format=self.reader.name,
            images_missing=pl.DataFrame(self.missing, schema=MISSING_SCHEMA),
        )

    def _image_files(self) -> set[str]:
        """Image files that are entries: not an annotation file of the chosen format or of a passed-over
        one, nor a companion of theirs."""
        candidates = self.names | set(self.rejected)
        return {n for n in candidates if n.lower().endswith(IMAGE_SUFFIXES)
                and n not in self.annotation_files and n not in self.passed_over and n not in self.companions}

    def _image_bytes(self, annotation: AnnotatedImage) -> bytes:
        """The image file the reader found, else the one the annotation embeds."""
        name = annotation.file_name
        if annotation.image_error is not None:
            raise annotation.image_error
        if name in self.rejected:
            raise self.rejected[name]
        if name in self.names:
            return self.source.read(name)
        if annotation.image_data is not None:
            return annotation.image_data
        raise InputError(IMAGE_MISSING, f"{self.source.origin(name)}: annotated but the image file does not exist")

    def _image_problems(self, annotation: AnnotatedImage) -> list[InputError]:
        """What is wrong with the image itself (absent, refused, undecodable), for an entry refused for
        its annotation, so that one message names both. An entry named after its annotation (no image
        name to look for) has none; its frame is not compared, as its annotation's is unusable."""
        name = annotation.file_name
        if annotation.image_error is not None:
            return [annotation.image_error]
        if name in self.rejected:
            return [self.rejected[name]]
        data = self.source.read(name) if name in self.names else annotation.image_data
        if data is None:
            return []
        try:
            inspect_image(data, self.source.origin(name))
        except InputError as exc:
            return [exc]
        return []

    def _accept(self, annotation: AnnotatedImage) -> None:
        if annotation.error is not None:
            raise ItemProblems.of(annotation.error, *self._image_problems(annotation))
        origin = self.source.origin(annotation.file_name)
        try:
            data = self._image_bytes(annotation)
        except InputError as absent:
            if self.lint_without_images and absent.rule in IMAGE_ABSENT_RULES:
                self._keep_without_image(annotation)
            raise
        decoded = inspect_image(data, origin)
        frame = annotation_frame(decoded, annotation.width, annotation.height, origin)
        image_id = hashlib.sha256(data).hexdigest()
        stored, suffix = stored_image(data, decoded, frame)
        image_key = store_keys.image(image_id, "" if decoded.orientation == 1 else frame, suffix)
        if self.store_image is not None:
            self.store_image(image_key, stored)
        eid = entry_id(self.manifest.batch_id, annotation.file_name)
        model = self.manifest.model
        identity = self.manifest.annotator or annotation.annotator or f"batch:{self.manifest.batch_id}"
        attributes = annotation.attributes if model is None else {**annotation.attributes, "model_version": model.version}
        self.images.append({
            "entry_id": eid, "batch_id": self.manifest.batch_id, "file_name": annotation.file_name,
            "landed_at": self.landed_at, "source_uri": origin, "image_id": image_id, "image_key": image_key,
            "source_format": self.reader.name,
            "annotator": self._annotator(identity),
            "source": self._source(), "is_gold": self.manifest.gold,
            "width": annotation.width, "height": annotation.height, "exif_orientation": decoded.orientation,
            "perceptual_hash": decoded.perceptual_hash,
            "image_attributes": orjson.dumps(attributes, option=orjson.OPT_SORT_KEYS).decode(),
            **self._metadata_of(annotation.file_name),
            "licence": self.manifest.licence, "origin": self.manifest.origin, "attribution": self.manifest.attribution,
        })
        self.shapes.add(eid, annotation.shapes)

    def _annotator(self, identity: str) -> str:
        if self.manifest.model is not None:
            return self.manifest.model.annotator
        return REVIEW_ANNOTATOR if self.manifest.kind == REVIEW_KIND else pseudonymize(identity, self.annotator_key)

    def _source(self) -> str:
        """Whose mapping rules apply: a review batch's labels are the taxonomy's class names."""
        return REVIEW_SOURCE if self.manifest.kind == REVIEW_KIND else self.manifest.source or self.reader.name

    def _keep_without_image(self, annotation: AnnotatedImage) -> None:
        """check-source only: the shapes of an entry whose image is absent, for linting its labels."""
        eid = entry_id(self.manifest.batch_id, annotation.file_name)
        self.shapes.add(eid, annotation.shapes)
        self.missing.append({"entry_id": eid, "batch_id": self.manifest.batch_id, "file_name": annotation.file_name,
                             "width": annotation.width, "height": annotation.height,
                             "source": self._source()})

    def _metadata_of(self, file_name: str) -> dict[str, str | None]:
        relative = file_name.removeprefix(f"{self.manifest.images_dir}/")
        row = self.metadata.get(file_name) or self.metadata.get(relative) or {}
        return {column: row.get(column) or None for column in METADATA_COLUMNS}

    def _quarantine(self, file_name: str, error: InputError) -> None:
        self.quarantine.append(_quarantine_row(self.manifest.batch_id, file_name, error))


def _read_metadata(source: BatchSource, manifest: BatchManifest) -> dict[str, dict[str, str]]:
    """Per-image metadata from the CSV batch.json names, keyed by file_name; none when it names none.

    A named CSV that is absent or unreadable raises rather than being passed over: the images would
    be released without the sequence ids sampling keeps together, and a mangled name (Latin-1 read
    as UTF-8) would reach the release unnoticed."""
    name = manifest.metadata_file
    if name is None:
        return {}
    origin = source.origin(name)
    if name not in source.names():
        refused = {r.name: r.error for r in source.rejected()}.get(name)
        problem = f"is refused: {refused}" if refused is not None else "does not exist"
        raise InputError(UNREADABLE_METADATA, f"{origin}: the metadata_file named in {BATCH_MANIFEST} {problem}")
    try:
        reader = csv.DictReader(io.StringIO(source.read(name).decode("utf-8-sig"), newline=""))
        rows: dict[str, dict[str, str]] = {}
        lines: dict[str, int] = {}
        for row in reader:
            file_name = row.get("file_name")
            if file_name in lines:
                raise InputError(UNREADABLE_METADATA, (
                    f"{origin}: line {reader.line_num} names {file_name!r} again (first on line {lines[file_name]})"))
            if file_name:
                rows[file_name], lines[file_name] = row, reader.line_num
    except UnicodeDecodeError as exc:
        raise InputError(UNREADABLE_METADATA, f"{origin}: not UTF-8 text ({exc})") from exc
    except csv.Error as exc:
        raise InputError(UNREADABLE_METADATA, f"{origin}: not valid CSV after line {reader.line_num}: {exc}") from exc
    if "file_name" not in (reader.fieldnames or []):
        raise InputError(UNREADABLE_METADATA, (
            f"{origin}: the header row {reader.fieldnames or []} has no file_name column"))
    return rows


def _file_role(name: str, manifest: BatchManifest, annotation_files: set[str], images: set[str]) -> str:
    if name == BATCH_MANIFEST:
        return "manifest"
    if name in annotation_files:
        return "annotation"
    if name == manifest.metadata_file:
        return "metadata"
    if name in images or name.lower().endswith(IMAGE_SUFFIXES):
        return "image"
    return "other"


def _files_frame(source: BatchSource, manifest: BatchManifest, choice: FormatChoice | None, images: set[str],
                 unreadable: dict[str, InputError]) -> pl.DataFrame:
    """One row per file. A refused file, and an annotation file that could not be read (`unreadable`),
    are rejected with the error; a file of a passed-over format is unused, saying which format
    would have read it and why the batch was read as another; a companion is unused, saying why."""
    annotation_files = set(choice.files) if choice is not None else set()
    companions = choice.companions if choice is not None else {}
    rows = [
        {"batch_id": manifest.batch_id, "path": rejected.name, "role": _file_role(rejected.name, manifest, annotation_files, images),
         "outcome": "rejected", "reason": f"{rejected.error.rule}: {rejected.error}"}
        for rejected in source.rejected()
    ]
    passed_over = {file: name for name, files in (choice.passed_over if choice else {}).items() for file in files}
    for name in source.names():
        # Unless the chosen format annotates it as an image.
        passed = (name in passed_over or name in companions) and name not in images
        role = "other" if passed else _file_role(name, manifest, annotation_files, images)
        outcome, reason = ("read", None) if role != "other" else ("unused", _unused_reason(source, name, choice, passed_over))
        if name in unreadable:
            outcome, reason = "rejected", f"{unreadable[name].rule}: {unreadable[name]}"
        rows.append({"batch_id": manifest.batch_id, "path": name, "role": role, "outcome": outcome, "reason": reason})
    return BatchFileRecord.validate(pl.DataFrame(rows, schema=FILE_SCHEMA).sort("path"))


def _unused_reason(source: BatchSource, name: str, choice: FormatChoice | None, passed_over: dict[str, str]) -> str:
    if choice is not None and name in choice.companions:
        return f"{source.origin(name)}: {choice.companions[name]}"
    if choice is not None and name in passed_over:
        return (f"{source.origin(name)}: {passed_over[name]} would read it, but the batch is read as "
                f"{choice.reader.name}: {choice.reason}")
    return f"{source.origin(name)}: not a file the batch's format reads"


def _unreadable(by_origin: dict[str, str], error: InputError) -> dict[str, InputError]:
    """The annotation file an error is about, the one whose origin starts its message (as every
    reader writes it), with the error; empty when the error names none. `by_origin` maps each
    annotation file's origin to its name."""
    message = str(error)
    at = message.find(": ")
    while at != -1:
        if message[:at] in by_origin:
            return {by_origin[message[:at]]: error}
        at = message.find(": ", at + 1)
    return {}


def _quarantine_batch(source: BatchSource, batch_id: str, error: InputError, manifest: BatchManifest | None = None,
                      choice: FormatChoice | None = None) -> IngestedBatch:
    """The whole batch is unusable: each of its images is quarantined with the batch's error, and a
    batch with no image at all still leaves one row, so the failure is counted."""
    manifest = manifest or BatchManifest(batch_id)
    claimed = set(choice.files) | {f for files in choice.passed_over.values() for f in files} | set(
        choice.companions) if choice else set()
    read_files = [*(choice.files if choice else []), *([manifest.metadata_file] if manifest.metadata_file else [])]
    origins = {source.origin(name): name for name in read_files}
    listed = source.names() + [r.name for r in source.rejected()]
    items = sorted(n for n in listed if n.lower().endswith(IMAGE_SUFFIXES) and n not in claimed) or [
        BATCH_MANIFEST if BATCH_MANIFEST in listed else ""]
    return IngestedBatch(
        images=ImageRecord.validate(pl.DataFrame([], schema=IMAGE_SCHEMA)),
        shapes=ShapeTableBuilder().frame(),
        quarantine=_quarantine_frame([_quarantine_row(batch_id, name, error) for name in items]),
        files=_files_frame(source, manifest, choice, set(), _unreadable(origins, error)),
        source_format=None,
    )


def quarantine_unreadable_batch(batch_id: str, error: InputError) -> IngestedBatch:
    """A batch whose source cannot be opened (an unsafe or corrupt archive, a batch that is gone): one
    quarantine row for the batch. A refused archive's members are its rejected files, each with its
    own problem or the archive's, so a user sees what was in it; when its directory could not be
    listed safely, the archive itself is the one rejected file."""
    rows = []
    if isinstance(error, ArchiveRefused):
        manifest = BatchManifest(batch_id)
        rows = [{"batch_id": batch_id, "path": member.name, "role": _file_role(member.name, manifest, set(), set()),
                 "outcome": "rejected", "reason": f"{member.error.rule}: {member.error}"} for member in error.members]
        rows = rows or [{"batch_id": batch_id, "path": error.archive_name, "role": "archive", "outcome": "rejected",
                         "reason": f"{error.rule}: {error}"}]
    return IngestedBatch(
        images=ImageRecord.validate(pl.DataFrame([], schema=IMAGE_SCHEMA)),
        shapes=ShapeTableBuilder().frame(),
        quarantine=_quarantine_frame([_quarantine_row(batch_id, "", error)]),
        files=BatchFileRecord.validate(pl.DataFrame(rows, schema=FILE_SCHEMA).sort("path")),
        source_format=None,
    )


def image_metadata(images: pl.DataFrame, superseded: Collection[str] = ()) -> pl.DataFrame:
    """One row per image_id: its first file and the batches and annotators that delivered it, and per
    metadata column the first non-empty value in batch order. The entries in `superseded` (replaced by
    a later delivery of the image by their annotator, see core/qa/deliveries.py) are out of date: they
    name no file, batch or annotator, and give a metadata value only where no other entry has one."""
    current = ~pl.col("entry_id").is_in(list(superseded))
    return (
        images.sort(~current, "batch_id", "file_name")
        .group_by("image_id", maintain_order=True)
        .agg(
            *[pl.col(c).filter(current).first() for c in ("source_uri", "image_key", "file_name", "width", "height")],
            pl.col("batch_id").filter(current).unique().sort().str.join(";").alias("source_batches"),
            pl.col("annotator").filter(current).unique().sort().str.join(";").alias("annotators"),
            *[pl.col(c).drop_nulls().first().alias(c) for c in METADATA_COLUMNS],
        )
    )


def _quarantine_row(batch_id: str, file_name: str, error: InputError) -> dict:
    """The row of an unusable item; its stage is the one the rule is declared for."""
    return {"batch_id": batch_id, "file_name": file_name, "stage": quarantine_rule(error.rule).stage,
            "rule": error.rule, "message": str(error)}


def _quarantine_frame(rows: list[dict]) -> pl.DataFrame:
    return QuarantineRecord.validate(pl.DataFrame(rows, schema=QUARANTINE_SCHEMA))


MISSING_SCHEMA = {"entry_id": pl.String, "batch_id": pl.String, "file_name": pl.String, "width": pl.Int64,
                  "height": pl.Int64, "source": pl.String}
IMAGE_SCHEMA = polars_schema(ImageRecord)
QUARANTINE_SCHEMA = polars_schema(QuarantineRecord)
FILE_SCHEMA = polars_schema(BatchFileRecord)
