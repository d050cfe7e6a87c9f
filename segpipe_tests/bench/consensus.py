"""QA and consensus per image at 2048x1024 with three annotators, against the rasterize stage.

Run with `make bench` (or `python -m segpipe_tests.bench.consensus [--scenes N]`). Data: the
Cityscapes-style scenes of the rasterize bench (segpipe_tests/bench/rasterize.py, same cache).
Each scene is rasterized by segpipe (reader, table, mapping, rasterize_shapes) into the first
annotator's mask; the second annotator's is the same mask one pixel to the right (every boundary
disputed), the third's relabels a few blocks (regions in dispute). For each image, on one core:
- rasterize stage: paint + encode of the three masks (what the three annotators cost upstream);
then, as the pipeline runs them, over every image at once, the time shared out per image:
- QA as configured by default (no rule reads pixels): evaluate_entries on all entries, their
  class_pixels come from rasterization;
- the opt-in mask-structure rules on top: mask_structure on a fresh in-memory store (every mask
  decoded and its regions found cold, for tiny_fragments at BENCH_FRAGMENT_PX and the
  BENCH_CONSTRAINTS that need pixels);
- consensus: build_consensus on a fresh in-memory store, so every image is fused and scored
  cold: three PNG decodes, the vote, three pairwise IoUs, the fused PNG and its outcome.
Target (issue 5): QA + consensus per image no slower than the rasterize stage per image; judged on
the defaults, and reported with the structure rules on as well.
Results: $SEGPIPE_HOME/bench/consensus.json.
"""

import argparse
import dataclasses
import os
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import orjson
import polars as pl

from segpipe.core.shared.artefacts import ArtefactStore
from segpipe.core.taxonomy.class_constraints import parse_constraint
from segpipe.core.consensus.fusion import build_consensus
from segpipe.core.rasterize.label_masks import class_pixels
from segpipe.core.qa.mask_structure import mask_structure
from segpipe.core.shared.png import encode_mask_png
from segpipe.core.qa.rules import evaluate_entries
from segpipe.core.consensus.settings import ConsensusSettings
from segpipe.core.qa.settings import QaSettings
from segpipe_tests.bench.rasterize import OneFileSource, ensure_data, json_files

ANNOTATORS = 3
LANDED = datetime(2026, 3, 1, tzinfo=UTC)  # every entry from one batch
BENCH_FRAGMENT_PX = 50  # the fragment rule on, as a project that sets qa.min_fragment_px runs it
BENCH_CONSTRAINTS = (  # one rule of each kind that reads the mask's regions
    {"class": "road", "touches": "bottom"},
    {"classes": ["sky", "road"], "adjacent": False},
    {"classes": ["car", "sky"], "enclosed": False},
)


def annotator_masks(first: np.ndarray, rng: np.random.Generator, ignore_index: int) -> list[np.ndarray]:
    shifted = np.roll(first, 1, axis=1)
    relabelled = first.copy()
    height, width = first.shape
    for _ in range(6):
        y, x = int(rng.integers(0, height - 120)), int(rng.integers(0, width - 160))
        relabelled[y:y + 120, x:x + 160] = rng.choice([v for v in np.unique(first).tolist() if v != ignore_index])
    return [first, shifted, relabelled]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=20)
    home = Path(os.environ.get("SEGPIPE_HOME", Path.cwd() / ".segpipe"))
    parser.add_argument("--cache", type=Path, default=home / "bench" / "cache")
    args = parser.parse_args()
    from segpipe.core.ingest.formats import ReaderOptions
    from segpipe.core.ingest.formats.cityscapes import CITYSCAPES
    from segpipe.core.rasterize.raster import rasterize_shapes
    from segpipe.core.ingest.shape_table import ShapeTableBuilder
    from segpipe.core.taxonomy.model import map_labels
    from segpipe_tests.bench.cityscapes_scenes import cityscapes_taxonomy

    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    default_taxonomy, _, source = cityscapes_taxonomy()
    names = {c.name for c in default_taxonomy.classes}
    taxonomy = dataclasses.replace(default_taxonomy, constraints=tuple(
        parse_constraint(rule, names, "bench", None) for rule in BENCH_CONSTRAINTS))
    ignore = taxonomy.ignore_index
    files = json_files(ensure_data(args.cache, 4 * 40, 2048, 1024, 0))[:args.scenes]
    rng = np.random.default_rng(0)
    rows, frames, objects = [], [], {}
    qa_settings = QaSettings(0.05, 0, min_fragment_px=BENCH_FRAGMENT_PX)
    consensus_settings = ConsensusSettings(0.5, 0.6)
    for index, path in enumerate(files):
        [image] = CITYSCAPES.read(OneFileSource(path), [path.name], ReaderOptions())
        builder = ShapeTableBuilder()
        builder.add("e", image.shapes)
        mapped = map_labels(builder.frame(), pl.DataFrame({"entry_id": ["e"], "source": [source]}), taxonomy)
        start = time.perf_counter()
        first = rasterize_shapes(mapped, image.width, image.height, ignore)
        raster_one = (time.perf_counter() - start) * 1000
        masks = annotator_masks(first, rng, ignore)
        start = time.perf_counter()
        pngs = [encode_mask_png(mask) for mask in masks]
        encode_ms = (time.perf_counter() - start) * 1000
        keys = [f"img{index}-m{n}" for n in range(ANNOTATORS)]
        objects.update(zip(keys, pngs, strict=True))
        frames.append(pl.DataFrame({
            "entry_id": [f"img{index}-e{n}" for n in range(ANNOTATORS)], "batch_id": "b", "file_name": path.name,
            "landed_at": LANDED,
            "image_id": f"img{index}", "annotator": [f"ann{n}" for n in range(ANNOTATORS)], "is_gold": False,
            "mask_key": keys, "instance_mask_key": None, "width": image.width, "height": image.height,
            "class_pixels": [class_pixels(mask) for mask in masks],
            "perceptual_hash": f"{index * 0x0F0F0F0F0F0F:016x}",  # distinct images
        }, schema_overrides={"instance_mask_key": pl.String}))
        rows.append({"raster_ms": ANNOTATORS * raster_one + encode_ms})
    # As the pipeline runs them: QA over every entry at once, consensus over every image at once.
    entries = pl.concat(frames)
    unmapped = pl.DataFrame(schema={"entry_id": pl.String, "raw_label": pl.String})
    start = time.perf_counter()
    evaluate_entries(entries, unmapped, default_taxonomy, QaSettings(0.05, 0))
    qa_ms = (time.perf_counter() - start) * 1000 / len(files)
    start = time.perf_counter()
    structure = mask_structure(entries, taxonomy, qa_settings.min_fragment_px, ArtefactStore.in_memory(dict(objects)))
    evaluate_entries(entries, unmapped, taxonomy, qa_settings, structure=structure)
    structure_ms = (time.perf_counter() - start) * 1000 / len(files) - qa_ms
    start = time.perf_counter()
    images, _, _ = build_consensus(entries, ArtefactStore.in_memory(objects), consensus_settings, ignore)
    consensus_ms = (time.perf_counter() - start) * 1000 / len(files)
    for row in rows:
        row.update(qa_ms=qa_ms, structure_ms=structure_ms, consensus_ms=consensus_ms)
    agreements = images["agreement"].to_list()
    median = {k: statistics.median(r[k] for r in rows) for k in ("raster_ms", "qa_ms", "structure_ms", "consensus_ms")}
    ratio = (median["qa_ms"] + median["consensus_ms"]) / median["raster_ms"]
    ratio_all = (median["qa_ms"] + median["structure_ms"] + median["consensus_ms"]) / median["raster_ms"]
    print(f"\nQA and consensus benchmark: {len(rows)} images at 2048x1024, {ANNOTATORS} annotators each, one core")
    print(f"  rasterize stage (3 masks: paint and encode)           {median['raster_ms']:7.2f} ms/image")
    print(f"  QA, default rules (3 entries, from class_pixels)     {median['qa_ms']:7.2f} ms/image")
    print(f"  consensus (decode 3, vote, 3 pairwise IoUs, fused PNG and agreement map) {median['consensus_ms']:5.2f} ms/image, "
          f"{1000 / (median['qa_ms'] + median['consensus_ms']):.0f} images/s with QA")
    print(f"  [{'ok' if ratio <= 1 else 'MISS'}] QA + consensus / rasterize stage: {ratio:.2f}   target <= 1")
    print(f"  opt-in mask-structure rules (decode 3, regions, fragments, 3 constraints; cold) "
          f"{median['structure_ms']:5.2f} ms/image, {len(structure)} of {entries.height} masks with findings")
    print(f"  [{'ok' if ratio_all <= 1 else 'over'}] with them on: {ratio_all:.2f}")
    print(f"  mean agreement of the constructed annotators: {statistics.fmean(agreements):.3f}")
    out = home / "bench" / "consensus.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(orjson.dumps({"images": len(rows), "median_ms": median, "ratio": ratio,
                                  "ratio_with_structure_rules": ratio_all, "rows": rows},
                                 option=orjson.OPT_INDENT_2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
