"""`segpipe fetch`, `segpipe pack` and `segpipe gc`: a published version out of the store, unzipped or
as one ZIP, and the store pruned by the retention rule (and rid of masks no table names and of memo
folders no segpipe reads); each prints what it did in a few lines."""

import datetime as dt
from pathlib import Path

from segpipe.cli.release_verify import masks_decoded
from segpipe.core.config.pipeline import load_pipeline_settings
from segpipe.environment import current_environment
from segpipe.io.locations import open_location
from segpipe.store.release_fetch import Fetched, fetch_release, pack_release, version_path
from segpipe.store.release_gc import Collection, Retention, collect_garbage
from segpipe.store.retired_memos import delete_retired_memos
from segpipe.store.superseded_masks import delete_superseded_masks


def _locate(version: str, dataset: str | None):
    """The filesystem and folder of `version`: a release folder's path or URL as it is, else a version
    name (or `latest`) of `dataset` (default: pipeline.yaml's) in SEGPIPE_STORAGE_ROOT."""
    env = current_environment()
    if "/" in version:
        return open_location(version, env.s3_endpoint_url)
    dataset = dataset or load_pipeline_settings(env.pipeline_path).dataset_name
    fs, root = open_location(env.storage_root, env.s3_endpoint_url)
    return fs, version_path(fs, root, dataset, version)


def fetch(version: str, into: Path, dataset: str | None, mask_sample: int, layouts: tuple[str, ...] = ()) -> str:
    fs, path = _locate(version, dataset)
    fetched = fetch_release(fs, path, into, mask_sample, layouts)
    assembled = "".join(f"\n  {into / name}: the {name} layout, {n} files assembled and checked"
                        for name, n in fetched.assembled.items())
    return f"{into}: {fetched.files} files of {fetched.version} ({_checked(fetched)}){assembled}"


def pack(version: str, out: Path | None, dataset: str | None, mask_sample: int) -> str:
    fs, path = _locate(version, dataset)
    name = path.rstrip("/").rsplit("/", 2)
    out = out or Path(f"{name[-2]}-{name[-1]}.zip")
    packed = pack_release(fs, path, out, mask_sample)
    return f"{out}: {packed.files} files of {packed.version} in one ZIP ({_checked(packed)})"


def _checked(done: Fetched) -> str:
    result = done.verification
    return (f"{done.archives} ZIPs match _RELEASE.json; {result.files_checked} files match SHA256SUMS, "
            f"{result.images} images in index.csv match the manifest schema and meta.json, "
            f"{masks_decoded(result.masks_decoded, result.images)}")


def gc(dataset: str | None, keep_last: int | None, dry_run: bool) -> str:
    env = current_environment()
    settings = load_pipeline_settings(env.pipeline_path)
    dataset = dataset or settings.dataset_name
    rule = settings.release
    retention = Retention(keep_last if keep_last is not None else rule.keep_last, rule.keep,
                          dt.timedelta(hours=rule.gc_grace_hours))
    fs, root = open_location(env.storage_root, env.s3_endpoint_url)
    collected = format_collection(dataset, collect_garbage(fs, root, dataset, retention, dry_run=dry_run), retention,
                                  dry_run)
    superseded = delete_superseded_masks(fs, root, retention.grace, dry_run=dry_run)
    retired = delete_retired_memos(fs, root, dry_run)
    would = "would delete" if dry_run else "deleted"
    lines = [collected, f"  {would} {superseded.files} masks and memos of masks no table names any more "
                        f"({superseded.bytes / 2**20:.1f} MiB: a taxonomy edit's earlier class masks)"
             if superseded.tables else "  no build's tables in the store: no mask deleted"]
    if superseded.spared:
        lines.append(f"  kept {superseded.spared} such masks and memos younger than {_grace(retention)}: a build may "
                     "be about to name them; a later gc deletes them")
    if retired.folders:
        folders = ", ".join(f"{folder}/" for folder in retired.folders)
        lines.append(f"  {would} {retired.files} files of memo folders no segpipe reads any more "
                     f"({folders}: {retired.bytes / 2**20:.1f} MiB)")
    return "\n".join(lines)


def format_collection(dataset: str, done: Collection, retention: Retention, dry_run: bool) -> str:
    would = "would delete" if dry_run else "deleted"
    rule = (f"the {retention.keep_last} newest" if retention.keep_last else "every version") + \
        ", latest.json's" + (f", and {', '.join(retention.keep)}" if retention.keep else "")
    lines = [f"{dataset}: keeps {rule}: {len(done.kept)} versions",
             f"  {would} {len(done.retired)} versions: {', '.join(done.retired) or 'none'}",
             f"  {would} {len(done.parts_deleted)} unused parts ({done.bytes_freed / 2**20:.1f} MiB)"]
    if done.parts_spared:
        lines.append(f"  kept {len(done.parts_spared)} unused parts younger than {_grace(retention)}: a publisher may "
                     "be about to use them; a later gc deletes them")
    if done.stopped:
        lines.append("  stopped before the end: the claim was held too long; run gc again")
    return "\n".join(lines)


def _grace(retention: Retention) -> str:
    """The grace period as pipeline.yaml sets it."""
    return f"{retention.grace.total_seconds() / 3600:g} h (release.gc_grace_hours)"
