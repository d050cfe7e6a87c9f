"""The documentation stays navigable and true to its data: every relative link in README.md and docs/
leads to a file, the README stays short, the benchmark table is the CSV, and every format reader has
its page."""

import csv
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
README_MAX_LINES = 220
# Written by other engineers' generators from the code, not by hand. A link to one of exactly these two
# files is skipped while the file is absent (its generator may not have run yet); once it exists, the
# link is checked like any other.
GENERATED_PAGES = frozenset({DOCS / "configuration.md", DOCS / "quarantine-rules.md"})
FORMAT_SECTIONS = ("## Specification", "## What segpipe reads", "## Export", "## Examples")

FENCE = re.compile(r"^ {0,3}(```|~~~).*?^ {0,3}\1[^\n]*$", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1", re.DOTALL)
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_DEFINITION = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+\"[^\"]*\")?\s*$", re.MULTILINE)
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def markdown_files() -> list[Path]:
    return [README, *sorted(DOCS.rglob("*.md"))]


def link_targets(markdown: str) -> list[str]:
    """The target of every inline link, image and reference definition, outside code blocks and code spans."""
    prose = CODE_SPAN.sub("", FENCE.sub("", markdown))
    return INLINE_LINK.findall(prose) + REFERENCE_DEFINITION.findall(prose)


def link_problems(page: Path, markdown: str) -> list[str]:
    """What is wrong with the relative links of one page: an anchor, or a target that is not a file."""
    problems = []
    for target in link_targets(markdown):
        if SCHEME.match(target):  # http(s), mailto: not a file of this repository
            continue
        where = f"{page.relative_to(ROOT)}: link {target!r}"
        if "#" in target:
            problems.append(f"{where} carries an anchor; link to the file alone")
            continue
        if not target:
            problems.append(f"{where} is empty")
            continue
        resolved = (page.parent / target).resolve()
        if resolved in GENERATED_PAGES and not resolved.exists():
            continue
        if not resolved.is_file():
            problems.append(f"{where} names no file")
    return problems


def test_every_relative_link_resolves_to_a_file_without_an_anchor():
    problems = [problem for page in markdown_files() for problem in link_problems(page, page.read_text())]
    assert problems == []


def test_the_link_checker_catches_broken_and_anchored_links_and_skips_code():
    page = DOCS / "example.md"
    markdown = (
        "[ok](landing.md) [gone](no-such-page.md) [anchored](landing.md#batches) [here](#top)\n"
        "![picture](missing.png) [web](https://dagster.io) [mail](mailto:someone@example.org)\n"
        "`[in code](nowhere.md)`\n```\n[in a block](nowhere.md)\n```\n[ref]: ../missing.md\n"
        "[generated](configuration.md)\n"
    )
    problems = link_problems(page, markdown)
    assert [problem.split("link ")[1].split(" ")[0] for problem in problems] == [
        "'no-such-page.md'", "'landing.md#batches'", "'#top'", "'missing.png'", "'../missing.md'"]


def test_the_readme_stays_short():
    lines = README.read_text().splitlines()
    assert len(lines) < README_MAX_LINES, f"README.md has {len(lines)} lines; move detail into docs/"


def table_rows(markdown: str, header: list[str]) -> list[list[str]]:
    """The body rows of the first table whose header row is `header`, as stripped cells."""
    lines = markdown.splitlines()
    for start, line in enumerate(lines):
        if [cell.strip() for cell in line.strip().strip("|").split("|")] == header:
            rows = []
            for body in lines[start + 2:]:
                if not body.strip().startswith("|"):
                    break
                rows.append([cell.strip() for cell in body.strip().strip("|").split("|")])
            return rows
    raise AssertionError(f"no table with the header {header}")


def test_the_benchmark_table_is_the_csv():
    with (DOCS / "benchmarks.csv").open(newline="") as handle:
        header, *rows = list(csv.reader(handle))
    assert header == ["benchmark", "metric", "value", "unit", "peer", "peer_value", "ratio", "scale", "note"]
    assert rows and all(len(row) == len(header) for row in rows)
    assert table_rows((DOCS / "benchmarks.md").read_text(), header) == [[cell.strip() for cell in row] for row in rows]


def test_the_table_reader_sees_a_changed_cell():
    markdown = "| a | b |\n|---|---|\n| 1 | 2 |\n| 3 | 4 |\n\nafter\n"
    assert table_rows(markdown, ["a", "b"]) == [["1", "2"], ["3", "4"]]
    assert table_rows(markdown.replace("| 4 |", "| 5 |"), ["a", "b"]) != [["1", "2"], ["3", "4"]]


def test_every_format_reader_has_its_page_with_the_four_sections():
    from segpipe.core.ingest.formats import READERS

    index = (DOCS / "formats" / "index.md").read_text()
    for name in READERS:
        page = DOCS / "formats" / f"{name}.md"
        assert page.is_file(), f"reader {name!r} has no page {page.relative_to(ROOT)}"
        text = page.read_text()
        assert [section for section in FORMAT_SECTIONS if section not in text.splitlines()] == [], page.name
        assert f"]({name}.md)" in index, f"docs/formats/index.md does not link {name}.md"


@pytest.mark.parametrize("page", ["landing.md", "taxonomy.md", "qa-and-consensus.md", "sampling.md",
                                  "release-format.md", "publishing.md", "operations.md", "development.md",
                                  "benchmarks.md", "rasterization.md", "formats/index.md", "ui.md"])
def test_each_hand_written_page_exists_and_the_readme_links_it(page):
    assert (DOCS / page).is_file()
    assert f"](docs/{page})" in README.read_text()


def test_every_ui_screenshot_is_small_listed_with_its_facts_and_shown_on_the_ui_page():
    """docs/ui/*.png are written by the browser test with their facts in screens.json (see
    segpipe_tests/e2e/ui_screens.py); each is shown by docs/ui.md, none is stale, none is large."""
    from segpipe_tests.e2e.ui_screens import FACTS_FILE, MAX_PNG_BYTES, SCREENS_DIR

    listed = [screen["file"] for screen in json.loads(FACTS_FILE.read_text())["screens"]]
    assert listed and len(set(listed)) == len(listed)
    assert sorted(path.name for path in SCREENS_DIR.glob("*.png")) == sorted(listed)
    page = (DOCS / "ui.md").read_text()
    for name in listed:
        assert (SCREENS_DIR / name).stat().st_size <= MAX_PNG_BYTES, name
        assert f"](ui/{name})" in page, f"docs/ui.md does not show ui/{name}"
