"""The Dagster UI as a person uses it: `dagster dev` over the tiny demo and one planted batch of which
nothing is usable, a browser, one click on Materialize all; then a walk through the screens of
docs/ui.md, whose screenshots it takes (segpipe_tests/e2e/ui_screens.py says how they are kept true).

One server and one build serve both tests (module-scoped fixtures): the build is most of the time.
Chromium is Debian's (`make install` installs it); Playwright drives it and never downloads a browser.
"""

import json
import re
import shutil
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import pytest
from playwright.sync_api import Browser, expect, sync_playwright

from segpipe.core.ingest.pseudonym import annotator_key, batch_pseudonym
from segpipe.demo import DemoSummary
from segpipe.store.keys import LATEST_POINTER, RELEASE_MARKER, archive_name
from segpipe_tests.conftest import tiny_demo_pipeline
from segpipe_tests.dagster_dev_server import REPO_ROOT, DagsterDevServer, run_dagster_dev
from segpipe_tests.e2e import ui_tour
from segpipe_tests.e2e.ui_screens import VIEWPORT, ScreenBook

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
# Without the background-networking flags Chromium keeps dialling Google services, which a closed network refuses.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]  # fmt: skip
SCREENSHOT = REPO_ROOT / ".segpipe" / "test-artifacts" / "ui-materialize.png"
DATASET = "street-demo"
SENSOR_TIMEOUT_S = 300.0
BACKFILL_TIMEOUT_S = 1200.0
UI_TIMEOUT_MS = 60_000
PLAYWRIGHT_EXPECT_TIMEOUT_MS = 5_000  # Playwright's default
# A copy of a demo batch whose every image is cut in half: ingested all the same, nothing of it usable.
BAD_BATCH, BAD_BATCH_FROM = "b005_truncated_jpegs", "b001_vendor_a_alice"
WARN_CHECK, BLOCKING_CHECK = "polygon_self_intersection", "mask_matches_image_size"
GROUPS = "query { assetNodes { groupName } }"
PARTITIONS_AND_RUNS = """
query { assetNodeOrError(assetKey: {path: ["batch_files"]}) { ... on AssetNode { partitionKeys } }
  runsOrError { ... on Runs { results { runId status } } } }
"""
TERMINAL_RUN = {"SUCCESS", "FAILURE", "CANCELED"}
BACKFILL = """
query ($id: String!) { partitionBackfillOrError(backfillId: $id) {
  ... on PartitionBackfill { status runs(limit: 50) { runId status } } } }
"""
TERMINAL_BACKFILL = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}


def _wait_for_landing_sensor(server: DagsterDevServer, batch_ids: list[str]) -> None:
    """The landing sensor registers every demo batch (and runs the newest); wait until it has and its run ended,
    so the backfill does not race the sensor's run over the same partition."""
    deadline = time.monotonic() + SENSOR_TIMEOUT_S
    while time.monotonic() < deadline:
        data = server.graphql(PARTITIONS_AND_RUNS)
        runs = data["runsOrError"]["results"]
        if sorted(data["assetNodeOrError"]["partitionKeys"]) == batch_ids and runs:
            if all(run["status"] in TERMINAL_RUN for run in runs):
                return
        time.sleep(2.0)
    pytest.fail(f"the landing sensor did not register {batch_ids} in time: {data}\n{server.log_tail()}")


def _wait_for_backfill(server: DagsterDevServer, backfill_id: str) -> dict:
    deadline = time.monotonic() + BACKFILL_TIMEOUT_S
    while time.monotonic() < deadline:
        backfill = server.graphql(BACKFILL, {"id": backfill_id})["partitionBackfillOrError"]
        if backfill["status"] in TERMINAL_BACKFILL:
            return backfill
        time.sleep(3.0)
    pytest.fail(f"backfill {backfill_id} still {backfill['status']} after {BACKFILL_TIMEOUT_S:.0f}s\n"
                f"{server.log_tail()}")


def _backfill_row(page, asset: str):
    """One asset's row on the backfill page: the widest element around its link that holds no other asset's link
    (the rows are a virtualized grid of divs, not a table)."""
    link = page.locator(f'a[href="/assets/{asset}"]')
    return link.locator("xpath=ancestor::div[count(.//a[starts-with(@href, '/assets/')]) = 1][last()]")


def _materialize_all_in_the_ui(browser: Browser, server: DagsterDevServer, n_partitions: int) -> str:
    """Open the global asset graph, dismiss the first-run dialog, Materialize all over all partitions,
    follow the toast to the backfill page and wait there; returns the backfill id (from that page's URL)."""
    context = browser.new_context(viewport={"width": 1600, "height": 1400})
    try:
        page = context.new_page()
        page.set_default_timeout(UI_TIMEOUT_MS)
        page.goto(f"{server.url}/asset-groups")
        welcome = page.get_by_text("Join the Dagster community")
        expect(welcome).to_be_visible(timeout=UI_TIMEOUT_MS)  # a fresh DAGSTER_HOME's first visit
        page.get_by_role("button", name="Skip").click()
        expect(welcome).to_be_hidden(timeout=UI_TIMEOUT_MS)

        page.get_by_role("button", name="Materialize all…").click()
        dialog = page.get_by_role("dialog")
        expect(dialog.get_by_text(re.compile(r"Launch runs to materialize \d+ assets"))).to_be_visible(
            timeout=UI_TIMEOUT_MS)
        dialog.get_by_role("button", name="All", exact=True).click()
        expect(dialog.get_by_text(f"{n_partitions} partitions", exact=True)).to_be_visible(timeout=UI_TIMEOUT_MS)
        dialog.get_by_role("button", name="Launch backfill").click()

        expect(page.get_by_text("Created backfill")).to_be_visible(timeout=UI_TIMEOUT_MS)
        page.get_by_role("link", name="View", exact=True).click()
        page.wait_for_url("**/runs/b/*")
        backfill_id = urlparse(page.url).path.rstrip("/").rsplit("/", 1)[-1]

        backfill = _wait_for_backfill(server, backfill_id)
        assert backfill["status"] == "COMPLETED_SUCCESS", backfill
        page.reload()
        first_step, last_step = (_backfill_row(page, asset) for asset in ("batch_files", "dataset_release"))
        expect(first_step).to_contain_text("100% completed", timeout=UI_TIMEOUT_MS)
        expect(last_step).to_contain_text(re.compile(r"100% completed.*Succeeded"), timeout=UI_TIMEOUT_MS)
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOT))
        return backfill_id
    finally:
        context.close()


def _land_a_bad_batch(landing: Path) -> int:
    """Copy a demo batch as BAD_BATCH with every image cut in half, its batch.json written last so the
    landing sensor runs it first; returns how many images it has."""
    bad = landing / BAD_BATCH
    shutil.copytree(landing / BAD_BATCH_FROM, bad)
    images = sorted((bad / "images").rglob("*.jpg"))
    for image in images:
        data = image.read_bytes()
        image.write_bytes(data[:len(data) // 2])
    manifest = json.loads((bad / "batch.json").read_text())
    (bad / "batch.json").write_text(json.dumps({**manifest, "batch_id": BAD_BATCH}))
    return len(images)


@dataclass(frozen=True)
class UiProject:
    server: DagsterDevServer
    root: Path
    batch_ids: list[str]
    bad_batch_images: int


@pytest.fixture(scope="module")
def ui_project(tiny_demo: DemoSummary, tmp_path_factory: pytest.TempPathFactory) -> Iterator[UiProject]:
    """`dagster dev` over a copy of the tiny demo's landing zone plus the bad batch, once the landing sensor
    has registered every batch and run the newest (the bad one)."""
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} missing: run `make install` (it installs Debian's chromium package)")
    root = tmp_path_factory.mktemp("ui-project")
    landing = root / "landing"
    shutil.copytree(tiny_demo.landing_root, landing)
    bad_batch_images = _land_a_bad_batch(landing)
    (root / "pipeline.yaml").write_text(tiny_demo_pipeline())
    env = {
        "SEGPIPE_HOME": str(root / "home"),
        "SEGPIPE_LANDING_ROOT": str(landing),
        "SEGPIPE_STORAGE_ROOT": str(root / "store"),
        "SEGPIPE_PIPELINE_CONFIG": str(root / "pipeline.yaml"),
        "SEGPIPE_TAXONOMY": str(tiny_demo.taxonomy_path),
    }
    batch_ids = sorted([*tiny_demo.batch_ids, BAD_BATCH])
    with run_dagster_dev(env) as server:
        _wait_for_landing_sensor(server, batch_ids)
        yield UiProject(server, root, batch_ids, bad_batch_images)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def materialized(ui_project: UiProject, browser: Browser) -> dict:
    """Materialize all, clicked in the UI over every partition; the finished backfill with its runs."""
    backfill_id = _materialize_all_in_the_ui(browser, ui_project.server, len(ui_project.batch_ids))
    return ui_project.server.graphql(BACKFILL, {"id": backfill_id})["partitionBackfillOrError"]


def test_materialize_all_in_the_ui_publishes_a_release(ui_project: UiProject, materialized: dict):
    backfill, store, batch_ids = materialized, ui_project.root / "store", ui_project.batch_ids
    assert backfill["runs"] and {run["status"] for run in backfill["runs"]} == {"SUCCESS"}
    releases = store / "releases" / DATASET
    latest = json.loads((releases / LATEST_POINTER).read_text())
    marker = json.loads((releases / latest["version"] / RELEASE_MARKER).read_text())
    assert (marker["version"], marker["sequence"], marker["dataset"]) == (latest["version"], 1, DATASET)
    assert marker["run_id"] in {run["runId"] for run in backfill["runs"]}
    with zipfile.ZipFile(releases / latest["version"] / archive_name(DATASET, latest["version"])) as archive:
        meta = json.loads(archive.read("meta.json"))
    assert meta["lineage"]["run_id"] == marker["run_id"]
    key = annotator_key(None, ui_project.root / "home" / "pseudonym.key")
    released_from = [batch for batch in batch_ids if batch != BAD_BATCH]  # nothing of the bad batch is released
    assert meta["lineage"]["source_batches"] == sorted(batch_pseudonym(batch, key) for batch in released_from)
    assert meta["counts"] == marker["counts"]
    counts = meta["counts"]
    assert counts["input"] == counts["released"] + counts["filtered"] + counts["quarantined"] > 0
    assert counts["quarantined"] >= ui_project.bad_batch_images  # the bad batch is counted, not lost
    assert SCREENSHOT.stat().st_size > 0


def test_the_ui_shows_the_pictures_the_bad_batch_and_the_backfill_path_that_docs_ui_shows(
        ui_project: UiProject, materialized: dict, browser: Browser):
    """After the build: qa_report's, sampling_report's and dataset_release's pictures load, the bad batch is
    marked in Runs and on its partition, the taxonomy backfill's dialog has the buttons docs/ui.md names;
    and the committed screenshots show what was seen (else: refresh them, see ui_screens.py)."""
    server, book = ui_project.server, ScreenBook()
    groups = sorted({node["groupName"] for node in server.graphql(GROUPS)["assetNodes"]})
    context = browser.new_context(viewport=VIEWPORT)
    try:
        page = context.new_page()
        page.set_default_timeout(UI_TIMEOUT_MS)
        expect.set_options(timeout=UI_TIMEOUT_MS)  # for the tour's assertions; reset below
        page.goto(f"{server.url}/runs")
        page.get_by_role("button", name="Hide navigation").click()  # more room for what each screen shows
        ui_tour.asset_graph(page, server.url, book, groups)
        ui_tour.batch_partition(page, server.url, book, BAD_BATCH, ui_project.bad_batch_images)
        ui_tour.batch_check(page, server.url, book, BAD_BATCH)
        ui_tour.qa_pictures(page, server.url, book)
        ui_tour.qa_checks(page, server.url, book, WARN_CHECK, BLOCKING_CHECK)
        ui_tour.runs_marked(page, server.url, book, BAD_BATCH)
        ui_tour.taxonomy_backfill(page, server.url, book, len(ui_project.batch_ids))
        ui_tour.sampling_chart(page, server.url, book)
        ui_tour.release(page, server.url, book)
    finally:
        expect.set_options(timeout=PLAYWRIGHT_EXPECT_TIMEOUT_MS)
        context.close()
    book.settle()
