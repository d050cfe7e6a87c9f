"""Small, bounded metadata payloads for the Dagster UI (large metadata bloats the event log)."""

import dagster as dg
import polars as pl

MAX_ROWS = 20


def markdown_table(frame: pl.DataFrame, max_rows: int = MAX_ROWS) -> str:
    if frame.is_empty():
        return "none"
    shown = frame.head(max_rows)
    header = "| " + " | ".join(shown.columns) + " |\n|" + "---|" * shown.width + "\n"
    body = "\n".join("| " + " | ".join(str(v).replace("|", "/") for v in row) + " |" for row in shown.iter_rows())
    more = f"\n\n…and {frame.height - max_rows} more" if frame.height > max_rows else ""
    return header + body + more


_COLUMN_TYPES = {pl.String: "string", pl.Int64: "int", pl.UInt32: "int", pl.Float64: "float", pl.Boolean: "bool"}


def metadata_table(frame: pl.DataFrame, max_rows: int = MAX_ROWS) -> dg.TableMetadataValue:
    """The first rows as a table: the UI shows it as markdown_table does, and a reader of the event log
    (`segpipe build`'s summary of a blocked release) gets the rows as values, not text to parse."""
    shown = frame.head(max_rows)
    schema = dg.TableSchema(columns=[dg.TableColumn(name, _COLUMN_TYPES.get(dtype, "string"))
                                     for name, dtype in shown.schema.items()])
    return dg.MetadataValue.table([dg.TableRecord(row) for row in shown.iter_rows(named=True)], schema)
