"""README.md: the datasheet a release ships, and legend.png, the colours of its pictures."""

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from segpipe.core.qa.pictures import failure_pictures, qa_legend
from segpipe.core.release import layout
from segpipe.core.release.datasheet import datasheet
from segpipe.core.release.writers.qa import qa_folder
from segpipe.core.release.writers.writer import Member, ReleaseContext, ReleaseWriter
from segpipe.core.shared.pictures import legend_png

QA_PICTURES = 5  # QA thumbnails the datasheet shows; qa/thumbnails/ holds the rest


@dataclass(frozen=True)
class DatasheetPicture:
    """A picture the datasheet shows: what it shows, its path in the release, how to read its bytes."""

    caption: str
    path: str
    read: Callable[[], bytes]


def qa_pictures(release: ReleaseContext) -> list[DatasheetPicture]:
    """The first QA_PICTURES QA thumbnails of the release (each rule's first before any rule's second)."""
    path_of = {key: path for path, key in qa_folder(release.qa_results)[1]}
    return [DatasheetPicture(caption, path_of[key], lambda key=key: release.store.read_png(key))
            for caption, key in failure_pictures(release.qa_results)[:QA_PICTURES]]


def datasheet_pictures(release: ReleaseContext) -> list[DatasheetPicture]:
    """Every picture of the datasheet, in its order: the distribution chart (when the reports hold
    one), the legend, the QA thumbnails."""
    pictures = []
    if layout.DISTRIBUTION_CHART in release.report_files:
        chart = release.report_files[layout.DISTRIBUTION_CHART]
        pictures.append(DatasheetPicture("Distribution per split", layout.DISTRIBUTION_CHART, lambda: chart))
    pictures.append(DatasheetPicture("Colours of masks and QA pictures", layout.LEGEND,
                                     lambda: legend_png(qa_legend(release.taxonomy))))
    return pictures + qa_pictures(release)


class Datasheet(ReleaseWriter):
    """README.md: what the release holds, how it was checked and how to load it, written from
    meta.json (see release/datasheet.py), with the distribution chart, the legend and the first QA
    thumbnails as pictures; and legend.png, the one picture only the datasheet needs (the chart and
    the thumbnails are members of sampling/ and qa/)."""

    name = "datasheet"

    def closing_members(self) -> Iterator[Member]:
        yield Member(layout.LEGEND, legend_png(qa_legend(self.release.taxonomy)), compress=False)
        chart = layout.DISTRIBUTION_CHART if layout.DISTRIBUTION_CHART in self.release.report_files else None
        qa = [(p.caption, p.path) for p in qa_pictures(self.release)]
        yield Member(layout.DATASHEET, datasheet(self.release.meta, chart, qa).encode())
