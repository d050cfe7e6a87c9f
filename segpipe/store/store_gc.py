"""One garbage collection of a store, as `segpipe gc` and the Dagster `store_gc_job` run it: the
dataset's releases by the retention rule (release_gc.py), the masks no table names with their
memos (superseded_masks.py) and the memo folders no segpipe reads (retired_memos.py); and its
report, the same lines in a terminal and in the run's log."""

import datetime as dt
from dataclasses import dataclass

import fsspec

from segpipe.core.release.settings import ReleaseSettings
from segpipe.store.release_gc import Collection, Retention, collect_garbage
from segpipe.store.retired_memos import RetiredMemos, delete_retired_memos
from segpipe.store.superseded_masks import SupersededMasks, delete_superseded_masks


@dataclass(frozen=True)
class StoreGarbage:
    releases: Collection
    superseded: SupersededMasks
    retired: RetiredMemos

    @property
    def bytes_freed(self) -> int:
        return self.releases.bytes_freed + self.superseded.bytes + self.retired.bytes


def retention_of(release: ReleaseSettings, keep_last: int | None = None) -> Retention:
    """pipeline.yaml's retention rule, with `keep_last` (`segpipe gc --keep-last`) over its own."""
    return Retention(keep_last if keep_last is not None else release.keep_last, release.keep,
                     dt.timedelta(hours=release.gc_grace_hours))


def collect_store_garbage(fs: fsspec.AbstractFileSystem, root: str, dataset: str, retention: Retention,
                          dry_run: bool = False) -> StoreGarbage:
    """Everything gc deletes (with `dry_run`, only counts); each part safe while others build and publish."""
    return StoreGarbage(collect_garbage(fs, root, dataset, retention, dry_run=dry_run),
                        delete_superseded_masks(fs, root, retention.grace, dry_run=dry_run),
                        delete_retired_memos(fs, root, dry_run))


def report_lines(dataset: str, done: StoreGarbage, retention: Retention, dry_run: bool) -> list[str]:
    """What the collection did, a line per kind of thing, spared ones included."""
    would = "would delete" if dry_run else "deleted"
    releases, superseded, retired = done.releases, done.superseded, done.retired
    rule = (f"the {retention.keep_last} newest" if retention.keep_last else "every version") + \
        ", latest.json's" + (f", and {', '.join(retention.keep)}" if retention.keep else "")
    lines = [f"{dataset}: keeps {rule}: {len(releases.kept)} versions",
             f"  {would} {len(releases.retired)} versions: {', '.join(releases.retired) or 'none'}",
             f"  {would} {len(releases.parts_deleted)} unused parts ({releases.bytes_freed / 2**20:.1f} MiB)"]
    if releases.parts_spared:
        lines.append(f"  kept {len(releases.parts_spared)} unused parts younger than {_grace(retention)}: a publisher "
                     "may be about to use them; a later gc deletes them")
    if releases.stopped:
        lines.append("  stopped before the end: the claim was held too long; run gc again")
    lines.append(f"  {would} {superseded.files} masks, their memos and QA thumbnails no table names any more "
                 f"({superseded.bytes / 2**20:.1f} MiB: a taxonomy edit's earlier class masks, and what was made of "
                 "them)"
                 if superseded.tables else "  no build's tables in the store: no mask deleted")
    if superseded.spared:
        lines.append(f"  kept {superseded.spared} such files younger than {_grace(retention)}: a build may "
                     "be about to name them; a later gc deletes them")
    if retired.folders:
        folders = ", ".join(f"{folder}/" for folder in retired.folders)
        lines.append(f"  {would} {retired.files} files of memo folders no segpipe reads any more "
                     f"({folders}: {retired.bytes / 2**20:.1f} MiB)")
    return lines


def _grace(retention: Retention) -> str:
    """The grace period as pipeline.yaml sets it."""
    return f"{retention.grace.total_seconds() / 3600:g} h (release.gc_grace_hours)"
