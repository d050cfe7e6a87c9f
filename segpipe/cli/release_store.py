"""`segpipe fetch`, `segpipe pack` and `segpipe gc`: a published version out of the store, unzipped or
as one ZIP, and the store pruned by the retention rule (and rid of masks no table names and of memo
folders no segpipe reads); each prints what it did in a few lines."""

from pathlib import Path

from segpipe.cli.release_verify import masks_decoded
from segpipe.core.config.pipeline import load_pipeline_settings
from segpipe.environment import current_environment
from segpipe.io.locations import open_location
from segpipe.store.release_fetch import Fetched, fetch_release, pack_release, version_path
from segpipe.store.store_gc import collect_store_garbage, report_lines, retention_of


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
    return (f"{done.archives} ZIP{'s' if done.archives != 1 else ''} {'match' if done.archives != 1 else 'matches'} "
            f"_RELEASE.json; {result.files_checked} files match SHA256SUMS, "
            f"{result.images} images in index.csv match the manifest schema and meta.json, "
            f"{masks_decoded(result.masks_decoded, result.images)}")


def gc(dataset: str | None, keep_last: int | None, dry_run: bool) -> str:
    env = current_environment()
    settings = load_pipeline_settings(env.pipeline_path)
    dataset = dataset or settings.dataset_name
    retention = retention_of(settings.release, keep_last)
    fs, root = open_location(env.storage_root, env.s3_endpoint_url)
    return "\n".join(report_lines(dataset, collect_store_garbage(fs, root, dataset, retention, dry_run), retention,
                                   dry_run))
