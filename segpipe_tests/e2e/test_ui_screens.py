"""The comparison that keeps docs/ui's screenshots true: it sees every changed, added, removed or
reordered screen; and a screenshot is stored as a smaller palette PNG of the same size and near colours."""

import io

from PIL import Image, ImageDraw

from segpipe_tests.e2e.ui_screens import VIEWPORT, differences, optimised_png


def _document(*screens: dict) -> dict:
    return {"viewport": VIEWPORT, "screens": list(screens)}


GRAPH = {"file": "asset-graph.png", "page": "Lineage", "groups": ["ingest", "qa"]}
RUNS = {"file": "runs-bad-input.png", "page": "Runs", "runs_shown": 2}


def test_the_same_facts_differ_in_nothing():
    assert differences(_document(GRAPH, RUNS), _document(GRAPH, RUNS)) == []


def test_a_changed_fact_is_named_with_both_values():
    fresh = _document(GRAPH, {**RUNS, "runs_shown": 3})
    assert differences(_document(GRAPH, RUNS), fresh) == [
        "runs-bad-input.png: runs_shown committed as 2, now 3"]


def test_added_removed_and_reordered_screens_and_another_viewport_are_named():
    assert differences(_document(GRAPH), _document(GRAPH, RUNS)) == ["runs-bad-input.png: taken but not committed"]
    assert differences(_document(GRAPH, RUNS), _document(GRAPH)) == [
        "runs-bad-input.png: committed but no longer taken"]
    assert differences(_document(GRAPH, RUNS), _document(RUNS, GRAPH)) == [
        "order: committed ['asset-graph.png', 'runs-bad-input.png'], now ['runs-bad-input.png', 'asset-graph.png']"]
    other = {**_document(GRAPH), "viewport": {"width": 800, "height": 600}}
    assert differences(other, _document(GRAPH)) == [
        f"viewport: committed {{'width': 800, 'height': 600}}, now {VIEWPORT}"]


def test_a_screenshot_is_kept_as_a_smaller_palette_png_of_the_same_size():
    image = Image.new("RGB", (VIEWPORT["width"], VIEWPORT["height"]), "white")
    draw = ImageDraw.Draw(image)
    for x in range(0, VIEWPORT["width"], 40):  # a gradient of boxes, as a UI has few colours but some shading
        draw.rectangle([x, 100, x + 30, 700], fill=(x % 256, 128, 255 - x % 256))
    draw.text((20, 20), "qa_report: Failed (warning)", fill="black")
    raw = io.BytesIO()
    image.save(raw, "PNG")
    png = optimised_png(raw.getvalue())
    kept = Image.open(io.BytesIO(png))
    assert kept.mode == "P" and kept.size == image.size
    assert len(png) < len(raw.getvalue())
    shown, drawn = kept.convert("RGB").getpixel((45, 400)), image.getpixel((45, 400))
    assert max(abs(a - b) for a, b in zip(shown, drawn)) <= 8  # a palette colour near the drawn one
