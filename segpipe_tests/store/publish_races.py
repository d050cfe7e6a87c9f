"""Two publishers racing for real (two threads, each with its own client), run on the local store
(test_publish.py) and on SeaweedFS (segpipe_tests/io/test_publish_s3.py).

Each publisher stages a small release and, once its sequence is claimed, a `diff.json` naming the
release it was compared with, as the release build does; a Gate (gated_stores.py) holds one of
them at a chosen write so that the interleaving is the same on every run.
"""

import datetime as dt
import io
import threading
import traceback
import zipfile
from collections.abc import Callable

import fsspec
import orjson

from segpipe.store.publish import PublishedRelease, open_staging, publish_release
from segpipe.store.keys import LATEST_POINTER
from segpipe.store.pointer import read_pointer
from segpipe.store.release_read import list_releases, read_release_file
from segpipe_tests.store.gated_stores import Gate, first_commit_write, marker_write

DAY_ONE = dt.datetime(2026, 12, 1, 9, 30, tzinfo=dt.UTC)
TAXONOMY = "street-v1-ab12cd34"
PAUSE_SECONDS = 2.0  # how long the first publisher waits at its marker for the second to finish
JOIN_SECONDS = 120.0

MakeStore = Callable[[Gate], fsspec.AbstractFileSystem]


def never(_key: str) -> bool:
    return False


def version(sequence: int) -> str:
    return f"2026-12-01.{sequence}-tax-{TAXONOMY}"


def archive_of(text: str) -> bytes:
    """A small, deterministic ZIP: the same text gives the same bytes."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr(zipfile.ZipInfo("meta.json", date_time=(2026, 12, 1, 0, 0, 0)), text)
    return out.getvalue()


def publish(fs: fsspec.AbstractFileSystem, root: str, text: str, run_id: str, compared: list,
            read_previous: Callable[[dict], object] | None = None) -> PublishedRelease:
    """Publish a release whose content is `text`; `compared` records the version it was compared with,
    and `read_previous` reads from that release as the release build reads its manifest."""
    staging = open_staging(fs, root, "demo", DAY_ONE)
    staging.put_bytes("dataset.zip", archive_of(text))
    staging.put_bytes("manifest.parquet", f"manifest of {text}".encode())

    def compare_with(previous: dict | None) -> None:
        compared.append(None if previous is None else previous["version"])
        if previous is not None and read_previous is not None:
            read_previous(previous)
        staging.put_bytes("diff.json", orjson.dumps({"previous_version": compared[-1]}))

    return publish_release(fs, root, "demo", staging, "dataset.zip", {"run_id": run_id},
                           content_digest=f"digest-{text}", taxonomy_version=TAXONOMY, now=DAY_ONE,
                           compare_with=compare_with)


def run_both(first: Callable[[], PublishedRelease], second: Callable[[], PublishedRelease],
             second_starts: threading.Event | None = None) -> list[PublishedRelease]:
    """Run the two publishers on their own threads (the second once `second_starts` is set); their
    results, or the exception either raised."""
    results: list = [None, None]

    def run(i: int, job: Callable[[], PublishedRelease]) -> None:
        try:
            results[i] = job()
        except BaseException as exc:  # noqa: BLE001 - the test reports what each publisher did
            results[i] = exc

    threads = [threading.Thread(target=run, args=(0, first)), threading.Thread(target=run, args=(1, second))]
    threads[0].start()
    if second_starts is not None:
        assert second_starts.wait(JOIN_SECONDS), "the first publisher never reached its gate"
    threads[1].start()
    for thread in threads:
        thread.join(JOIN_SECONDS)
    raised = [r for r in results if isinstance(r, BaseException)]
    assert not raised, "".join(line for exc in raised for line in traceback.format_exception(exc))
    return results


def committed_diffs(fs: fsspec.AbstractFileSystem, root: str) -> dict[str, str | None]:
    """Each committed version and the version its diff.json (checked against its marker) names."""
    return {m["version"]: orjson.loads(read_release_file(fs, root, m, "diff.json"))["previous_version"]
            for m in list_releases(fs, root, "demo")}


def race_at_the_claim(make_store: MakeStore, root: str, same_content: bool) -> None:
    """Both publishers have read the store and stand right before the claim; one wins it."""
    publish(make_store(Gate(never, lambda: None)), root, "base", "run-0", [])
    barrier = threading.Barrier(2, timeout=JOIN_SECONDS)
    texts = ["same", "same"] if same_content else ["alpha", "beta"]
    compared: list[list] = [[], []]

    def racer(i: int) -> Callable[[], PublishedRelease]:
        return lambda: publish(make_store(Gate(first_commit_write, barrier.wait)), root, texts[i], f"run-{i + 1}",
                               compared[i])

    results = run_both(racer(0), racer(1))

    reader = make_store(Gate(never, lambda: None))
    [winner] = [i for i in range(2) if results[i].newly_published and results[i].version == version(2)]
    loser = 1 - winner
    assert compared[winner] == [version(1)]
    if same_content:  # the loser waits for the winner's release and reports it
        assert committed_diffs(reader, root) == {version(1): None, version(2): version(1)}
        assert (results[loser].version, results[loser].newly_published) == (version(2), False)
        assert results[loser].marker == results[winner].marker
        assert compared[loser] == [version(2)]
    else:  # the loser takes the next sequence, compared with the winner's release
        assert committed_diffs(reader, root) == {version(1): None, version(2): version(1), version(3): version(2)}
        assert (results[loser].version, results[loser].newly_published) == (version(3), True)
        assert compared[loser] == [version(2)]
        assert read_pointer(reader, f"{root}/releases/demo/{LATEST_POINTER}")["version"] == version(3)


def overtaking_an_unfinished_publisher(make_store: MakeStore, root: str, same_content: bool) -> None:
    """The first publisher has written its version's objects but not its marker when the second
    starts and reads the store: the second must not publish past it."""
    publish(make_store(Gate(never, lambda: None)), root, "base", "run-0", [])
    paused, second_done = threading.Event(), threading.Event()

    def pause() -> None:
        paused.set()
        second_done.wait(PAUSE_SECONDS)

    def second() -> PublishedRelease:
        try:
            return publish(make_store(Gate(never, lambda: None)), root, "alpha" if same_content else "beta",
                           "run-2", compared[1])
        finally:
            second_done.set()

    compared: list[list] = [[], []]
    first, later = run_both(lambda: publish(make_store(Gate(marker_write, pause)), root, "alpha", "run-1", compared[0]),
                            second, second_starts=paused)
    reader = make_store(Gate(never, lambda: None))
    assert (first.version, first.newly_published, compared[0]) == (version(2), True, [version(1)])
    if same_content:
        assert committed_diffs(reader, root) == {version(1): None, version(2): version(1)}
        assert (later.version, later.newly_published, later.marker) == (version(2), False, first.marker)
    else:
        assert committed_diffs(reader, root) == {version(1): None, version(2): version(1), version(3): version(2)}
        assert (later.version, later.newly_published, compared[1]) == (version(3), True, [version(2)])
