"""A batch that failed does not block the others' release; `segpipe batch remove` and `retry` move it
on; a damaged mask in the store is rewritten by the batch's next run. Real builds on the tiny demo."""

import json
import os
import shutil
from pathlib import Path

import polars as pl
import pytest

from segpipe.cli.main import main
from segpipe_tests.conftest import tiny_demo_pipeline

pytestmark = pytest.mark.slow
BAD = "b004_vendor_z"


@pytest.fixture
def project(tiny_demo, tmp_path, monkeypatch) -> Path:
    """The tiny demo as a project, plus a batch whose source no taxonomy rule maps: its run fails."""
    shutil.copytree(Path(tiny_demo.landing_root), tmp_path / "landing")
    bad = tmp_path / "landing" / BAD
    shutil.copytree(next((tmp_path / "landing").glob("b001_*")), bad)
    meta = json.loads((bad / "batch.json").read_text())
    (bad / "batch.json").write_text(json.dumps({**meta, "batch_id": BAD, "source": "vendor_z"}))
    (tmp_path / "landing" / "b005_linked").symlink_to(bad)  # never read: links are not followed
    (tmp_path / "pipeline.yaml").write_text(tiny_demo_pipeline())
    (tmp_path / "dagster").mkdir()
    (tmp_path / "dagster" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    monkeypatch.setenv("SEGPIPE_HOME", str(tmp_path))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    for name in ("SEGPIPE_LANDING_ROOT", "SEGPIPE_STORAGE_ROOT", "SEGPIPE_TAXONOMY", "SEGPIPE_PIPELINE_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    shutil.copy(Path(tiny_demo.landing_root).parent / "taxonomy.yaml", tmp_path / "taxonomy.yaml")
    return tmp_path


def _released_version(out: str) -> str:
    return next(line for line in out.splitlines() if line.startswith("release version: ")).split()[2]


def test_a_failed_batch_whose_folder_is_gone_does_not_block_the_release_then_remove_and_retry(project, tiny_demo,
                                                                                             capsys):
    assert main(["build"]) == 2  # the failed batch's ConfigError; the others are released all the same
    first = capsys.readouterr()
    assert "release version: " in first.err and f"  {BAD}: failed in run " in first.err
    assert "step mapped_shapes: ConfigError: " in first.err
    assert f"  {project}/landing/b005_linked: is a symbolic link; links are never followed" in first.err

    aside = project / "aside"
    (project / "landing" / BAD).rename(aside)
    assert main(["build"]) == 0
    second = capsys.readouterr().out
    assert "NOT RELEASED: 1 batch (not in any count above)" in second
    counts = next(line for line in second.splitlines() if line.startswith("entries: "))
    assert counts in first.err  # the same release: the failed batch is in no count

    assert main(["batches"]) == 0
    listing = capsys.readouterr().out.splitlines()
    batches = sorted([*((batch, "ingested") for batch in tiny_demo.batch_ids), (BAD, "failed")])
    assert [tuple(line.split()[:2]) for line in listing[1:len(batches) + 1]] == batches
    assert listing[len(batches) + 1:len(batches) + 3] == ["NOT A BATCH: 1 entry of the landing zone, not read (not in any count above)",
                            f"  {project}/landing/b005_linked: is a symbolic link; links are never followed, so a "
                            "batch cannot read files from outside the landing zone"]

    assert main(["batch", "remove", "b999_unknown"]) == 1
    assert "no batch 'b999_unknown'" in capsys.readouterr().err
    tables = project / "store" / "tables"
    accepted, quarantined = (pl.read_parquet(tables / table / f"{BAD}.parquet").height
                             for table in ("batch_images", "batch_quarantine"))
    assert accepted and quarantined  # its ingest ran: a copy of b001, with b001's broken files
    assert main(["batch", "remove", BAD]) == 0
    removed = capsys.readouterr().out
    assert removed.startswith(  # ingest's tables and label_masks': its mapped_shapes failed
        f"batch {BAD}: removed (was failed: {accepted} entries accepted, {quarantined} quarantined); 5 tables deleted")
    [record] = (project / "store" / "batches" / "removed" / BAD).glob("*.json")
    assert json.loads(record.read_text())["state"] == "failed" and str(record) in removed
    assert not list((project / "store" / "tables").glob(f"*/{BAD}.parquet"))

    aside.rename(project / "landing" / BAD)  # landed again: a removed batch stays out of builds
    assert main(["build"]) == 0
    third = capsys.readouterr().out
    assert f"batch {BAD}: removed" in third and "NOT RELEASED" not in third
    main(["batches"])
    assert [BAD, "removed"] in [line.split()[:2] for line in capsys.readouterr().out.splitlines()]

    meta = json.loads((project / "landing" / BAD / "batch.json").read_text())
    (project / "landing" / BAD / "batch.json").write_text(json.dumps({**meta, "source": "vendor_a"}))
    assert main(["batch", "retry", BAD]) == 0
    assert f"batch {BAD}: ingested, mapped and drawn" in capsys.readouterr().out
    assert main(["build"]) == 0
    fourth = capsys.readouterr().out
    assert "NOT RELEASED" not in fourth and _released_version(fourth) != _released_version(second)
    assert "LANDED AGAIN" not in fourth


def test_a_batch_landed_again_after_its_ingest_is_named_by_build_and_batches_until_retried(project, capsys):
    """A re-delivery into an ingested batch's folder (a new batch.json) is not read by itself: build
    says so and releases what was read, batches shows it changed, and a retry reads it."""
    shutil.rmtree(project / "landing" / BAD)
    assert main(["build"]) == 0
    first = capsys.readouterr().out
    redelivered = next(iter(sorted((project / "landing").glob("b002_*"))))
    marker = redelivered / "batch.json"
    later = marker.stat().st_mtime + 3600
    os.utime(marker, (later, later))

    assert main(["build"]) == 0
    second = capsys.readouterr().out
    assert "LANDED AGAIN: 1 batch changed in the landing zone after it was ingested" in second
    assert f"\n  {redelivered.name}: landed again (" in second
    assert f"`segpipe batch retry {redelivered.name}` reads it again" in second
    assert _released_version(second) == _released_version(first)  # what was read, released again
    assert main(["batches"]) == 0
    assert [redelivered.name, "changed"] in [line.split()[:2] for line in capsys.readouterr().out.splitlines()]

    assert main(["batch", "retry", redelivered.name]) == 0
    capsys.readouterr()
    assert main(["build"]) == 0
    assert "LANDED AGAIN" not in capsys.readouterr().out
    main(["batches"])
    assert [redelivered.name, "ingested"] in [line.split()[:2] for line in capsys.readouterr().out.splitlines()]


def test_a_truncated_mask_fails_the_release_naming_its_key_and_the_batch_retry_rewrites_it(project, capsys):
    shutil.rmtree(project / "landing" / BAD)
    assert main(["build"]) == 0
    capsys.readouterr()
    masks = {mask: mask.read_bytes() for mask in (project / "store" / "masks" / "b002_vendor_b_bob").glob("*.png")}
    for mask in masks:
        mask.write_bytes(b"")  # what ENOSPC left behind
    assert main(["build"]) == 1
    out = capsys.readouterr().out
    assert any(f"{mask.relative_to(project / 'store')}: not a PNG (0 bytes" in out for mask in masks)
    assert "segpipe batch retry b002_vendor_b_bob" in out

    assert main(["batch", "retry", "b002_vendor_b_bob"]) == 0
    assert {mask: mask.read_bytes() for mask in masks} == masks
    assert main(["build"]) == 0
