"""Every metadata value the demo build writes reads well in the Dagster UI (issue 18, "Readable
tables"): no float with more than 4 significant digits, no Python literal in a table, every cut table
says how many rows it leaves out, and no WARN result reads as blocking or failed.

It walks the event log of the session's demo build (full_demo_build, e2e/conftest.py): every
materialization and every asset check evaluation of every run."""

import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass

import dagster as dg
import pytest

pytestmark = pytest.mark.slow

# A table's rows and the count beside it in the same metadata: shown rows + "+N more" must make the count.
COUNTED_TABLES = {"failing_entries": "failures", "labels": "unmapped_labels", "entries": "quarantined",
                  "pairs": "pairs_across_splits", "classes": "unmet", "diff_items": "diff_images"}
PYTHON_LITERALS = {"None", "True", "False", "nan", "NaN", "null"}
NUMBER = re.compile(r"^[-+]?(\d+\.\d*|\d*\.\d+|\d+)(e[-+]?\d+)?%?$")
MORE = re.compile(r"^\+(\d+) more$")


@dataclass(frozen=True)
class Shown:
    where: str  # asset (and partition) or check, and the metadata key
    metadata: dict[str, dg.MetadataValue]
    evaluation: dg.AssetCheckEvaluation | None


def shown_metadata(instance: dg.DagsterInstance) -> Iterator[Shown]:
    """The metadata of every materialization and check evaluation of every run of the instance."""
    kinds = {dg.DagsterEventType.ASSET_MATERIALIZATION, dg.DagsterEventType.ASSET_CHECK_EVALUATION}
    for run in instance.get_runs():
        for record in instance.all_logs(run.run_id, of_type=kinds):
            event = record.dagster_event
            if event.event_type == dg.DagsterEventType.ASSET_MATERIALIZATION:
                materialization = event.step_materialization_data.materialization
                where = materialization.asset_key.to_user_string() + (
                    f"[{materialization.partition}]" if materialization.partition else "")
                yield Shown(where, dict(materialization.metadata), None)
            else:
                evaluation = event.asset_check_evaluation_data
                yield Shown(evaluation.asset_check_key.to_user_string(), dict(evaluation.metadata), evaluation)


def markdown_rows(text: str) -> tuple[list[list[str]], int]:
    """The body cells of a Markdown table, and the N of a "+N more" line below it (0 without one)."""
    lines = text.splitlines()
    rows = [[cell.strip() for cell in line.strip().strip("|").split("|")] for line in lines
            if line.startswith("|") and not line.startswith("|---")]
    more = [int(found.group(1)) for line in lines if (found := MORE.match(line.strip()))]
    return rows[1:], sum(more)


def table_rows(value: dg.TableMetadataValue) -> tuple[list[dict], int]:
    """The rows of a table, and the N of its last row when that one only says "+N more"."""
    rows = [dict(record.data) for record in value.records]
    last = sorted((str(cell) for cell in rows[-1].values()), reverse=True) if rows else []
    if last and (found := MORE.match(last[0])) and not any(last[1:]):
        return rows[:-1], int(found.group(1))
    return rows, 0


def too_precise(value: float) -> bool:
    return math.isfinite(value) and float(f"{value:.4g}") != value


def floats_in(value: object) -> Iterator[float]:
    if isinstance(value, float):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from floats_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from floats_in(item)


def cells(value: dg.MetadataValue) -> Iterator[object]:
    if isinstance(value, dg.MarkdownMetadataValue):
        for row in markdown_rows(value.value)[0]:
            yield from row
    elif isinstance(value, dg.TableMetadataValue):
        for row in table_rows(value)[0]:
            yield from row.values()


def text_of(value: dg.MetadataValue) -> str:
    """What the UI shows of a metadata value, as text to search."""
    if isinstance(value, dg.TableMetadataValue):
        return json.dumps([record.data for record in value.records])
    if isinstance(value, dg.JsonMetadataValue):
        return json.dumps(value.data)
    return str(value.value)


@pytest.fixture(scope="module")
def everything_shown(full_demo_build) -> list[Shown]:
    shown = list(shown_metadata(full_demo_build.instance))
    assert len({s.where for s in shown}) > 40, "the build's event log lacks materializations or checks"
    return shown


def test_no_number_has_more_than_four_significant_digits(everything_shown):
    too_long = []
    for shown in everything_shown:
        for key, value in shown.metadata.items():
            if isinstance(value, dg.FloatMetadataValue | dg.JsonMetadataValue):
                numbers = list(floats_in(value.value))
            elif isinstance(value, dg.TableMetadataValue):
                numbers = [cell for cell in cells(value) if isinstance(cell, float)]
            else:
                numbers = [float(cell.rstrip("%")) for cell in cells(value)
                           if isinstance(cell, str) and NUMBER.match(cell) and "." in cell]
            too_long += [f"{shown.where} {key}: {number!r}" for number in numbers if too_precise(number)]
    assert not too_long


def test_no_table_shows_a_python_literal(everything_shown):
    literals = []
    for shown in everything_shown:
        for key, value in shown.metadata.items():
            for cell in cells(value):
                text = str(cell)
                if cell is None or isinstance(cell, bool) or text in PYTHON_LITERALS or re.fullmatch(r"\[.*\]|\{.*\}", text):
                    literals.append(f"{shown.where} {key}: {cell!r}")
    assert not literals


def test_every_cut_table_says_how_many_rows_it_leaves_out(everything_shown):
    wrong, cut = [], 0
    for shown in everything_shown:
        for key, count_key in COUNTED_TABLES.items():
            value, count = shown.metadata.get(key), shown.metadata.get(count_key)
            if count is None or not isinstance(value, dg.MarkdownMetadataValue | dg.TableMetadataValue):
                continue
            total = sum(count.value.values()) if isinstance(count, dg.JsonMetadataValue) else count.value
            rows, more = markdown_rows(value.value) if isinstance(value, dg.MarkdownMetadataValue) else table_rows(value)
            cut += more > 0
            if len(rows) + more != total:
                wrong.append(f"{shown.where} {key}: {len(rows)} rows + {more} more, but {count_key} is {total}")
    assert not wrong
    assert cut >= 2, "the demo build cuts failing_entries (polygon_self_intersection) and diff_items"


def test_no_warn_result_reads_as_blocking_or_failed(everything_shown):
    wrong = []
    for shown in everything_shown:
        evaluation = shown.evaluation
        if evaluation is None or evaluation.severity != dg.AssetCheckSeverity.WARN:
            continue
        if evaluation.blocking:
            wrong.append(f"{shown.where}: a WARN result of a blocking check (the UI says 'This is a blocking asset check')")
        texts = [evaluation.description or ""] + [text_of(value) for value in shown.metadata.values()]
        wrong += [f"{shown.where}: {text[:120]!r}" for text in texts if re.search(r"\bblocking\b|\bfailed\b", text, re.I)]
    assert not wrong
