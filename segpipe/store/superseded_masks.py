"""Masks no table names any more, and the memos named after them, deleted by `segpipe gc`.

A taxonomy edit gives every entry it remaps a new class mask (named after its lookup table), and
each new mask its own memos: the COCO annotations of the mask and of its shapes, its YOLO
exteriors and YOLO label. The old ones are then read by nothing: a build reads the masks its
tables name (the `*_key` columns of the Parquet tables under `tables/`), and a published version
carries copies of its files in its own parts. Left alone they grow the store by about the
dataset's annotations at every edit. So gc deletes every file of keys.MASK_DIRS (but fused masks,
see there) and keys.MASK_MEMO_DIRS whose mask no table names, once it is older than the grace
period: a build writes its masks before its tables name them. A run that read its tables before a
backfill replaced them can then find a mask gone and fail naming it; run again, it reads the
current tables and draws what it lacks. QA thumbnails (keys.TABLE_NAMED_DIRS) go the same way
once qa_report names them no more: a QA run draws a missing one again.
"""

import datetime as dt
from dataclasses import dataclass

import fsspec
import polars as pl

from segpipe.store import keys
from segpipe.store.listing import stored_files
from segpipe.store.release_parts import modified_time

_DELETE_CHUNK = 1000  # keys per delete call: S3 deletes at most 1000 objects a request


@dataclass(frozen=True)
class SupersededMasks:
    tables: int  # the tables read: none, and no mask is deleted (nothing tells one in use)
    files: int  # masks, memos and thumbnails no table names, older than the grace period: deleted (or, dry, would be)
    bytes: int
    spared: int  # no table names them, but younger than the grace period


class UnreadableTable(RuntimeError):
    """A table under `tables/` does not read as Parquet: gc stops rather than guess what it names."""


def named_by_tables(fs: fsspec.AbstractFileSystem, root: str) -> tuple[int, set[str]]:
    """How many tables there are under `tables/`, and every key in their `*_key` text columns."""
    named: set[str] = set()
    tables = [f"{root}/{key}" for key in sorted(stored_files(fs, root, keys.TABLES_DIR)) if key.endswith(".parquet")]
    for path in tables:
        try:
            named.update(_keys_in(fs, path))
        except FileNotFoundError:  # its batch removed meanwhile: it names nothing any more
            continue
        except (pl.exceptions.PolarsError, OSError) as exc:
            raise UnreadableTable(f"{path}: cannot read this table ({type(exc).__name__}: {exc}), so gc cannot tell "
                                  "which masks it names and deletes none; rerun the step that writes it, or remove "
                                  "its batch (`segpipe batch remove ID`)") from exc
    return len(tables), named


def _keys_in(fs: fsspec.AbstractFileSystem, path: str) -> set[str]:
    with fs.open(path, "rb") as table:
        columns = [name for name, dtype in pl.read_parquet_schema(table).items()
                   if name.endswith("_key") and dtype == pl.String]
        if not columns:
            return set()
        table.seek(0)
        frame = pl.read_parquet(table, columns=columns)
    return {key for column in columns for key in frame[column].drop_nulls()}


def delete_superseded_masks(fs: fsspec.AbstractFileSystem, root: str, grace: dt.timedelta,
                            now: dt.datetime | None = None, dry_run: bool = False) -> SupersededMasks:
    """Delete the masks and per-mask memos whose mask no table names, and the QA thumbnails no table
    names, once older than `grace` (with `dry_run`, only count them)."""
    now = now or dt.datetime.now(dt.UTC)
    tables, named = named_by_tables(fs, root)
    if not tables:  # no build's tables here (another root, or none yet): nothing tells a mask in use
        return SupersededMasks(0, 0, 0, 0)
    stale, size, spared = [], 0, 0
    for folder in (*keys.MASK_DIRS, *keys.MASK_MEMO_DIRS, *keys.TABLE_NAMED_DIRS):
        for key, entry in stored_files(fs, root, folder.rstrip("/")).items():
            if key.startswith(keys.FUSED_MASKS_DIR):
                continue
            named_as = keys.mask_of_memo(key) if folder in keys.MASK_MEMO_DIRS else key
            if named_as in named:
                continue
            if now - modified_time(fs, entry) < grace:
                spared += 1
                continue
            stale.append(f"{root}/{key}")
            size += entry.get("size") or 0
    if not dry_run:
        for start in range(0, len(stale), _DELETE_CHUNK):
            fs.rm(stale[start:start + _DELETE_CHUNK])
    return SupersededMasks(tables, len(stale), size, spared)
