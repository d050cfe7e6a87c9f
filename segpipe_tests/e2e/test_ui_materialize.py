"""The Dagster UI as a person uses it: `dagster dev`, a browser, one click on Materialize all.

Chromium is Debian's (`make install` installs it); Playwright drives it and never downloads a browser.
"""

import json
import re
import time
import zipfile
from pathlib import Path
from urllib.parse import urlparse

import pytest
from playwright.sync_api import expect, sync_playwright

from segpipe.core.ingest.pseudonym import annotator_key, batch_pseudonym
from segpipe.demo import DemoSummary
from segpipe.store.keys import LATEST_POINTER, RELEASE_MARKER, archive_name
from segpipe_tests.conftest import tiny_demo_pipeline
from segpipe_tests.dagster_dev_server import REPO_ROOT, DagsterDevServer, run_dagster_dev

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


def _materialize_all_in_the_ui(server: DagsterDevServer, n_partitions: int) -> str:
    """Open the global asset graph, dismiss the first-run dialog, Materialize all over all partitions,
    follow the toast to the backfill page and wait there; returns the backfill id (from that page's URL)."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1400})
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
            browser.close()


def test_materialize_all_in_the_ui_publishes_a_release(tiny_demo: DemoSummary, tmp_path: Path):
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} missing: run `make install` (it installs Debian's chromium package)")
    pipeline = tmp_path / "pipeline.yaml"
    pipeline.write_text(tiny_demo_pipeline())
    store = tmp_path / "store"
    env = {
        "SEGPIPE_HOME": str(tmp_path / "home"),
        "SEGPIPE_LANDING_ROOT": tiny_demo.landing_root,
        "SEGPIPE_STORAGE_ROOT": str(store),
        "SEGPIPE_PIPELINE_CONFIG": str(pipeline),
        "SEGPIPE_TAXONOMY": str(tiny_demo.taxonomy_path),
    }
    batch_ids = sorted(tiny_demo.batch_ids)
    with run_dagster_dev(env) as server:
        _wait_for_landing_sensor(server, batch_ids)
        backfill_id = _materialize_all_in_the_ui(server, len(batch_ids))
        backfill = server.graphql(BACKFILL, {"id": backfill_id})["partitionBackfillOrError"]

    assert backfill["runs"] and {run["status"] for run in backfill["runs"]} == {"SUCCESS"}
    releases = store / "releases" / DATASET
    latest = json.loads((releases / LATEST_POINTER).read_text())
    marker = json.loads((releases / latest["version"] / RELEASE_MARKER).read_text())
    assert (marker["version"], marker["sequence"], marker["dataset"]) == (latest["version"], 1, DATASET)
    assert marker["run_id"] in {run["runId"] for run in backfill["runs"]}
    with zipfile.ZipFile(releases / latest["version"] / archive_name(DATASET, latest["version"])) as archive:
        meta = json.loads(archive.read("meta.json"))
    assert meta["lineage"]["run_id"] == marker["run_id"]
    key = annotator_key(None, tmp_path / "home" / "pseudonym.key")
    assert meta["lineage"]["source_batches"] == sorted(batch_pseudonym(batch, key) for batch in batch_ids)
    assert meta["counts"] == marker["counts"]
    counts = meta["counts"]
    assert counts["input"] == counts["released"] + counts["filtered"] + counts["quarantined"] > 0
    assert SCREENSHOT.stat().st_size > 0
