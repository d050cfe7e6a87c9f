"""qa/: what QA found, shipped with the release so its users see what was flagged and why."""

from collections.abc import Iterator

import polars as pl

from segpipe.core.release import layout
from segpipe.core.release.writers.writer import Member, ReleaseContext, ReleaseWriter


class QaFolder(ReleaseWriter):
    """qa/report.csv, one row per failed rule and entry (the content version covers it), and
    qa/thumbnails/<rule>/<entry>.png, the picture of each failure that has one."""

    name = "qa"

    def __init__(self, release: ReleaseContext) -> None:
        super().__init__(release)
        self.report, self.thumbnails = qa_folder(release.qa_results)

    def version_content(self) -> bytes:
        return self.report

    def closing_members(self) -> Iterator[Member]:
        yield Member(layout.QA_REPORT, self.report)
        for path, key in self.thumbnails:
            yield Member(path, self.release.store.read_png(key), compress=False)


def qa_folder(qa_results: pl.DataFrame) -> tuple[bytes, list[tuple[str, str]]]:
    """qa/report.csv and the (path in the archive, store key) of each failure's thumbnail."""
    failures = qa_results.filter(~pl.col("passed")).sort("check_id", "batch_id", "file_name").with_columns(
        pl.when(pl.col("thumbnail_key").is_not_null())
        .then(pl.format(layout.QA_THUMBNAIL, pl.col("check_id"), pl.col("entry_id")))
        .alias("thumbnail_path"))
    report = failures.select("check_id", "severity", "batch_id", "file_name", "entry_id", "excludes_entry", "reason",
                             "thumbnail_path")
    thumbnails = failures.filter(pl.col("thumbnail_key").is_not_null()).select("thumbnail_path", "thumbnail_key")
    return report.write_csv().encode(), list(thumbnails.iter_rows())
