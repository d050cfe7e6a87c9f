"""Small, bounded, readable metadata payloads for the Dagster UI (large metadata bloats the event log).

Every table an asset or check shows is made here: cells read as defs/readable.py says, and a table cut
at its first rows ends with "+N more". `readable` rounds the plain values of a metadata dict the same way.
"""

import re
from collections.abc import Collection, Mapping

import dagster as dg
import polars as pl

from segpipe.defs.readable import cell_text, plain_value, significant

MAX_ROWS = 20
_CUT = re.compile(r"^\+\d+ more$")


def more_text(hidden: int) -> str:
    """What a table cut after its first rows says about the rest."""
    return f"+{hidden} more"


def markdown_table(frame: pl.DataFrame, max_rows: int = MAX_ROWS, percent: Collection[str] = ()) -> str:
    """The first `max_rows` rows as a Markdown table, "+N more" below it when there are more; the
    columns named in `percent` hold shares (0..1) and read as percentages."""
    if frame.is_empty():
        return "none"
    shown = frame.head(max_rows)
    header = "| " + " | ".join(shown.columns) + " |\n|" + "---|" * shown.width + "\n"
    body = "\n".join("| " + " | ".join(cell_text(value, name in percent) for name, value in row.items()) + " |"
                     for row in shown.iter_rows(named=True))
    more = f"\n\n{more_text(frame.height - max_rows)}" if frame.height > max_rows else ""
    return header + body + more


def md_table(frame: pl.DataFrame, max_rows: int = MAX_ROWS, percent: Collection[str] = ()) -> dg.MarkdownMetadataValue:
    return dg.MetadataValue.md(markdown_table(frame, max_rows, percent))


_COLUMN_TYPES = {pl.Int64: "int", pl.Int32: "int", pl.UInt32: "int", pl.UInt64: "int", pl.Float64: "float"}


def metadata_table(frame: pl.DataFrame, max_rows: int = MAX_ROWS, total: int | None = None) -> dg.TableMetadataValue:
    """The first rows as a table whose cells are values, for a reader of the event log (`segpipe build`'s
    summary of a blocked release): numbers rounded, other cells as text as in markdown_table (a number
    column with missing values is text too). A cut table ends with a row that says "+N more" in its
    first column and nothing else; `table_rows` leaves it out. `total`: the rows of the whole table when
    `frame` holds only its first ones."""
    shown = frame.head(max_rows)
    types = {name: _COLUMN_TYPES.get(dtype, "string") if shown[name].null_count() == 0 else "string"
             for name, dtype in shown.schema.items()}
    schema = dg.TableSchema(columns=[dg.TableColumn(name, kind) for name, kind in types.items()])
    records = [dg.TableRecord({name: _record_value(value, types[name]) for name, value in row.items()})
               for row in shown.iter_rows(named=True)]
    hidden = (frame.height if total is None else total) - shown.height
    if hidden > 0:
        records.append(dg.TableRecord({name: more_text(hidden) if i == 0 else ""
                                       for i, name in enumerate(frame.columns)}))
    return dg.MetadataValue.table(records, schema)


def _record_value(value: object, kind: str) -> str | int | float:
    if kind == "int":
        return value
    if kind == "float":
        return significant(value)
    return cell_text(value)


def table_rows(table: dg.TableMetadataValue) -> list[dict]:
    """The rows of a table metadata_table made, without its "+N more" row."""
    rows = [dict(record.data) for record in table.records]
    if rows and _is_cut(list(rows[-1].values())):
        rows.pop()
    return rows


def _is_cut(values: list[object]) -> bool:
    first, *rest = values
    return isinstance(first, str) and bool(_CUT.match(first)) and all(value == "" for value in rest)


def with_file_names(frame: pl.DataFrame, entries: pl.DataFrame, column: str = "image_id") -> pl.DataFrame:
    """`frame` with the file an image hash in `column` stands for beside it (`batch/file`, the first
    entry of the image in `entries`: image_id, batch_id, file_name), so a shortened hash is not all
    a reader has."""
    name = "file_name" if column == "image_id" else column.replace("image", "file")
    files = entries.sort("batch_id", "file_name").group_by("image_id", maintain_order=True).agg(
        pl.format("{}/{}", "batch_id", "file_name").first().alias(name)).rename({"image_id": column})
    joined = frame.join(files, on=column, how="left", maintain_order="left")
    at = frame.columns.index(column) + 1
    return joined.select(*frame.columns[:at], name, *frame.columns[at:])


def readable(metadata: Mapping[str, object]) -> dict[str, object]:
    """A metadata dict with its plain floats, float values and JSON values rounded to 4 significant
    digits; tables and other values pass unchanged (they are made readable where they are made)."""
    out: dict[str, object] = {}
    for key, value in metadata.items():
        if isinstance(value, float):
            out[key] = significant(value)
        elif isinstance(value, dg.FloatMetadataValue) and value.value is not None:
            out[key] = dg.MetadataValue.float(significant(value.value))
        elif isinstance(value, dg.JsonMetadataValue):
            out[key] = dg.MetadataValue.json(plain_value(value.data))
        elif isinstance(value, list | dict):
            out[key] = dg.MetadataValue.json(plain_value(value))
        else:
            out[key] = value
    return out
