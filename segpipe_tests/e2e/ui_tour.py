"""A walk through the Dagster UI after a build, screen by screen in the order docs/ui.md tells it.

Each screen asserts what a user must see there (pictures that load, a bad batch that stands out, the
backfill dialog's real buttons), then records its screenshot with those facts in a ScreenBook. Only
facts that do not change between runs are recorded: no times, run ids, versions or temporary paths.
"""

from __future__ import annotations

import re

from playwright.sync_api import Locator, Page, expect

from segpipe.defs.partitions import BACKFILL_RUN_BATCHES
from segpipe_tests.e2e.ui_screens import VIEWPORT, ScreenBook

# Dagster 1.13's own class names (CSS modules keep the component's name as a prefix).
METADATA_KEYS = "table[class*=AssetEventMetadataEntriesTable] > tbody > tr > td:first-child"
CHECK_ROW = "[class*=AssetChecks_checkRow]"
RUN_ROW = "[class*=RunsFeedRow_rowGrid]"
WARNING_ICON = "warning_outline"


def loaded_pictures(container: Locator) -> list[str]:
    """The alt texts of the pictures in `container`, once each has decoded; fails on a picture that does not
    load (natural width 0)."""
    pictures = container.locator("img")
    expect(pictures.first).to_be_visible()
    widths = pictures.evaluate_all(
        "els => Promise.all(els.map(e => e.decode().then(() => e.naturalWidth, () => 0)))")
    alts = pictures.evaluate_all("els => els.map(e => e.alt)")
    broken = [alt for alt, width in zip(alts, widths) if width <= 0]
    assert not broken, f"pictures that do not load: {broken}"
    return alts


def open_markdown(page: Page, key: str) -> Locator:
    """Dagster shows a Markdown value over 1,000 characters as "[Show Markdown]"; open the dialog of `key`."""
    row = page.locator("tr", has=page.get_by_text(key, exact=True)).first
    row.get_by_text("[Show Markdown]").click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_text(key, exact=True).first).to_be_visible()
    return dialog


def close_dialog(dialog: Locator) -> None:
    dialog.get_by_role("button", name="Close").click()
    expect(dialog).to_be_hidden()


def picture_count(page: Page, key: str) -> int:
    """How many pictures the Markdown value `key` shows, all loaded; its dialog is closed again."""
    dialog = open_markdown(page, key)
    count = len(loaded_pictures(dialog))
    close_dialog(dialog)
    return count


def still(page: Page) -> bytes:
    """A screenshot with every transition finished (a dialog fades in)."""
    return page.screenshot(animations="disabled")


def clear_hover(page: Page) -> None:
    """The pointer on an empty spot of the (collapsed) navigation bar, so no tooltip or highlighted edge shows."""
    page.mouse.move(34, VIEWPORT["height"] * 0.7)


def metadata_keys(page: Page, first_key: str) -> list[str]:
    """The keys of the metadata table on the page, in the order shown, once `first_key` is there."""
    expect(page.locator(METADATA_KEYS).first).to_have_text(first_key)
    return page.locator(METADATA_KEYS).all_inner_texts()


def graph_setting(page: Page, item: str) -> None:
    """A choice from the asset graph's settings menu (the gear under the zoom slider)."""
    page.locator("#zoom-slider-container").get_by_role("button", name="settings").click()
    page.get_by_role("menuitem", name=re.compile(item)).click()
    page.keyboard.press("Escape")


def asset_graph(page: Page, url: str, book: ScreenBook, groups: list[str]) -> None:
    """The global asset graph, one box per stage (asset group), top to bottom."""
    page.goto(f"{url}/asset-groups")
    graph_setting(page, "Change graph to vertical orientation")
    page.reload()
    for group in groups:  # in the asset tree beside the graph, and as a box in it
        expect(page.get_by_text(group, exact=True).filter(visible=True)).to_have_count(2)
    expect(page.get_by_text("fetching statuses")).to_have_count(0)
    page.mouse.move(VIEWPORT["width"] * 0.6, VIEWPORT["height"] / 2)
    page.keyboard.down("Control")
    page.mouse.wheel(0, 100)  # zooms out a little, so the first stage is in view too
    page.keyboard.up("Control")
    clear_hover(page)
    shows = ["Materialize all…", "Reload definitions"]
    for button in shows:
        expect(page.get_by_role("button", name=button)).to_be_visible()
    book.record("asset-graph", still(page), page="Lineage", groups=groups, shows=shows)


def batch_partition(page: Page, url: str, book: ScreenBook, batch: str, images: int) -> None:
    """One batch's own metadata: batch_quarantine's partition of the planted bad batch, with its reasons."""
    page.goto(f"{url}/assets/batch_quarantine?view=partitions&partition={batch}")
    keys = metadata_keys(page, "entries_quarantined")
    quarantined = page.locator("tr", has=page.get_by_text("entries_quarantined", exact=True)).locator("td").nth(1)
    expect(quarantined).to_have_text(str(images))  # every image of the batch, each undecodable
    expect(page.get_by_text("image_undecodable", exact=True)).to_be_visible()
    book.record("batch-partition", still(page), asset="batch_quarantine", tab="Partitions", partition=batch,
                metadata_keys=keys, entries_quarantined=images, shows=["image_undecodable"])


def batch_check(page: Page, url: str, book: ScreenBook, batch: str) -> None:
    """batch_images:batch_usable per partition: the bad batch's evaluation failed, as a warning."""
    page.goto(f"{url}/assets/batch_images?view=checks&checkDetail=batch_usable")
    expect(page.get_by_text("This is a non-blocking asset check", exact=False)).to_be_visible()
    page.get_by_text("Execution history", exact=True).click()
    table = page.locator("table").filter(has=page.get_by_text("Evaluation result"))
    expect(table.get_by_text(f"Warning: nothing of batch {batch} can be released", exact=False).first).to_be_visible()
    headers = table.locator("thead th").all_inner_texts()
    result, partition = headers.index("Evaluation result"), headers.index("Partition")
    rows = [row.locator("td").all_inner_texts() for row in table.locator("tbody tr").all()]
    evaluations = sorted({f"{cells[partition]}: {cells[result]}" for cells in rows})
    assert f"{batch}: Failed" in evaluations, evaluations
    assert all(line.endswith("Passed") for line in evaluations if not line.startswith(batch)), evaluations
    book.record("batch-check", still(page), asset="batch_images", check="batch_usable", tab="Execution history",
                evaluations=evaluations)


def qa_pictures(page: Page, url: str, book: ScreenBook) -> None:
    """qa_report's failure thumbnails (image beside mask) behind [Show Markdown], and its class legend."""
    page.goto(f"{url}/assets/qa_report")
    keys = metadata_keys(page, "entries_checked")
    legend_swatches = picture_count(page, "legend")
    dialog = open_markdown(page, "thumbnails")
    captions = loaded_pictures(dialog)
    more = dialog.get_by_text(re.compile(r"^\+\d+ more"))
    expect(more).to_be_visible()
    book.record("qa-pictures", still(page), asset="qa_report", metadata="thumbnails", metadata_keys=keys,
                pictures_loaded=captions, more=more.inner_text().split(" (")[0], legend_swatches=legend_swatches)


def _check_rows(page: Page) -> list[str]:
    """The checks listed beside the selected one, as shown: name, status, and the icon's meaning."""
    rows = []
    for row in page.locator(CHECK_ROW).all():
        name = row.locator("[title]").first.get_attribute("title")
        status = row.locator("span span").last.inner_text()
        icon = row.get_by_role("img").first.get_attribute("aria-label")
        rows.append(f"{name}: {status}" + (" (warning)" if icon == WARNING_ICON else ""))
    return rows


def qa_checks(page: Page, url: str, book: ScreenBook, warning: str, blocking: str) -> None:
    """The QA checks: a failed WARN check reads as a warning with its thumbnails; an ERROR check blocks."""
    page.goto(f"{url}/assets/qa_report?view=checks&checkDetail={blocking}")
    expect(page.get_by_text("This is a blocking asset check", exact=False)).to_be_visible()
    page.goto(f"{url}/assets/qa_report?view=checks&checkDetail={warning}")
    expect(page.get_by_text("This is a non-blocking asset check", exact=False)).to_be_visible()
    outcome = page.get_by_text(re.compile(r"^Warning: \d+ entr(y|ies) fails? the rule; the release goes on$"))
    expect(outcome).to_be_visible()
    expect(page.locator(CHECK_ROW).first).to_be_visible()
    checks = _check_rows(page)
    assert f"{warning}: Failed (warning)" in checks, checks
    screenshot = still(page)
    book.record("qa-checks", screenshot, asset="qa_report", tab="Checks", selected=warning, checks_listed=checks,
                blocking=[blocking], non_blocking=[warning], check_thumbnails=picture_count(page, "thumbnails"))


def runs_marked(page: Page, url: str, book: ScreenBook, batch: str) -> None:
    """The Runs list with the runs inside backfills shown: the runs that ingested the bad batch (the landing
    sensor's and the backfill's) carry the segpipe/bad_input tag and succeeded, the others have no such tag;
    clicking the tag, then "Add tag to filter", leaves only them."""
    page.goto(f"{url}/runs")
    page.get_by_text("Show runs within backfills").click()
    tag = f"segpipe/bad_input: {batch}"
    rows = page.locator(RUN_ROW)
    expect(rows.filter(has_text="Backfill:").first).to_be_visible()
    tagged = rows.filter(has=page.get_by_text(tag, exact=True))
    expect(tagged).to_have_count(2)
    assert rows.count() > 2, "the release run and the other steps' runs are not tagged"
    tagged.first.get_by_text(tag, exact=True).click()
    page.get_by_role("button", name="Add tag to filter").click()
    expect(page.get_by_text(re.compile(r"^Tag is"))).to_be_visible()
    expect(rows).to_have_count(2)
    for row in rows.all():
        expect(row.get_by_text(tag, exact=True)).to_be_visible()
        expect(row.get_by_text("Success", exact=True)).to_be_visible()  # bad input is marked, not a failed run
    clear_hover(page)
    book.record("runs-bad-input", still(page), page="Runs", options=["Show runs within backfills", "Tag is"],
                runs_shown=2, tag=tag, status="Success")


def taxonomy_backfill(page: Page, url: str, book: ScreenBook, partitions: int) -> None:
    """The backfill after a taxonomy edit, as a user starts it: the asset mapped_shapes, tab Partitions,
    Materialize…, All (the dialog starts at 0 partitions), and the Launch backfill button."""
    page.goto(f"{url}/assets/mapped_shapes")
    page.locator("[role=tab]", has_text="Partitions").first.click()
    page.get_by_role("button", name="Materialize…").click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_text("Launch runs to materialize mapped_shapes")).to_be_visible()
    expect(dialog.get_by_text("0 partitions", exact=True)).to_be_visible()
    dialog.get_by_role("button", name="All", exact=True).click()
    selected = f"{partitions} partitions"
    expect(dialog.get_by_text(selected, exact=True)).to_be_visible()
    in_runs = f"Backfills in multiple runs, with a maximum of {BACKFILL_RUN_BATCHES} partitions per run."
    expect(dialog.get_by_text(in_runs)).to_be_visible()
    expect(dialog.get_by_role("button", name="Launch backfill")).to_be_enabled()
    book.record("taxonomy-backfill", still(page), asset="mapped_shapes", tab="Partitions",
                clicks=["Materialize…", "All", "Launch backfill"], before_all="0 partitions", after_all=selected,
                shows=[in_runs])
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()


def sampling_chart(page: Page, url: str, book: ScreenBook) -> None:
    """sampling_report's distribution chart (target, selection and each split) and its legend."""
    page.goto(f"{url}/assets/sampling_report")
    keys = metadata_keys(page, "distances")
    legend_swatches = picture_count(page, "legend")
    chart = open_markdown(page, "chart")
    pictures = loaded_pictures(chart)
    book.record("sampling-chart", still(page), asset="sampling_report", metadata="chart", metadata_keys=keys,
                pictures_loaded=pictures, legend_swatches=legend_swatches)


def release(page: Page, url: str, book: ScreenBook) -> None:
    """dataset_release: where the release is (its folder and ZIP), its counts, and the datasheet's chart."""
    page.goto(f"{url}/assets/dataset_release")
    keys = metadata_keys(page, "version")
    chart_pictures, legend_swatches = picture_count(page, "chart"), picture_count(page, "legend")
    page.locator(METADATA_KEYS).first.evaluate("cell => cell.scrollIntoView({block: 'center'})")
    for key in ("release", "archive"):
        expect(page.locator(METADATA_KEYS).filter(has_text=re.compile(f"^{key}$"))).to_be_visible()
    book.record("release", still(page), asset="dataset_release", metadata_keys=keys,
                chart_pictures=chart_pictures, legend_swatches=legend_swatches, shows=["release", "archive"])
