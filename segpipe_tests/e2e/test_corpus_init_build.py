"""Every export of the corpus (segpipe_tests/fixtures/exports, see SOURCES.md there) to a release, as a
user brings it: `segpipe init <export> --into <project>`, then `segpipe build --project <project>`,
through the command in this process, with no hand edit in between.

Each export ships at least one image with a valid annotation, so each goes through both (SOURCES.md
says which annotations reach check-source only: those whose images the export lacks). What the
export holds is parsed from its own files (export_facts.py, as test_real_exports.py does), not
from segpipe's tables: init must report its shapes and labels, and the release's ledger must hold
each of its items exactly once, released, filtered with the reason, or quarantined by the rule the
export's own defect calls for. Tiny exports lose images to QA (duplicate copies, masks with no
labelled pixel): the test asserts the reasons are given, not how many."""

import io
import re
import zipfile
from collections import Counter

import polars as pl
import pytest

from segpipe.cli.main import main
from segpipe.cli.source_check import SHOWN_LABELS
from segpipe_tests.core.ingest.export_facts import CORPUS, EXPORTS, ExportFacts, export_facts

pytestmark = pytest.mark.slow

ENTRIES = re.compile(r"^entries: (\d+) in = (\d+) released \+ (\d+) filtered \+ (\d+) quarantined$", re.MULTILINE)


def test_the_corpus_is_every_folder_of_the_exports():
    """A new export must state its facts here, so it cannot escape the test below."""
    assert sorted(path.name for path in EXPORTS.iterdir() if path.is_dir()) == sorted(CORPUS)


def labels_line(labels: Counter) -> str:
    """check-source's line of labels found: the most used first, then by name, the first few shown."""
    ordered = sorted(labels.items(), key=lambda item: (-item[1], item[0]))
    shown = ", ".join(f"{label!r} {n}" for label, n in ordered[:SHOWN_LABELS])
    more = f" +{len(ordered) - SHOWN_LABELS} more" if len(ordered) > SHOWN_LABELS else ""
    return f"labels found: {len(ordered)}: {shown}{more}"


def assert_init_reports(printed: str, facts: ExportFacts) -> None:
    usable = sum(rule is None for rule in facts.items.values())
    lines = printed.splitlines()
    assert f"format: {facts.format}" in lines
    assert f"items: {len(facts.items)} ({usable} accepted, {len(facts.items) - usable} quarantined)" in lines
    assert any(line.startswith(f"shapes: {sum(facts.labels.values())} (") for line in lines), printed
    assert labels_line(facts.labels) in lines, printed


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_init_then_build_releases_the_export_and_accounts_for_every_item(name, user_shell, capsys):
    facts = export_facts(name)
    project = user_shell / name
    assert main(["init", str(EXPORTS / name), "--into", str(project)]) == 0
    assert_init_reports(capsys.readouterr().out, facts)

    assert main(["build", "--project", str(project)]) == 0
    printed = capsys.readouterr().out
    [ledger_file] = (project / "store" / "releases" / name).glob("*/ledger.parquet")
    ledger = pl.read_parquet(ledger_file)
    outcome = {facts.key(file): (state, reason) for file, state, reason in
               ledger.select("file_name", "outcome", "reason").iter_rows()}
    assert len(outcome) == ledger.height and set(outcome) == set(facts.items)
    for item, rule in facts.items.items():
        state, reason = outcome[item]
        if rule is None:  # shipped with a valid annotation: released, or filtered saying why
            assert state == "released" or (state == "filtered" and reason), (item, state, reason)
        else:
            assert state == "quarantined" and reason.startswith(f"{rule}: "), (item, state, reason)
    counts = Counter(state for state, _ in outcome.values())
    assert ENTRIES.search(printed).groups() == tuple(
        str(n) for n in (len(facts.items), counts["released"], counts["filtered"], counts["quarantined"]))

    [archive] = ledger_file.parent.glob(f"{name}-*.zip")
    with zipfile.ZipFile(archive) as release:
        index = pl.read_csv(io.BytesIO(release.read("index.csv")), schema_overrides={"original_file_name": pl.String})
    released = sorted(item for item, (state, _) in outcome.items() if state == "released")
    assert sorted(facts.key(file) for file in index["original_file_name"]) == released
