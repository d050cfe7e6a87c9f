"""A trainer layout (release.exports) assembled in an unzipped release, and checked.

A layout's label files and lists are members of the release; its images are not, since they are the
release's own images/ (a copy in every version would store each image again in each one). Assembling
links each image into the place its export's images.csv names (a hard link where the folder allows,
else a copy), and for `hf` writes hf/data/<split>-00000-of-00001.parquet with the image and mask bytes
embedded, from index.parquet and meta.json. Every assembled byte comes from a member SHA256SUMS
lists, and layout_problems checks each assembled file against those checksums.
"""

import csv
import hashlib
import io
import os
import shutil
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path, PurePosixPath

import orjson
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from segpipe.core.release import layout
from segpipe.core.release.writers.hf import hf_features

LINKED_LAYOUTS = ("cityscapes", "voc")  # layouts whose images.csv places the release's images
HF_COLUMNS = ("image", "label", "image_id", "classes")


class LayoutRefused(RuntimeError):
    """The release does not carry the layout asked for."""


def assemble_layout(root: Path, name: str) -> int:
    """Assemble layout `name` in the unzipped release `root`; the number of files written."""
    meta = orjson.loads((root / layout.META).read_bytes())
    if name not in meta.get("exports", ()):
        raise LayoutRefused(f"{root}: version {meta['version']} carries no {name} layout (meta.json's exports: "
                            f"{meta.get('exports', [])}); add {name} to release.exports in pipeline.yaml and build "
                            "a new version")
    if name == "hf":
        return _assemble_hf(root, meta)
    placed = 0
    for path, image_path in image_places(root / layout.EXPORT_IMAGES.format(name)):
        if not (_inside(path, f"{name}/") and _inside(image_path, layout.IMAGES_DIR)):
            raise LayoutRefused(f"{layout.EXPORT_IMAGES.format(name)}: places {image_path!r} at {path!r}, outside "
                                f"{name}/ or from outside {layout.IMAGES_DIR}: the release is not one segpipe wrote")
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(root / image_path, target)
        except OSError:
            shutil.copyfile(root / image_path, target)
        placed += 1
    return placed


def _inside(path: str, folder: str) -> bool:
    parts = PurePosixPath(path).parts
    return path.startswith(folder) and ".." not in parts and "\\" not in path


def image_places(listing: Path | bytes) -> Iterator[tuple[str, str]]:
    """(path in the layout, released image) of each row of an export's images.csv."""
    text = listing.decode() if isinstance(listing, bytes) else listing.read_text()
    rows = csv.reader(io.StringIO(text))
    next(rows, None)
    for path, image_path in rows:
        yield path, image_path


def _assemble_hf(root: Path, meta: dict) -> int:
    manifest = pl.read_parquet(root / layout.INDEX_PARQUET)
    ids = {c["name"]: c["id"] for c in meta["classes"]}
    schema = pa.schema([("image", _IMAGE), ("label", _IMAGE), ("image_id", pa.string()), ("classes", pa.list_(pa.int64()))],
                       metadata={"huggingface": orjson.dumps({"info": {"features": hf_features(meta)}})})
    for split in sorted(meta["splits"]):
        rows = manifest.filter(pl.col("split") == split).sort("image_id")
        table = pa.table({
            "image": [{"bytes": (root / p).read_bytes(), "path": p} for p in rows["image_path"]],
            "label": [{"bytes": (root / p).read_bytes(), "path": p} for p in rows["mask_path"]],
            "image_id": rows["image_id"].to_list(),
            "classes": [sorted(ids[n] for n, pixels in orjson.loads(c).items() if pixels) for c in rows["class_pixels"]],
        }, schema=schema)
        target = root / layout.HF_DATA.format(split)
        target.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, target)
    return len(meta["splits"])


_IMAGE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])


def assembled_paths(names: list[str], read: Callable[[str], bytes]) -> dict[str, str]:
    """Files of the release's layouts that fetch assembles rather than SHA256SUMS listing them: each
    linked image by its layout path -> the released image it must equal; each hf Parquet -> `hf`."""
    present = set(names)
    found: dict[str, str] = {}
    for name in LINKED_LAYOUTS:
        listing = layout.EXPORT_IMAGES.format(name)
        if listing in present:
            found.update((path, image) for path, image in image_places(read(listing)) if path in present)
    hf_data = layout.HF_DATA.split("{}")[0]
    found.update((path, "hf") for path in present if path.startswith(hf_data) and path.endswith(".parquet"))
    return found


def layout_problems(path: str, source: str, data: bytes, sums: Mapping[str, str]) -> list[str]:
    """What is wrong with assembled file `path` (its bytes `data`): a linked image must be its released
    image as SHA256SUMS lists it; an hf Parquet must embed, row by row, image and mask bytes that
    SHA256SUMS lists under the paths the rows name."""
    if source != "hf":
        digest = hashlib.sha256(data).hexdigest()
        return [] if sums.get(source) == digest else [f"differs from {source}, the released image it is linked from"]
    try:
        table = pq.read_table(io.BytesIO(data), columns=["image", "label"])
    except (pa.ArrowException, OSError) as exc:
        return [f"unreadable Parquet: {exc}"]
    problems = []
    for column in ("image", "label"):
        for cell in table[column].to_pylist():
            if cell is None or sums.get(cell["path"]) != hashlib.sha256(cell["bytes"] or b"").hexdigest():
                problems.append(f"{column} of row {cell and cell['path']} is not the release's file of that path")
    return problems[:5]
