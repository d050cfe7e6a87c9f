"""Fault disk_full_during_ingest: the ingest asset writes a batch's images into a local store whose
disk refuses the bytes. The kernel refuses them for real: the run is a process of its own with a
file-size limit (RLIMIT_FSIZE, EFBIG), the same refusal as a full disk (ENOSPC) for the writer. The
step fails at once naming the cause (a full disk does not empty itself between retries), no
partly written image is left under its name, no table of the batch is written, and once the space
is there the rerun accounts for every image."""

import hashlib
import io
import json
import subprocess
import sys
from pathlib import Path

import dagster as dg
import numpy as np
from PIL import Image

from segpipe.defs.ingest.assets import ingest_annotation_batch
from segpipe.io.annotator_pseudonyms import AnnotatorPseudonyms
from segpipe_tests.conftest import PACKAGE_PIPELINE_CONFIG
from segpipe.io.object_store import LandingZone, ObjectStore
from segpipe.io.parquet_io_manager import PolarsParquetIOManager

BATCH = "b001"
STEP = "ingest_annotation_batch"
IMAGES = 4
WIDTH, HEIGHT = 640, 480  # noise: each PNG about 900 KB, over the limit below
FILE_SIZE_LIMIT = 512 * 1024  # over what the Dagster instance's databases reach in one run


def landed_batch(landing: Path) -> set[str]:
    """A LabelMe batch of IMAGES noise PNGs, each with a polygon over its frame; the image names."""
    rng = np.random.default_rng(7)
    folder = landing / BATCH
    folder.mkdir(parents=True)
    for i in range(IMAGES):
        out = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)).save(out, format="PNG")
        (folder / f"scene_{i}.png").write_bytes(out.getvalue())
        shape = {"label": "road", "points": [[0, 0], [WIDTH, 0], [WIDTH, HEIGHT]], "shape_type": "polygon"}
        (folder / f"scene_{i}.json").write_text(json.dumps({
            "version": "5.5.0", "flags": {}, "shapes": [shape], "imagePath": f"scene_{i}.png", "imageData": None,
            "imageHeight": HEIGHT, "imageWidth": WIDTH}))
    (folder / "batch.json").write_text("{}")
    return {f"scene_{i}.png" for i in range(IMAGES)}


def ingest(work: Path) -> dg.ExecuteInProcessResult:
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("annotation_batches", [BATCH])
        return dg.materialize(
            [ingest_annotation_batch], partition_key=BATCH, instance=instance, raise_on_error=False,
            resources={
                "landing_zone": LandingZone(root=str(work / "landing")),
                "object_store": ObjectStore(root=str(work / "store")),
                "annotator_pseudonyms": AnnotatorPseudonyms(key_file=str(work / "pseudonym.key")),
                "pipeline_config": PACKAGE_PIPELINE_CONFIG,
                "io_manager": PolarsParquetIOManager(base_path=str(work / "store" / "tables")),
            },
        )


def step_errors(result: dg.ExecuteInProcessResult, kind: dg.DagsterEventType) -> list[str]:
    return [e.event_specific_data.error.to_string() for e in result.all_events
            if e.event_type == kind and e.step_key == STEP]


def ingest_on_a_full_disk(work: str) -> None:
    """In the limited process: the run, reported as one JSON line."""
    result = ingest(Path(work))
    print(json.dumps({"success": result.success, "retries": step_errors(result, dg.DagsterEventType.STEP_UP_FOR_RETRY),
                      "failures": step_errors(result, dg.DagsterEventType.STEP_FAILURE)}))


LIMITED = f"""
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # refuse the write with EFBIG instead of killing the process
resource.setrlimit(resource.RLIMIT_FSIZE, ({FILE_SIZE_LIMIT}, {FILE_SIZE_LIMIT}))
from segpipe_tests.defs.test_ingest_disk_full import ingest_on_a_full_disk
ingest_on_a_full_disk(sys.argv[1])
"""


def test_fault_disk_full_during_ingest(tmp_path):
    images = landed_batch(tmp_path / "landing")
    done = subprocess.run([sys.executable, "-c", LIMITED, str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.splitlines()[-1])
    assert not report["success"] and report["retries"] == []
    [failure] = report["failures"]
    assert f"OSError: [Errno 27] {tmp_path}/store/images/" in failure, failure
    assert "File too large: the disk under" in failure and "free space there, then rerun the step" in failure
    written = [p for p in (tmp_path / "store").rglob("*") if p.is_file()]
    assert [p for p in written if p.suffix != ".png"] == [], "a partial write or a table of the failed batch"
    assert all(hashlib.sha256(p.read_bytes()).hexdigest() == p.stem for p in written), "a partly written image"

    result = ingest(tmp_path)  # the space is back
    assert result.success
    released = result.output_for_node(STEP, "batch_images")[BATCH]
    quarantined = result.output_for_node(STEP, "batch_quarantine")[BATCH]
    assert sorted([*released["file_name"], *quarantined["file_name"]]) == sorted(images)
    for key, image_id in released.select("image_key", "image_id").rows():
        assert hashlib.sha256((tmp_path / "store" / key).read_bytes()).hexdigest() == image_id
