"""The contract every release writer fulfils, and what one build shares with its writers."""

import contextlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import ClassVar, Protocol

import polars as pl

from segpipe.core.release import layout
from segpipe.core.release.provenance import BatchProvenance
from segpipe.core.release.settings import CITY_FROM_BATCH
from segpipe.core.shared.artefacts import ArtefactStore
from segpipe.core.shared.hashing_writer import HashingWriter
from segpipe.core.taxonomy.model import Taxonomy


@dataclass(frozen=True)
class BuildStamp:
    """Which build made a release: recorded in meta.json, never part of its content version."""

    run_id: str
    created_at: str  # UTC, ISO 8601

    @staticmethod
    def now(run_id: str) -> "BuildStamp":
        return BuildStamp(run_id, datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z"))


@dataclass(frozen=True)
class Deferred:
    """A member's bytes, made only when a packager needs them: a release in parts never makes the
    bytes an earlier version's part already holds (see parts.py)."""

    make: Callable[[], bytes]


@dataclass(frozen=True)
class CopiedRecord:
    """A member as an earlier ZIP of ours holds it, checked to hash as planned: its central-directory
    entry (a zipfile.ZipInfo) and its local record (header, data as stored or deflated, descriptor),
    which a ZIP packager copies as they are instead of compressing the bytes again."""

    info: object
    record: bytes
    sha256: str


@dataclass(frozen=True)
class Member:
    """One file of the release: its path (see layout), its bytes (now, Deferred, or a callable that
    streams them into a HashingWriter, for a member too large to hold in memory: its segment() takes
    the runs a later build will write again), and whether packaging
    compresses it (images and masks are compressed already). `source` names what an item's member
    is made of without making it (a content-derived store key and what is done to it): a release in
    parts looks the member up by it in the previous version's parts; None, and only its bytes say."""

    path: str
    content: bytes | Deferred | CopiedRecord | Callable[[HashingWriter], None]
    compress: bool = True
    source: str | None = None


class ShelvedAnnotations(Protocol):
    """Each mask's COCO annotations as coco_document's tails_block, as stored fragments hold them."""

    def block(self, mask_key: str) -> bytes | None:
        """The mask's tails_block; None when no fragment holds it."""
        ...

    def held(self, mask_key: str) -> tuple[int, bytes] | None:
        """How many annotations its block holds and the block's SHA-256 (hex); None when no fragment holds it."""
        ...


class _NothingShelved:
    def block(self, mask_key: str) -> None:
        return None

    def held(self, mask_key: str) -> None:
        return None


NOTHING_SHELVED = _NothingShelved()


@dataclass(frozen=True)
class ReleaseItem:
    """A released image as the writers see it: its row of release_items, and its class mask's bytes,
    read (once, for every writer that needs them) only if one does: a release whose parts hold the
    mask already, and whose COCO annotations are remembered, never reads it."""

    row: dict
    store: ArtefactStore

    @cached_property
    def mask(self) -> bytes:
        return self.store.read_png(self.row["mask_key"])

    @cached_property
    def stem(self) -> str:
        return layout.release_stem(self.row["file_name"], self.row["image_id"])

    @property
    def group(self) -> str:
        """The batch whose parts hold the item's files (release_items' part_group; else its first source batch)."""
        return self.row.get("part_group") or self.row["source_batches"].split(";")[0]

    @property
    def image_path(self) -> str:
        return layout.image(self.row["split"], self.stem, self.row["image_key"].rsplit(".", 1)[-1])

    @property
    def mask_path(self) -> str:
        return layout.mask(self.row["split"], self.stem)

    @property
    def instance_path(self) -> str | None:
        """None for an image without an instance mask (a fused one)."""
        return None if self.row["instance_mask_key"] is None else layout.instance_mask(self.row["split"], self.stem)


@dataclass(eq=False)
class ReleaseContext:
    """What the writers of one build share. The build records each packaged member's SHA-256 in
    `packaged` as the packager hands it over, and seals `manifest` (from `manifest_rows`), `version`
    and `meta` once every item is written. `resources` holds what writers keep open for the build
    (temporary files), released when the build ends, however it ends."""

    store: ArtefactStore
    taxonomy: Taxonomy
    dataset_name: str
    mask_encoding: str
    stamp: BuildStamp
    counts: dict[str, int]
    qa_results: pl.DataFrame
    report_files: Mapping[str, bytes] = field(default_factory=dict)  # path in the archive -> bytes
    # the masks' COCO annotations read from their fragments (coco_fragments.AnnotationShelf); the
    # writer makes those of a mask no fragment holds
    coco_annotations: "ShelvedAnnotations" = field(default_factory=lambda: NOTHING_SHELVED)
    provenance: Mapping[str, BatchProvenance] = field(default_factory=dict)  # batch id -> what its batch.json states
    exports: tuple[str, ...] = ()  # release.exports: the trainer layouts this release carries
    cityscapes_city: str = CITY_FROM_BATCH  # release.cityscapes_city
    workers: int = 1  # release.workers: processes the per-image annotations are computed on (item_annotations)
    # batch id -> its place in the order the batches landed (coco.json's images follow it; see batch_order)
    batch_order: Mapping[str, int] = field(default_factory=dict)
    packaged: dict[str, str] = field(default_factory=dict, init=False, repr=False)
    # the store keys of the deflated segments packaged (parallel_deflate.DeflatedSegments), kept by the next prune
    deflated_segments: set[str] = field(default_factory=set, init=False, repr=False)
    manifest_rows: list[dict] = field(default_factory=list, init=False, repr=False)
    resources: contextlib.ExitStack = field(default_factory=contextlib.ExitStack, init=False, repr=False)
    manifest: pl.DataFrame = field(init=False, repr=False)
    version: str = field(default="", init=False)
    meta: dict = field(default_factory=dict, init=False, repr=False)


class ReleaseWriter:
    """One output of a release; its class docstring says which files it writes. The build makes a
    writer per build from the release's context, gives it every released item in archive order,
    takes its version content once the items are written, then its closing members. A writer
    yields members and never sees the archive or the packager they go into.

    Hooks a writer leaves alone write nothing: subclasses override the ones they need. An `export`
    writes a trainer layout and runs only when release.exports names it."""

    name: ClassVar[str]
    export: ClassVar[bool] = False

    @classmethod
    def runs_in(cls, release: "ReleaseContext") -> bool:
        return not cls.export or cls.name in release.exports

    def __init__(self, release: ReleaseContext) -> None:
        self.release = release

    def item_members(self, item: ReleaseItem) -> Iterable[Member]:
        """The members of one released item, packaged before the next writer sees the item."""
        return ()

    def version_content(self) -> bytes:
        """What of this output the content version covers beyond the manifest (which holds every
        image's and mask's SHA-256): empty when the manifest, taxonomy and settings determine it; an
        export's name, so a release with another set of layouts is another version."""
        return self.name.encode() if self.export else b""

    def closing_members(self) -> Iterable[Member]:
        """The members written once the manifest, the content version and meta are known."""
        return ()
