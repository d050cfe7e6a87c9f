"""README.md: the datasheet a release ships."""

from collections.abc import Iterator

from segpipe.core.release import layout
from segpipe.core.release.datasheet import datasheet
from segpipe.core.release.writers.writer import Member, ReleaseWriter


class Datasheet(ReleaseWriter):
    """README.md: what the release holds, how it was checked and how to load it, written from
    meta.json alone (see release/datasheet.py); it links the distribution chart when the reports hold one."""

    name = "datasheet"

    def closing_members(self) -> Iterator[Member]:
        chart = layout.DISTRIBUTION_CHART if layout.DISTRIBUTION_CHART in self.release.report_files else None
        yield Member(layout.DATASHEET, datasheet(self.release.meta, chart).encode())
