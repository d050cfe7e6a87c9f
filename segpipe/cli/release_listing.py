"""`segpipe releases`: the committed versions of a dataset as a table, newest last, the latest one starred,
with how many shared parts each uses (0: one ZIP; see docs/release-format.md)."""

COUNT_COLUMNS = ("input", "released", "filtered", "quarantined")


def format_release_table(dataset_name: str, markers: list[dict], latest: str | None) -> str:
    if not markers:
        return f"{dataset_name}: no releases published"
    header = ["", "version", "created", "content_digest", *COUNT_COLUMNS, "parts"]
    rows = [
        ["*" if m["version"] == latest else "", m["version"], m["created"], m["content_digest"][:12],
         *(str(m.get("counts", {}).get(c, "")) for c in COUNT_COLUMNS), str(len(m.get("parts", {})))]
        for m in markers
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in [header, *rows]]
    return "\n".join([f"{dataset_name}: {len(markers)} release(s), * = latest.json", *lines])
