"""Pictures of QA failures: the image, its mask in taxonomy colours, and the problem highlighted.

A reason in a table says what is wrong; a thumbnail shows where, so a reviewer sees the problem in
the check's metadata or the release's qa/ folder without opening the files. Each thumbnail is
named after what it shows (image, mask, rule, reason), so a rerun that finds it draws nothing
(a fragment rule with another size gives another reason, so another thumbnail).
"""

import io

import numpy as np
import polars as pl
from PIL import Image, ImageDraw

from segpipe.core.shared.artefacts import ArtefactStore, content_digest
from segpipe.core.qa.constraint_checks import enclosed_regions
from segpipe.core.qa.mask_regions import mask_regions
from segpipe.core.qa.mask_structure import fragment_regions
from segpipe.core.qa.polygon_checks import OUTSIDE_IMAGE, SELF_INTERSECTION, TOO_FEW_POINTS, ZERO_AREA
from segpipe.core.rasterize.raster import decode_mask_png
from segpipe.core.taxonomy.model import Taxonomy
from segpipe.store import keys as store_keys

THUMBNAIL_WIDTH = 480
HIGHLIGHT = (255, 0, 255)
MASK_OPACITY = 0.5
PER_RULE = 12  # thumbnails drawn per rule: the worst cases a reviewer looks at, not every failure
POLYGON_RULES = (SELF_INTERSECTION, TOO_FEW_POINTS, ZERO_AREA, OUTSIDE_IMAGE)
UNLABELLED_RULES = ("unlabeled_fraction", "mask_not_empty", "labels_mapped")


def qa_thumbnail(photo: bytes, mask: np.ndarray, palette: np.ndarray, highlight: np.ndarray | None = None,
                 outline: list[list[float]] = ()) -> bytes:
    """The photo under its mask's class colours, THUMBNAIL_WIDTH wide, with highlighted pixels (a
    boolean array of the mask's size) or outlines (rings in mask coordinates) in magenta. palette is
    (256, 3) with -1 for values that have no colour (ignore): unlabelled pixels show the photo.
    Everything is drawn at thumbnail size; a JPEG is even decoded at a reduced scale."""
    size = (THUMBNAIL_WIDTH, max(1, round(mask.shape[0] * THUMBNAIL_WIDTH / mask.shape[1])))
    with Image.open(io.BytesIO(photo)) as opened:
        opened.draft("RGB", size)
        picture = np.asarray(opened.convert("RGB").resize(size, Image.Resampling.BILINEAR), dtype=np.float32)
    small = np.asarray(Image.fromarray(mask).resize(size, Image.Resampling.NEAREST))
    colours = palette[small]
    labelled = (colours >= 0).all(axis=-1)
    blended = np.where(labelled[..., None], (1 - MASK_OPACITY) * picture + MASK_OPACITY * colours, picture)
    if highlight is not None:  # any highlighted pixel under a thumbnail pixel marks it, so thin regions show
        shrunk = Image.fromarray(highlight.astype(np.uint8) * 255).resize(size, Image.Resampling.BOX)
        blended[np.asarray(shrunk) > 0] = HIGHLIGHT
    image = Image.fromarray(blended.astype(np.uint8))
    scale = size[0] / mask.shape[1]
    draw = ImageDraw.Draw(image)
    for ring in outline:
        points = [(x * scale, y * scale) for x, y in zip(ring[0::2], ring[1::2], strict=True)]
        draw.line([*points, points[0]], fill=HIGHLIGHT, width=2)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def _highlight(check_id: str, mask: np.ndarray, taxonomy: Taxonomy, min_fragment_px: int) -> np.ndarray | None:
    if check_id in UNLABELLED_RULES:
        return mask == taxonomy.ignore_index
    if check_id == "mask_ids_in_taxonomy":
        return ~np.isin(mask, [*taxonomy.class_ids, taxonomy.ignore_index])
    if check_id == "tiny_fragments":
        regions = mask_regions(mask)
        return regions.pixels_of(fragment_regions(regions, min_fragment_px, taxonomy.ignore_index))
    enclosed = [rule for rule in taxonomy.constraints if rule.kind == "enclosed"]
    if check_id == "class_constraints" and enclosed:  # the other constraints are about the whole mask
        regions = mask_regions(mask)
        class_ids = {c.name: c.id for c in taxonomy.classes}
        inside = np.logical_or.reduce([enclosed_regions(rule, class_ids, regions) for rule in enclosed])
        return regions.pixels_of(inside) if inside.any() else None
    return None


def render_qa_thumbnails(
    failures: pl.DataFrame, polygons: pl.DataFrame, shapes: pl.DataFrame, taxonomy: Taxonomy, store: ArtefactStore,
    min_fragment_px: int = 0,
) -> pl.DataFrame:
    """A thumbnail for the first PER_RULE failures of each rule (failures: entry_id, check_id, reason,
    mask_key, image_key; polygons: polygon_findings; shapes: the entries' shape rows). Fragments and
    regions enclosed against a constraint are the highlighted pixels. Returns entry_id, check_id,
    thumbnail_key."""
    palette = np.full((256, 3), -1.0, dtype=np.float32)
    for c in taxonomy.classes:
        palette[c.id] = c.color
    flagged = polygons.join(shapes.select("entry_id", "shape_index", "rings"), on=["entry_id", "shape_index"])
    rings_of = {(e, c): [r for rings in group["rings"].to_list() for r in rings]
                for (e, c), group in flagged.group_by("entry_id", "check_id")}
    rows = []
    chosen = failures.sort("check_id", "entry_id").group_by("check_id", maintain_order=True).head(PER_RULE)
    for entry_id, check_id, reason, mask_key, image_key in chosen.select(
            "entry_id", "check_id", "reason", "mask_key", "image_key").iter_rows():
        key = store_keys.qa_thumbnail(check_id, entry_id, content_digest(
            mask_key.encode(), image_key.encode(), check_id.encode(), (reason or '').encode()))
        if not store.holds_png(key):
            mask = decode_mask_png(store.read_png(mask_key))
            outline = rings_of.get((entry_id, check_id), []) if check_id in POLYGON_RULES else []
            store.write(key, qa_thumbnail(store.read(image_key), mask, palette, _highlight(check_id, mask, taxonomy, min_fragment_px),
                                          outline))
        rows.append({"entry_id": entry_id, "check_id": check_id, "thumbnail_key": key})
    return pl.DataFrame(rows, schema={"entry_id": pl.String, "check_id": pl.String, "thumbnail_key": pl.String})
