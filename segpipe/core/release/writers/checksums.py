"""SHA256SUMS: a checksum of every other member, so anyone can check an unzipped release."""

from collections.abc import Iterator

from segpipe.core.release import layout
from segpipe.core.release.writers.writer import Member, ReleaseWriter


class Checksums(ReleaseWriter):
    """SHA256SUMS in `sha256sum` format, sorted by path, over every member packaged before it (the
    packager hands each member's SHA-256 over as it packages it): last in WRITERS, so it covers them all."""

    name = "checksums"

    def closing_members(self) -> Iterator[Member]:
        sums = sorted(self.release.packaged.items())
        yield Member(layout.SHA256SUMS, "".join(f"{digest}  {path}\n" for path, digest in sums).encode())
