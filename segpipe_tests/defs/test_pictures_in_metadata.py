"""The pictures a user sees in the Dagster UI: inline PNG data URIs within their budget, with the
full-size object's location beside each, after a build of the tiny demo."""

import base64
import io
import re
import shutil
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
from PIL import Image

from segpipe.cli.local_build import run_local_build
from segpipe.core.consensus.review import REVIEW_STATUSES
from segpipe.core.qa.pictures import problem_colour
from segpipe.core.shared.pictures import hex_colour
from segpipe.core.taxonomy.model import load_taxonomy
from segpipe.definitions import defs as load_defs
from segpipe.defs.pictures import ASSET_PICTURES, CHECK_PICTURES
from segpipe.demo import DEMO_CONFIG
from segpipe.environment import current_environment
from segpipe.store.keys import TABLES_DIR
from segpipe_tests.conftest import tiny_demo_pipeline

pytestmark = pytest.mark.slow

PICTURE = re.compile(r"!\[[^\]]*\]\((data:image/png;base64,([A-Za-z0-9+/=]+))\)")
FULL_SIZE = re.compile(r"full size: `([^`]+)`")
TAXONOMY = load_taxonomy(DEMO_CONFIG / "taxonomy.yaml")


@pytest.fixture(scope="module")
def tmp(tmp_path_factory) -> Path:
    """The build's folder: its landing zone, pipeline.yaml and store."""
    return tmp_path_factory.mktemp("pictures")


@pytest.fixture(scope="module")
def instance(tiny_demo, tmp):
    with pytest.MonkeyPatch.context() as env, dg.instance_for_test() as instance:
        shutil.copytree(tiny_demo.landing_root, tmp / "landing")
        pipeline = tiny_demo_pipeline()
        assert "  min_agreement: 0.6\n" in pipeline
        # stricter than the demo's, so that fused images go to review and the queue shows their maps
        (tmp / "pipeline.yaml").write_text(pipeline.replace("  min_agreement: 0.6\n", "  min_agreement: 0.95\n"))
        env.setenv("SEGPIPE_LANDING_ROOT", str(tmp / "landing"))
        env.setenv("SEGPIPE_STORAGE_ROOT", str(tmp / "store"))
        env.setenv("SEGPIPE_TAXONOMY", str(DEMO_CONFIG / "taxonomy.yaml"))
        env.setenv("SEGPIPE_PIPELINE_CONFIG", str(tmp / "pipeline.yaml"))
        outcome = run_local_build(load_defs(), instance, current_environment())
        assert outcome.success, outcome.failed_checks
        yield instance


def metadata(instance: dg.DagsterInstance, asset: str) -> dict[str, dg.MetadataValue]:
    return instance.get_latest_materialization_event(dg.AssetKey(asset)).asset_materialization.metadata


def pictures(markdown: str, budget_bytes: int) -> list[Image.Image]:
    """Every inline picture of a Markdown value, each checked to be a whole PNG within the budget."""
    found = []
    for uri, encoded in PICTURE.findall(markdown):
        assert len(uri) <= budget_bytes
        image = Image.open(io.BytesIO(base64.b64decode(encoded, validate=True)))
        image.load()  # raises on a truncated or damaged PNG
        assert image.format == "PNG" and image.width > 0
        found.append(image)
    return found


def assert_legend_names_every_class_colour(markdown: str, problem: bool) -> None:
    assert all(f"`{hex_colour(c.color)}` | {c.name} |" in markdown for c in TAXONOMY.classes)
    assert (f"`{hex_colour(problem_colour(TAXONOMY))}` | QA problem |" in markdown) == problem
    assert len(pictures(markdown, ASSET_PICTURES.max_uri_bytes)) == len(TAXONOMY.classes) + problem
    assert "[128, 64, 128]" not in markdown and "(128, 64, 128)" not in markdown


def test_qa_report_shows_the_first_thumbnails_inline_with_their_full_size_objects_and_a_legend(instance):
    meta = metadata(instance, "qa_report")
    text = meta["thumbnails"].value
    shown = pictures(text, ASSET_PICTURES.max_uri_bytes)
    rendered = sorted(Path(meta["thumbnails_folder"].value).rglob("*.png"))  # this build's, in a store of its own
    assert rendered and len(shown) == min(len(rendered), ASSET_PICTURES.max_pictures)
    assert (f"+{len(rendered) - len(shown)} more" in text) == (len(rendered) > len(shown))
    full_size = FULL_SIZE.findall(text)
    assert len(full_size) == len(shown) and all(Path(path).is_file() for path in full_size)
    with Image.open(full_size[0]) as original:  # the inline picture is the stored one, narrowed
        assert abs(original.width / original.height - shown[0].width / shown[0].height) < 0.05
    assert isinstance(meta["thumbnails_folder"], dg.PathMetadataValue) and Path(meta["thumbnails_folder"].value).is_dir()
    assert_legend_names_every_class_colour(meta["legend"].value, problem=True)


def test_each_failing_qa_rule_shows_its_own_thumbnails(instance):
    failed = metadata(instance, "qa_report")["failures_by_rule"].value
    assert failed
    for rule in failed:
        record = instance.get_latest_asset_check_evaluation_record(dg.AssetCheckKey(dg.AssetKey("qa_report"), rule))
        check = record.event.dagster_event.event_specific_data.metadata
        if "thumbnails" not in check:  # a rule whose failures have no picture (a duplicate image, say)
            continue
        text = check["thumbnails"].value
        rendered = list((Path(metadata(instance, "qa_report")["thumbnails_folder"].value) / rule).glob("*.png"))
        assert rendered and len(pictures(text, CHECK_PICTURES.max_uri_bytes)) == min(
            len(rendered), CHECK_PICTURES.max_pictures)
        assert all(f"**{rule}: " in caption for caption in re.findall(r"\*\*[^*]+\*\*", text))
        assert hex_colour(problem_colour(TAXONOMY)) in check["problem_colour"].value


def test_sampling_report_shows_the_chart_inline_and_a_legend(instance):
    meta = metadata(instance, "sampling_report")
    [chart] = pictures(meta["chart"].value, ASSET_PICTURES.max_uri_bytes)
    assert chart.width >= 400  # a chart small enough to fit needs no narrowing to unreadable
    [path] = FULL_SIZE.findall(meta["chart"].value)
    assert Path(path).is_file()
    assert_legend_names_every_class_colour(meta["legend"].value, problem=False)


def test_dataset_release_shows_the_chart_and_legend_and_names_where_the_release_is(instance):
    meta = metadata(instance, "dataset_release")
    [chart] = pictures(meta["chart"].value, ASSET_PICTURES.max_uri_bytes)
    assert chart.width >= 400
    archive = meta["archive"].value
    assert isinstance(meta["archive"], dg.PathMetadataValue) and Path(archive).is_file()
    assert f"`sampling/distribution.png in {archive}`" in meta["chart"].value
    assert_legend_names_every_class_colour(meta["legend"].value, problem=True)


def test_the_review_queue_shows_agreement_maps_by_file_name(instance, tmp):
    meta = metadata(instance, "consensus_masks")
    text = meta["agreement_maps"].value
    shown = pictures(text, ASSET_PICTURES.max_uri_bytes)
    queued = pl.read_parquet(tmp / "store" / TABLES_DIR / "consensus_masks.parquet").filter(
        pl.col("status").is_in(REVIEW_STATUSES) & pl.col("agreement_map_key").is_not_null())
    assert queued.height and len(shown) == min(queued.height, ASSET_PICTURES.max_pictures)
    assert all(image.mode == "L" for image in shown)
    assert re.search(r"\*\*images/\S+\.jpg \(low_agreement, agreement 0\.\d\d\)\*\*", text)
    assert "white where all annotators agree" in text


def test_taxonomy_colours_are_swatches_and_hex_codes(instance):
    classes = metadata(instance, "taxonomy_spec")["classes"].value
    assert "`#804080`" in classes and "[128, 64, 128]" not in classes
    assert len(pictures(classes, ASSET_PICTURES.max_uri_bytes)) == len(TAXONOMY.classes)
