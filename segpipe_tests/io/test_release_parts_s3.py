"""Releases in parts on a real S3 server (SeaweedFS, see segpipe_tests/s3_server.py): `segpipe gc` running
while a release is published never deletes a part the new version uses."""

import datetime as dt
import threading
import time

import orjson
import pytest

from segpipe.store import keys
from segpipe.store.release_check import verify_release_folder
from segpipe.store.release_gc import Collection, Retention, collect_garbage
from segpipe.store.release_read import list_releases
from segpipe.store.retired_memos import delete_retired_memos
from segpipe_tests.s3_server import S3Server
from segpipe_tests.store.gated_stores import Gate, GatedS3FileSystem
from segpipe_tests.store.parted_releases import (
    new_batch_with_the_test_image,
    publish_constructed,
    val_moved_to_train,
    without_test,
)
from segpipe_tests.store.publish_races import run_both
from segpipe_tests.store.superseded_stores import collects_what_no_table_names

pytestmark = pytest.mark.s3

GRACE = dt.timedelta(seconds=3)
OLDER_THAN_GRACE = 5.0  # seconds slept so that the parts published so far are past GRACE (S3 times are whole seconds)


def _root(s3_bucket: str) -> str:
    return f"{s3_bucket.removeprefix('s3://')}/store"


def _resplit_nightly(items):
    return val_moved_to_train(new_batch_with_the_test_image(items))


def _two_versions(s3_server: S3Server, root: str) -> set[str]:
    """Two versions before the test image's batch lands, the second a re-split: the val image's parts
    of the first are used by no later one. Returns those parts, once they are older than GRACE."""
    fs = s3_server.filesystem()
    first = publish_constructed(fs, root, without_test)
    resplit = publish_constructed(fs, root, lambda items: val_moved_to_train(without_test(items)), run_id="run-2")
    time.sleep(OLDER_THAN_GRACE)
    return set(first.published.marker["parts"]) - set(resplit.published.marker["parts"])


def _parts_in_store(s3_server: S3Server, root: str) -> set[str]:
    fs = s3_server.filesystem()
    folder = f"{root}/{keys.parts_dir('demo')}"
    fs.invalidate_cache(folder)
    return {path.rsplit("/", 1)[-1] for path in fs.ls(folder, detail=False)}


def test_gc_between_a_publishers_new_parts_and_its_claim_spares_them_and_deletes_only_unused_old_parts(
    s3_server: S3Server, s3_bucket: str
) -> None:
    root = _root(s3_bucket)
    unused = _two_versions(s3_server, root)
    assert len(unused) == 2
    collected: list[Collection] = []

    def collect_now() -> None:
        collected.append(collect_garbage(s3_server.filesystem(), root, "demo", Retention(1, (), GRACE)))

    gated = GatedS3FileSystem(Gate(lambda key: f"/{keys.CLAIMS_DIR}/" in key, collect_now), **s3_server.storage_options())
    nightly = publish_constructed(gated, root, _resplit_nightly, run_id="run-3")

    [done] = collected
    assert sorted(done.parts_deleted) == sorted(unused) and len(done.retired) == 1
    assert nightly.parts_written and set(nightly.parts_written) <= set(done.parts_spared)
    uses = set(nightly.published.marker["parts"])
    assert uses <= _parts_in_store(s3_server, root) and not uses & unused
    assert nightly.published.marker["sequence"] == 4  # its first claim (3) was taken by the collector
    reader = s3_server.filesystem()
    assert verify_release_folder(reader, f"{root}/{nightly.published.prefix}").problems == []
    assert [m["sequence"] for m in list_releases(reader, root, "demo")] == [2, 4]


def test_a_publisher_waits_for_a_collector_holding_its_claim_and_commits_a_whole_version(
    s3_server: S3Server, s3_bucket: str
) -> None:
    root = _root(s3_bucket)
    unused = _two_versions(s3_server, root)
    publisher_started = threading.Event()

    def hold_the_claim() -> None:  # the collector has deleted, and not yet given its claim up
        publisher_started.set()
        time.sleep(2.0)

    gated = GatedS3FileSystem(Gate(lambda key: key.endswith(".abandoned.json"), hold_the_claim),
                              **s3_server.storage_options())
    done, nightly = run_both(lambda: collect_garbage(gated, root, "demo", Retention(1, (), GRACE)),
                             lambda: publish_constructed(s3_server.filesystem(), root, _resplit_nightly, run_id="run-3"),
                             second_starts=publisher_started)
    assert sorted(done.parts_deleted) == sorted(unused)
    reader = s3_server.filesystem()
    claims = f"{root}/releases/demo/{keys.CLAIMS_DIR}"
    gave_up = orjson.loads(reader.cat_file(f"{claims}/3.abandoned.json"))
    claimed = orjson.loads(reader.cat_file(f"{claims}/4.json"))
    assert nightly.published.marker["sequence"] == 4
    assert dt.datetime.fromisoformat(claimed["claimed"]) > dt.datetime.fromisoformat(gave_up["abandoned"])
    assert set(nightly.published.marker["parts"]) <= _parts_in_store(s3_server, root)
    assert verify_release_folder(reader, f"{root}/{nightly.published.prefix}").problems == []


def test_gc_deletes_retired_memo_folders_on_s3_and_nothing_beside_them(s3_server, s3_bucket):
    fs, root = s3_server.filesystem(), _root(s3_bucket) + "-memos"
    retired = [f"{root}/yolo-outlines/masks/b001/e{n}-255.json" for n in range(3)]
    current = f"{root}/{keys.yolo_outlines_memo('masks/b001/e0.png', 255)}"
    for path in (*retired, current):
        fs.pipe_file(path, b"[]" * 1000)

    counted = delete_retired_memos(fs, root, dry_run=True)
    assert (counted.folders, counted.files, counted.bytes) == (("yolo-outlines",), 3, 6000)
    fs.invalidate_cache()
    assert all(fs.exists(path) for path in retired)
    assert delete_retired_memos(fs, root) == counted
    fs.invalidate_cache()
    assert not any(fs.exists(path) for path in retired) and fs.cat_file(current) == b"[]" * 1000
    assert delete_retired_memos(fs, root).folders == ()


def test_gc_deletes_masks_no_table_names_with_their_memos_on_s3(s3_server, s3_bucket):
    collects_what_no_table_names(s3_server.filesystem(), _root(s3_bucket) + "-superseded")
