"""sampling/: the report files a build passes in."""

from collections.abc import Iterator

from segpipe.core.release import layout
from segpipe.core.release.writers.writer import Member, ReleaseContext, ReleaseWriter


class Reports(ReleaseWriter):
    """The report files the build passes in (sampling's tables and distribution chart), each at its
    path under sampling/, in path order; the content version covers them."""

    name = "reports"

    def __init__(self, release: ReleaseContext) -> None:
        super().__init__(release)
        outside = sorted(path for path in release.report_files if not path.startswith(layout.REPORTS_DIR))
        if outside:
            raise ValueError(f"report files {outside} are not under {layout.REPORTS_DIR}")
        self.files = dict(sorted(release.report_files.items()))

    def version_content(self) -> bytes:
        return b"".join(f"\0{path}\0".encode() + data for path, data in self.files.items())

    def closing_members(self) -> Iterator[Member]:
        for path, data in self.files.items():
            yield Member(path, data)
