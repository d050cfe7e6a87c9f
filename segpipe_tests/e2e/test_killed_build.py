"""Fault build_sigkilled_mid_drawing: `segpipe build` is killed with SIGKILL (no handler runs, as the
kernel's OOM killer or a power cut would) once it has drawn its first masks, then run again. The
kill leaves no release visible, the rerun finishes with every entry accounted for, and its release
holds exactly what an uninterrupted build of the same landing zone releases. Real builds on the tiny
demo, each in a process of its own."""

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import fsspec
import polars as pl
import pytest

from segpipe.store.release_read import list_releases
from segpipe_tests.conftest import tiny_demo_pipeline

pytestmark = pytest.mark.slow
BUILD_TIMEOUT_S = 900
KEY = "5e9f1c" * 8  # one pseudonym key for both builds, as one project keeps its key


def project(tiny_demo, folder: Path) -> dict[str, str]:
    """The tiny demo as a project of its own; the environment that points segpipe at it."""
    shutil.copytree(Path(tiny_demo.landing_root), folder / "landing")
    (folder / "pipeline.yaml").write_text(tiny_demo_pipeline())
    shutil.copy(Path(tiny_demo.landing_root).parent / "taxonomy.yaml", folder / "taxonomy.yaml")
    (folder / "dagster").mkdir()
    (folder / "dagster" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SEGPIPE_", "DAGSTER_"))}
    return {**env, "SEGPIPE_HOME": str(folder), "DAGSTER_HOME": str(folder / "dagster"), "SEGPIPE_PSEUDONYM_KEY": KEY}


def build(env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "segpipe.cli.main", "build"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)


def finished(process: subprocess.Popen) -> str:
    out, _ = process.communicate(timeout=BUILD_TIMEOUT_S)
    assert process.returncode == 0, out[-3000:]
    return out


def releases(folder: Path) -> list[dict]:
    """The committed releases of the project's one dataset."""
    built = folder / "store" / "releases"
    datasets = [path.name for path in built.iterdir()] if built.is_dir() else []
    return [marker for name in datasets for marker in list_releases(fsspec.filesystem("file"), str(folder / "store"), name)]


def published(folder: Path, marker: dict) -> Path:
    return folder / "store" / "releases" / marker["dataset"] / marker["version"]


def entry_counts(out: str) -> str:
    return next(line for line in out.splitlines() if line.startswith("entries: "))


def unstamped(meta: dict) -> dict:
    """meta.json without the build's stamp (its run id and time), the one thing two builds of one content differ in."""
    return {**meta, "lineage": {k: v for k, v in meta["lineage"].items() if k not in ("run_id", "created_at")}}


def assert_same_release_apart_from_stamp(reference: Path, folder: Path) -> None:
    """The one release in `folder` is the one in `reference` file for file, member for member, but for
    the build's stamp: meta.json, and the checksums and member index that hold its SHA-256."""
    [first], [again] = releases(reference), releases(folder)
    assert again["content_digest"] == first["content_digest"]
    archive = next(name for name in first["files"] if name.endswith(".zip"))
    stamped = {archive, "members.parquet"}  # the member index holds meta.json's and SHA256SUMS' SHA-256 too
    assert {n: d for n, d in again["files"].items() if n not in stamped} == {
        n: d for n, d in first["files"].items() if n not in stamped}
    members = [pl.read_parquet(published(root, marker) / "members.parquet")
               for root, marker in ((reference, first), (folder, again))]
    unequal = members[0].join(members[1], on="path", how="full", suffix="_again").filter(
        pl.col("sha256").ne_missing(pl.col("sha256_again")))
    assert sorted(unequal["path"]) == ["SHA256SUMS", "meta.json"]
    with zipfile.ZipFile(published(reference, first) / archive) as ours, \
            zipfile.ZipFile(published(folder, again) / archive) as theirs:
        assert ours.namelist() == theirs.namelist()
        differing = sorted(name for name in ours.namelist() if ours.read(name) != theirs.read(name))
        metas = [json.loads(zipped.read("meta.json")) for zipped in (ours, theirs)]
    assert differing == ["SHA256SUMS", "meta.json"]  # the build's stamp in meta.json, and so its checksum
    assert unstamped(metas[0]) == unstamped(metas[1])


def test_fault_build_sigkilled_mid_drawing_then_rerun(tiny_demo, tmp_path):
    folder = tmp_path / "project"  # both builds at one path: released tables name where batches landed
    reference = finished(build(project(tiny_demo, folder)))
    folder.rename(tmp_path / "reference")
    env = project(tiny_demo, folder)
    killed = build(env)
    drawn = threading.Event()

    def kill_once_masks_are_drawn() -> None:
        while killed.poll() is None and not drawn.is_set():
            if any((folder / "store" / "masks").rglob("*.png")):
                os.killpg(killed.pid, signal.SIGKILL)
                drawn.set()
                return
            drawn.wait(0.05)

    watcher = threading.Thread(target=kill_once_masks_are_drawn)
    watcher.start()
    killed.communicate(timeout=BUILD_TIMEOUT_S)
    watcher.join()
    assert drawn.is_set() and killed.returncode == -signal.SIGKILL, "the build ended before it was killed"
    assert releases(folder) == []

    rerun = finished(build(env))
    assert entry_counts(rerun) == entry_counts(reference)
    assert_same_release_apart_from_stamp(tmp_path / "reference", folder)
