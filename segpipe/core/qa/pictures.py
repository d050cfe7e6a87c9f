"""Pictures of QA failures: the image beside its mask in taxonomy colours, the problem in a colour no class uses.

A reason in a table says what is wrong; a thumbnail shows where, so a reviewer sees the problem in
the check's metadata or the release's qa/ folder without opening the files. The photo panel keeps
the photo visible and outlines the problem; the mask panel shows the classes as drawn, unlabelled
pixels as the photo in grey, and the problem filled. The problem colour is the one farthest from
every class colour of the taxonomy (problem_colour), so it never reads as a class. Each thumbnail
is named after what it shows (image, mask, rule, reason, problem colour), so a rerun that finds it
draws nothing (a fragment rule with another size gives another reason, so another thumbnail).
"""

import io

import numpy as np
import polars as pl
from PIL import Image, ImageDraw

from segpipe.core.shared.artefacts import ArtefactStore, content_digest
from segpipe.core.shared.pictures import RGB, hex_colour, most_distinct_colour
from segpipe.core.qa.constraint_checks import enclosed_regions
from segpipe.core.qa.instance_areas import INSTANCE_AREA_OUTLIER
from segpipe.core.qa.mask_regions import mask_regions
from segpipe.core.qa.mask_structure import fragment_regions
from segpipe.core.qa.polygon_checks import OUTSIDE_IMAGE, SELF_INTERSECTION, TOO_FEW_POINTS, ZERO_AREA
from segpipe.core.rasterize.raster import decode_mask_png
from segpipe.core.taxonomy.legend import LegendEntry, class_legend
from segpipe.core.taxonomy.model import Taxonomy
from segpipe.store import keys as store_keys

PANEL_WIDTH = 480  # each of the two panels
PANEL_GAP = 4  # white between the photo and the mask
UNLABELLED_DIM = 0.6  # the photo's brightness, in grey, where the mask has no class
OUTLINE_PX = 2
PER_RULE = 12  # thumbnails drawn per rule: the worst cases a reviewer looks at, not every failure
OUTLINED_RULES = (SELF_INTERSECTION, TOO_FEW_POINTS, ZERO_AREA, OUTSIDE_IMAGE, INSTANCE_AREA_OUTLIER)  # findings name shapes
UNLABELLED_RULES = ("unlabeled_fraction", "mask_not_empty", "labels_mapped")
STYLE = b"photo|mask v2"  # in each thumbnail's name: a change of drawing draws every thumbnail anew


def problem_colour(taxonomy: Taxonomy) -> RGB:
    """The colour QA pictures mark problems in: the one farthest from every class colour."""
    return most_distinct_colour([c.color for c in taxonomy.classes])


def qa_legend(taxonomy: Taxonomy) -> list[LegendEntry]:
    """What the colours of a QA thumbnail mean: the classes, the problem colour, unlabelled pixels."""
    return [*class_legend(taxonomy),
            LegendEntry(problem_colour(taxonomy), "QA problem", "what a QA rule found: the failing polygon's outline, "
                        "or the failing pixels (filled in the mask, outlined in the photo)"),
            LegendEntry(None, f"unlabelled ({taxonomy.ignore_index})", "no class: the photo in grey, in the mask")]


def qa_thumbnail(photo: bytes, mask: np.ndarray, palette: np.ndarray, problem: RGB,
                 highlight: np.ndarray | None = None, outline: list[list[float]] = ()) -> bytes:
    """The photo and the mask side by side, PANEL_WIDTH wide each, with highlighted pixels (a boolean
    array of the mask's size) or outlines (rings in mask coordinates) in the `problem` colour.
    palette is (256, 3) with -1 for values that have no colour (ignore). Everything is drawn at
    panel size; a JPEG is even decoded at a reduced scale."""
    size = (PANEL_WIDTH, max(1, round(mask.shape[0] * PANEL_WIDTH / mask.shape[1])))
    with Image.open(io.BytesIO(photo)) as opened:
        opened.draft("RGB", size)
        picture = np.asarray(opened.convert("RGB").resize(size, Image.Resampling.BILINEAR), dtype=np.float32)
    colours = palette[np.asarray(Image.fromarray(mask).resize(size, Image.Resampling.NEAREST))]
    grey = picture.mean(axis=-1, keepdims=True) * UNLABELLED_DIM
    drawn = np.where((colours >= 0).all(axis=-1)[..., None], colours, grey)
    photo_panel = picture.copy()
    if highlight is not None:  # any highlighted pixel under a panel pixel marks it, so thin regions show
        marked = np.asarray(Image.fromarray(highlight.astype(np.uint8) * 255).resize(size, Image.Resampling.BOX)) > 0
        drawn[marked] = problem
        photo_panel[_edge(marked)] = problem
    image = Image.new("RGB", (2 * size[0] + PANEL_GAP, size[1]), "white")
    image.paste(Image.fromarray(photo_panel.astype(np.uint8)), (0, 0))
    image.paste(Image.fromarray(drawn.astype(np.uint8)), (size[0] + PANEL_GAP, 0))
    scale = size[0] / mask.shape[1]
    draw = ImageDraw.Draw(image)
    for left in (0, size[0] + PANEL_GAP):
        for ring in outline:
            points = [(left + x * scale, y * scale) for x, y in zip(ring[0::2], ring[1::2], strict=True)]
            draw.line([*points, points[0]], fill=problem, width=OUTLINE_PX)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def _edge(marked: np.ndarray) -> np.ndarray:
    """The marked pixels with an unmarked 4-neighbour (or on the border): the outline of each region."""
    inner = np.pad(marked, 1, constant_values=False)
    interior = inner[:-2, 1:-1] & inner[2:, 1:-1] & inner[1:-1, :-2] & inner[1:-1, 2:]
    return marked & ~interior


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
    mask_key, image_key; polygons: polygon_findings and instance_area_findings, whose shapes are
    outlined; shapes: the entries' shape rows). Fragments and regions enclosed against a constraint
    are the highlighted pixels. Returns entry_id, check_id, thumbnail_key."""
    palette = np.full((256, 3), -1.0, dtype=np.float32)
    for c in taxonomy.classes:
        palette[c.id] = c.color
    problem = problem_colour(taxonomy)
    flagged = polygons.join(shapes.select("entry_id", "shape_index", "rings"), on=["entry_id", "shape_index"])
    rings_of = {(e, c): [r for rings in group["rings"].to_list() for r in rings]
                for (e, c), group in flagged.group_by("entry_id", "check_id")}
    rows = []
    chosen = failures.sort("check_id", "entry_id").group_by("check_id", maintain_order=True).head(PER_RULE)
    for entry_id, check_id, reason, mask_key, image_key in chosen.select(
            "entry_id", "check_id", "reason", "mask_key", "image_key").iter_rows():
        key = store_keys.qa_thumbnail(check_id, entry_id, content_digest(
            mask_key.encode(), image_key.encode(), check_id.encode(), (reason or '').encode(), STYLE,
            hex_colour(problem).encode()))
        if not store.holds_png(key):
            mask = decode_mask_png(store.read_png(mask_key))
            outline = rings_of.get((entry_id, check_id), []) if check_id in OUTLINED_RULES else []
            store.write(key, qa_thumbnail(store.read(image_key), mask, palette, problem,
                                          _highlight(check_id, mask, taxonomy, min_fragment_px), outline))
        rows.append({"entry_id": entry_id, "check_id": check_id, "thumbnail_key": key})
    return pl.DataFrame(rows, schema={"entry_id": pl.String, "check_id": pl.String, "thumbnail_key": pl.String})


def failure_pictures(results: pl.DataFrame, rule_id: str | None = None) -> list[tuple[str, str]]:
    """(caption, thumbnail_key) of the failures in `results` (qa_report) that have a thumbnail, in
    the order to show them: one rule's by batch and file; every rule's with each rule's first
    before any rule's second, so the first few pictures show different problems."""
    failing = results.filter(~pl.col("passed") & pl.col("thumbnail_key").is_not_null())
    if rule_id is not None:
        failing = failing.filter(pl.col("check_id") == rule_id)
    ordered = (failing.sort("check_id", "batch_id", "file_name", "entry_id")
               .with_columns(pl.int_range(pl.len()).over("check_id").alias("rank"))
               .sort("rank", "check_id"))
    return [(f"{rule}: {batch} / {file_name}", key) for rule, batch, file_name, key in
            ordered.select("check_id", "batch_id", "file_name", "thumbnail_key").iter_rows()]
