"""Small, bounded metadata payloads for the Dagster UI (large metadata bloats the event log)."""

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
