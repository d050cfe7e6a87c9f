"""A human summary of a release, from its meta.json: what a user checks before pinning it."""

import re
import zipfile

import orjson


def release_summary(archive: zipfile.ZipFile, file_name: str) -> str:
    """Version, lineage, images per split, classes with their pixel share, and QA failures per rule. The
    published version is in the ZIP's name (`<dataset>-<version>.zip`), chosen after meta.json was
    written, which holds the content digest."""
    meta = orjson.loads(archive.read("meta.json"))
    named = re.fullmatch(rf"{re.escape(meta['dataset'])}-(.+)\.zip", file_name)
    version = named[1] if named else f"unknown (the ZIP is not named {meta['dataset']}-<version>.zip)"
    lineage = meta.get("lineage", {})
    total = sum(meta["class_pixels"].values()) + meta["ignored_pixels"]
    width = max(len("(ignored)"), *(len(c["name"]) for c in meta["classes"]))
    lines = [
        f"{meta['dataset']} release {version}",
        f"content {meta['version']}, taxonomy {meta['taxonomy_version']}, {meta['mask_encoding']} masks, "
        f"ignore index {meta['ignore_index']}",
        f"built {lineage.get('created_at', '?')} by segpipe {lineage.get('segpipe_version', '?')}, "
        f"run {lineage.get('run_id', '?')}, from {len(lineage.get('source_batches', []))} batches",
        f"images: {sum(meta['splits'].values())} ("
        + ", ".join(f"{split} {n}" for split, n in meta["splits"].items()) + ")",
        "classes (pixel share):",
        *[f"  {c['id']:>3} {c['name']:<{width}} {_share(meta['class_pixels'][c['name']], total)}"
          for c in sorted(meta["classes"], key=lambda c: c["id"])],
        f"  {meta['ignore_index']:>3} {'(ignored)':<{width}} {_share(meta['ignored_pixels'], total)}",
    ]
    failures = meta.get("qa_failures", {})
    lines.append("QA failures: " + (", ".join(f"{rule} {n}" for rule, n in failures.items()) if failures else "none"))
    return "\n".join(lines)


def _share(pixels: int, total: int) -> str:
    return f"{100 * pixels / total:6.2f}%" if total else "  0.00%"
