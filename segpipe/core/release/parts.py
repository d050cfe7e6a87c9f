"""A release in parts: the items' files cut into ZIPs that later versions share.

Unzipped together, the parts and the version's own ZIP give exactly the layout of a release in one
ZIP (release/layout.py). A release whose items' files (images, masks, labels) come to at most
`part_bytes` is one ZIP, as before. A larger one keeps in its own ZIP only the files made once
per version (the manifest, meta.json, coco.json, SHA256SUMS, ...) and puts its items' files in
shared parts:

- items are grouped by the batch that first delivered the image and by split, in image_id order,
  and each group is cut into chunks once the chunk's images reach `part_bytes`; images come from
  the landed bytes alone, so a taxonomy edit never moves an image to another chunk;
- a chunk makes an image part (images/) and an annotation part (masks/, instances/, labels/);
- a part is named by the SHA-256 of its member list (`<sha256>  <path>` lines, sorted by path, as
  in SHA256SUMS), so the same files make the same part, which is written once and then shared.

So a nightly build with a new batch writes only that batch's parts, and a taxonomy edit rewrites
only the annotation parts whose masks changed. An image whose split changes has another path,
so its chunk, and the one it left, are new parts; so is a chunk one of whose images is no longer
released. Knowing which parts exist needs each member's SHA-256 and size before its bytes are
made: the previous version's member index (members.parquet) gives them for every member it held
under the same path, made from the same `source` (Member.source); the others are made and
hashed. The bytes made for hashing are kept in a temporary file until placed (MadeBytes), so
no member is made twice (an image read and stripped twice, a YOLO label traced twice) and memory
does not grow with the release.

A release of one ZIP holds every item's file again in each version, so a nightly build would make
them all again (each YOLO label traced anew): a member the previous version's index knows is
instead copied from that version's own ZIP (`earlier`), its record as it is, when the bytes found
there hash as the index says, and made as before otherwise.
"""

import hashlib
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from functools import partial
from typing import BinaryIO, Protocol

import polars as pl

from segpipe.core.release import layout
from segpipe.core.release.packaging import Packager, ZipPackager
from segpipe.core.release.writers.writer import CopiedRecord, Deferred, Member
from segpipe.core.shared.hashing_writer import HashingWriter

# Bump when the bytes a member is made of change for the same source (image_metadata's rules, the
# YOLO label text): members are then made again instead of found in an earlier version's parts.
MEMBER_RECIPES = "1"
MEMBER_TYPES = {"path": pl.String, "part": pl.String, "sha256": pl.String, "size": pl.Int64, "source": pl.String}

COPY_BLOCK = 1 << 20  # a streamed member is read back from MadeBytes in blocks of this size

MemberContent = bytes | Deferred | CopiedRecord | Callable[[HashingWriter], None]
KnownMembers = Mapping[tuple[str, str], tuple[str, int]]  # (path, source digest) -> (sha256, size)
# a path's bytes in the previous version's own ZIP, with its ZipInfo and local record; None: not there
EarlierBytes = Callable[[str], tuple[bytes, object, bytes] | None]


class ReleaseChanged(RuntimeError):
    """A member's bytes differ between hashing them and writing them into a part."""


class PartShelf(Protocol):
    """Where shared parts live: the store's parts folder, a dict in tests."""

    def holds(self, name: str, members: Sequence["PlannedMember"]) -> bool:
        """Whether a part of this name holding these members is stored: then it is used as it is."""
        ...

    def create(self, name: str, members: Sequence["PlannedMember"]) -> AbstractContextManager[BinaryIO]:
        """A stream for a new part of this name, which will hold these members."""
        ...


@dataclass(frozen=True)
class PlannedMember:
    path: str
    sha256: str
    size: int
    source: str | None  # digest of Member.source; None for a member named by its bytes alone
    compress: bool
    content: MemberContent
    item: int  # the item it belongs to, in the build's order
    group: str


@dataclass
class PartLayout:
    """Where each item member went: part name per path (None: the version's own ZIP), and the parts
    this version uses, with those this build wrote."""

    part_of: dict[str, str | None] = field(default_factory=dict)
    source_of: dict[str, str | None] = field(default_factory=dict)
    size_of: dict[str, int] = field(default_factory=dict)
    parts: list[str] = field(default_factory=list)
    written: list[str] = field(default_factory=list)


def source_digest(source: str) -> str:
    return hashlib.sha256(f"{MEMBER_RECIPES}\0{source}".encode()).hexdigest()


def part_name(members: Sequence[PlannedMember]) -> str:
    """`<sha256 of the sorted member list>.zip`: the same files make the same name."""
    listing = "".join(f"{m.sha256}  {m.path}\n" for m in sorted(members, key=lambda m: m.path))
    return f"{hashlib.sha256(listing.encode()).hexdigest()}.zip"


class MadeBytes:
    """Members' bytes made while planning, kept in a temporary file (not in memory) until they are
    packaged: what is read back is what was hashed."""

    def __init__(self) -> None:
        self._file = tempfile.TemporaryFile()
        self._end = 0

    def keep(self, content: MemberContent) -> tuple[str, int, MemberContent]:
        """Make the content once: its SHA-256, its size, and a content that reads those bytes back
        (streamed back for a streamed member)."""
        start = self._end
        sink = HashingWriter(self._file)
        data = content.make() if isinstance(content, Deferred) else content
        if isinstance(data, bytes):
            sink.write(data)
        else:
            data(sink)
        size = sink.tell()
        self._end += size
        kept: MemberContent = (Deferred(partial(self._read, start, size)) if isinstance(data, bytes)
                               else partial(self._copy, start, start + size))
        return sink.hexdigest(), size, kept

    def _read(self, start: int, size: int) -> bytes:
        self._file.flush()
        return os.pread(self._file.fileno(), size, start)

    def _copy(self, start: int, end: int, out: BinaryIO) -> None:
        for offset in range(start, end, COPY_BLOCK):
            out.write(self._read(offset, min(COPY_BLOCK, end - offset)))

    def close(self) -> None:
        self._file.close()


class PartPlanner:
    """Takes the items' members as the writers yield them (hashing only those `known` lacks, whose
    bytes it keeps in MadeBytes), then places them: into the version's ZIP when they fit in one
    part, else into shared parts."""

    def __init__(self, part_bytes: int, known: KnownMembers, shelf: PartShelf,
                 earlier: EarlierBytes | None = None) -> None:
        self.part_bytes, self.known, self.shelf, self.earlier = part_bytes, known, shelf, earlier
        self.planned: list[PlannedMember] = []
        self.hashed = 0  # members made and hashed because `known` lacked them
        self.copied = 0  # members of a one-ZIP release copied from the previous version's ZIP
        self.unmade: set[str] = set()  # paths of members planned from `known`, their bytes not made
        self.made = MadeBytes()

    def add(self, member: Member, item: int, group: str) -> str:
        """Plan an item's member; its SHA-256."""
        digest = None if member.source is None else source_digest(member.source)
        facts = None if digest is None else self.known.get((member.path, digest))
        content = member.content
        if facts is None:
            sha256, size, content = self.made.keep(member.content)
            facts = (sha256, size)
            self.hashed += 1
        else:
            self.unmade.add(member.path)
        self.planned.append(PlannedMember(member.path, facts[0], facts[1], digest, member.compress, content,
                                          item, group))
        return facts[0]

    def place(self, head: Packager) -> PartLayout:
        """Package every planned member: into `head` (the version's ZIP), in the order planned, when
        they fit in one part; else into the shared parts, those the shelf lacks written. The bytes
        kept for packaging go once placed."""
        try:
            return self._place(head)
        finally:
            self.made.close()

    def _place(self, head: Packager) -> PartLayout:
        placed = PartLayout(source_of={m.path: m.source for m in self.planned},
                            size_of={m.path: m.size for m in self.planned})
        if sum(m.size for m in self.planned) <= self.part_bytes:
            for member in self.planned:
                _check(member, head.add(Member(member.path, self._content(member), member.compress)))
                placed.part_of[member.path] = None
            return placed
        for members in self._parts():
            name = part_name(members)
            placed.parts.append(name)
            placed.part_of.update((m.path, name) for m in members)
            if not self.shelf.holds(name, members):
                with self.shelf.create(name, members) as out, ZipPackager(out) as packager:
                    for member in members:
                        _check(member, packager.add(Member(member.path, member.content, member.compress)))
                placed.written.append(name)
        return placed

    def _content(self, member: PlannedMember) -> MemberContent:
        """An unmade member as the previous version's ZIP holds it (copied, not compressed again), when
        its bytes hash as planned; else its own content, made now."""
        if self.earlier is None or member.path not in self.unmade:
            return member.content
        found = self.earlier(member.path)
        if found is None:
            return member.content
        data, info, record = found
        if len(data) != member.size or hashlib.sha256(data).hexdigest() != member.sha256:
            return member.content
        self.copied += 1
        return CopiedRecord(info, record, member.sha256)

    def _parts(self) -> Iterator[list[PlannedMember]]:
        """Per group (in name order), chunks of items cut once their images reach part_bytes: each
        an image part and an annotation part."""
        groups: dict[str, dict[int, list[PlannedMember]]] = {}
        for member in self.planned:
            groups.setdefault(member.group, {}).setdefault(member.item, []).append(member)
        for group in sorted(groups):
            chunk: list[list[PlannedMember]] = []
            image_bytes = 0
            for members in groups[group].values():
                chunk.append(members)
                image_bytes += sum(m.size for m in members if layout.is_image(m.path))
                if image_bytes >= self.part_bytes:
                    yield from _chunk_parts(chunk)
                    chunk, image_bytes = [], 0
            if chunk:
                yield from _chunk_parts(chunk)


def member_index(packaged: Mapping[str, str], placed: PartLayout, head_sizes: Mapping[str, int]) -> pl.DataFrame:
    """members.parquet: every file of the release in the order the one-ZIP release holds them, the
    part holding it (null: the version's ZIP), its SHA-256 and size, and for an item's file the
    digest of what it is made of, by which the next build finds it."""
    rows = [(path, placed.part_of.get(path), sha256, placed.size_of.get(path, head_sizes.get(path)),
             placed.source_of.get(path)) for path, sha256 in packaged.items()]
    return pl.DataFrame(rows, schema=MEMBER_TYPES, orient="row")


def known_members(index: pl.DataFrame | None) -> KnownMembers:
    """What a member index says of the items' files, by path and source digest."""
    if index is None:
        return {}
    made = index.filter(pl.col("source").is_not_null())
    return {(path, source): (sha256, size)
            for path, source, sha256, size in made.select("path", "source", "sha256", "size").iter_rows()}


def _chunk_parts(chunk: list[list[PlannedMember]]) -> Iterator[list[PlannedMember]]:
    members = [m for item in chunk for m in item]
    yield [m for m in members if layout.is_image(m.path)]
    yield [m for m in members if not layout.is_image(m.path)]


def _check(member: PlannedMember, packaged_sha256: str) -> None:
    if packaged_sha256 != member.sha256:
        raise ReleaseChanged(
            f"{member.path}: packaged with SHA-256 {packaged_sha256}, planned with {member.sha256}: what it is made "
            f"of changed while the release was built, or an earlier version's member index is wrong. Build again")
