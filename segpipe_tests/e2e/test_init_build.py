"""A user's own export, with no metadata at all, to a release: `segpipe init`, then `segpipe build --project`,
through the command as a user runs it (Dagster's run history in the project, as without DAGSTER_HOME); and
the same export built without init, on the packaged placeholder taxonomy, stops early naming its labels."""

import io
import json
import zipfile

import dagster as dg
import polars as pl
import pytest

from segpipe.cli.main import main
from segpipe.core.ingest.pseudonym import annotator_key, batch_pseudonym
from segpipe_tests.labelme_export import LABELS, write_labelme_export

pytestmark = pytest.mark.slow

N_IMAGES = 12


def test_init_then_build_releases_every_image_of_an_export_without_metadata_under_its_own_labels(user_shell, capsys):
    export = write_labelme_export(user_shell / "parts", n_images=N_IMAGES)
    project = user_shell / "my-dataset"
    assert main(["init", str(export), "--into", str(project), "--licence", "CC-BY-4.0", "--origin",
                 "https://example.org/parts", "--attribution", "Example Lab"]) == 0
    assert capsys.readouterr().out.rstrip().endswith(f"next: segpipe build --project {project}")
    assert main(["build", "--project", str(project)]) == 0
    printed = capsys.readouterr().out
    assert f"entries: {N_IMAGES} in = {N_IMAGES} released + 0 filtered + 0 quarantined" in printed
    assert "honeypot leaderboard (mean IoU vs gold): none: no gold batch" in printed  # never an empty list
    [archive] = (project / "store" / "releases" / "parts").glob("*/parts-*.zip")
    with zipfile.ZipFile(archive) as release:
        meta = json.loads(release.read("meta.json"))
        index = pl.read_csv(io.BytesIO(release.read("index.csv")))
        datasheet = release.read("README.md").decode()
    assert sorted(index["original_file_name"]) == sorted(p.name for p in export.glob("*.png"))
    assert index["sequence_id"].null_count() == index["time_of_day"].null_count() == N_IMAGES
    assert set(index["split"]) == {"train", "val", "test"}
    assert {c["name"] for c in meta["classes"]} == {"part", *LABELS}
    assert all(meta["class_pixels"][name] > 0 for name in LABELS)
    assert (project / "pseudonym.key").is_file()
    parts = batch_pseudonym("parts", annotator_key(None, project / "pseudonym.key"))
    assert meta["sources"] == [{"batch_id": parts, "images": N_IMAGES, "source": "labelme", "licence": "CC-BY-4.0",
                                "origin": "https://example.org/parts", "attribution": "Example Lab"}]
    assert "Every source batch states the licence CC-BY-4.0." in datasheet
    assert f"| labelme | CC-BY-4.0 | https://example.org/parts | Example Lab | {parts} | 12 |" in datasheet
    assert (project / "dagster_home" / "dagster.yaml").is_file()


def test_a_build_whose_taxonomy_maps_no_label_stops_after_ingestion_naming_the_labels(user_shell, capsys):
    """No init: the batch lands by hand and the packaged taxonomy, which maps nothing, applies."""
    project = user_shell / "plain"
    batch = write_labelme_export(project / "landing" / "parts", n_images=4)
    (batch / "batch.json").write_text("{}")
    assert main(["build", "--project", str(project)]) == 2
    error = capsys.readouterr().err
    assert "no label was mapped to a class in batch 'parts'" in error
    assert all(f"'{label}'" in error for label in ("part", *LABELS))
    assert "the taxonomy has no rules for source 'labelme'" in error
    with dg.DagsterInstance.from_config(str(project / "dagster_home")) as instance:
        jobs = {run.job_name: run.status for run in instance.get_runs()}
    assert jobs == {"taxonomy_job": dg.DagsterRunStatus.SUCCESS, "batch_job": dg.DagsterRunStatus.FAILURE}
    assert not (project / "store" / "releases").exists()
