"""QA and consensus per image at 2048x1024 with three annotators, against the rasterize stage.

Run with `make bench` (or `python -m segpipe_tests.bench.consensus [--scenes N]`). Data: the
Cityscapes-style scenes of the rasterize bench (segpipe_tests/bench/rasterize.py, same cache).
Each scene is rasterized by segpipe (reader, table, mapping, rasterize_shapes) into the first
annotator's mask; the second annotator's is the same mask one pixel to the right (every boundary
disputed), the third's relabels a few blocks (regions in dispute). For each image, on one core:
- rasterize stage: paint + encode of the three masks (what the three annotators cost upstream),
  timed in rounds beside consensus (below);
then, as the pipeline runs them, over every image at once, the CPU time shared out per image:
- QA as configured by default (no rule reads pixels): evaluate_entries on all entries, their
  class_pixels come from rasterization;
- the opt-in mask-structure rules on top: mask_structure on a fresh in-memory store (every mask
  decoded and its regions found cold, for tiny_fragments at BENCH_FRAGMENT_PX and the
  BENCH_CONSTRAINTS that need pixels);
- consensus: build_consensus on a fresh in-memory store, so every image is fused and scored
  cold, once under each fusion rule (the default reliability fusion: decode, vote rows, pairwise
  IoUs and agreement map, the estimate over all images, the weighted vote, the fused mask and
  confidence map; and plurality), --rounds times in alternating order with the rasterize stage
  of the same masks, median per image of the process's CPU time (see timed_rounds).
Targets: QA + consensus per image no slower than the rasterize stage per image (issue 5), judged on
the defaults and reported with the structure rules on as well; reliability fusion alone within
1.0x the rasterize stage (issue 20).

Then the fusion harness with known truth (segpipe_tests/bench/fusion_harness.py): every panel
(the issue's three annotators, the same with the weak pair's errors correlated, crowds of 5 and
7) over --harness-scenes generated scenes at 2048x1024, gold on the first 4, each fusion rule
scored against the truth beside the best single annotator. Acceptance (issue 20): reliability
fusion at least the best annotator's pixel accuracy and 1 point over plurality on the panels of 3,
above the best annotator on 5 and 7; the leaderboard in true error order; each annotator's first
reported confusion one of their planted swaps.
Results: $SEGPIPE_HOME/bench/consensus.json.
"""

import argparse
import dataclasses
import os
import statistics
import time
from collections.abc import Callable
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
from segpipe.core.rasterize.raster import rasterize_shapes
from segpipe.core.consensus.settings import ConsensusSettings
from segpipe.core.qa.settings import QaSettings
from segpipe_tests.bench.fusion_harness import GOLD_SCENES, PANELS, acceptance, run_panel, simulate
from segpipe_tests.bench.rasterize import OneFileSource, ensure_data, json_files

ANNOTATORS = 3
TIMED_RULES = ("reliability", "plurality")
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


def timed_rounds(scenes: list[tuple[pl.DataFrame, int, int, list[np.ndarray]]], entries: pl.DataFrame,
                 objects: dict[str, bytes], ignore: int, rounds: int) -> dict[str, float]:
    """Median ms per image over the rounds of the rasterize stage for the same three masks (paint
    three times, encode the three masks) and of a cold build_consensus under each fusion rule; in
    each round every case runs once, in alternating order. Timed as this process's CPU time
    (time.process_time, on its one pinned core), so other jobs sharing the machine, which stretch
    the wall clock by whole factors, do not count. Also the median over rounds of the paired ratio
    of reliability consensus to the rasterize stage."""
    def rasterize_stage() -> None:
        for mapped, width, height, masks in scenes:
            for _ in range(ANNOTATORS):
                rasterize_shapes(mapped, width, height, ignore)
            for mask in masks:
                encode_mask_png(mask)

    def consensus(rule: str) -> Callable[[], object]:
        return lambda: build_consensus(entries, ArtefactStore.in_memory(dict(objects)), ConsensusSettings(fusion=rule),
                                       ignore)

    cases = {"raster": rasterize_stage, **{rule: consensus(rule) for rule in TIMED_RULES}}
    times: dict[str, list[float]] = {case: [] for case in cases}
    for round_number in range(rounds):
        for case in cases if round_number % 2 == 0 else reversed(list(cases)):
            start = time.process_time()
            cases[case]()
            times[case].append((time.process_time() - start) * 1000 / len(scenes))
    ratios = [r / raster for r, raster in zip(times["reliability"], times["raster"], strict=True)]
    return {**{case: statistics.median(values) for case, values in times.items()}, "paired_ratio": statistics.median(ratios)}


def harness(scenes: int, width: int, height: int) -> list[dict]:
    """Each panel of the fusion harness, scored; printed as a table and checked against issue 20."""
    print(f"\nFusion against known truth: {scenes} scenes at {width}x{height}, gold on the first {GOLD_SCENES}; "
          "accuracy over truth-labelled pixels of the other scenes (ignore counts as wrong)")
    print(f"  {'panel':26s} {'method':18s} {'accuracy':>9s} {'mIoU':>7s} {'ignore':>7s}")
    results = []
    for panel in PANELS:
        report = run_panel(simulate(panel, scenes, width, height, GOLD_SCENES))
        best_name, best = report.best_annotator
        rows = [(rule, score) for rule, score in report.fused.items()] + [(f"best: {best_name}", best)]
        for method, score in rows:
            print(f"  {panel.name:26s} {method:18s} {100 * score.accuracy:8.2f}% {score.mean_iou:7.4f} "
                  f"{100 * score.ignore_share:6.2f}%")
        print(f"  {panel.name:26s} {'votes-only ceiling':18s} {100 * report.ceiling:8.2f}%")
        checks = acceptance(report, len(panel.annotators))
        for name, passed in checks.items():
            print(f"    [{'ok' if passed else 'MISS'}] {name}")
        results.append({"panel": panel.name, "fused": {r: dataclasses.asdict(s) for r, s in report.fused.items()},
                        "annotators": {a: dataclasses.asdict(s) for a, s in report.annotators.items()},
                        "true_error": report.true_error, "leaderboard": report.leaderboard,
                        "top_confusion": report.top_confusion, "votes_only_ceiling": report.ceiling,
                        "checks": checks})
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # 40: a build's fixed costs (the estimate, the tables' checks) shared as a release shares them, not by a handful
    parser.add_argument("--scenes", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--harness-scenes", type=int, default=12)
    home = Path(os.environ.get("SEGPIPE_HOME", Path.cwd() / ".segpipe"))
    parser.add_argument("--cache", type=Path, default=home / "bench" / "cache")
    args = parser.parse_args()
    from segpipe.core.ingest.formats import ReaderOptions
    from segpipe.core.ingest.formats.cityscapes import CITYSCAPES
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
    frames, objects, scenes = [], {}, []
    qa_settings = QaSettings(0.05, 0, min_fragment_px=BENCH_FRAGMENT_PX)
    for index, path in enumerate(files):
        [image] = CITYSCAPES.read(OneFileSource(path), [path.name], ReaderOptions())
        builder = ShapeTableBuilder()
        builder.add("e", image.shapes)
        mapped = map_labels(builder.frame(), pl.DataFrame({"entry_id": ["e"], "source": [source]}), taxonomy)
        masks = annotator_masks(rasterize_shapes(mapped, image.width, image.height, ignore), rng, ignore)
        scenes.append((mapped, image.width, image.height, masks))
        pngs = [encode_mask_png(mask) for mask in masks]
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
    # As the pipeline runs them: QA over every entry at once, consensus over every image at once.
    entries = pl.concat(frames)
    unmapped = pl.DataFrame(schema={"entry_id": pl.String, "raw_label": pl.String})
    start = time.process_time()
    evaluate_entries(entries, unmapped, default_taxonomy, QaSettings(0.05, 0))
    qa_ms = (time.process_time() - start) * 1000 / len(files)
    start = time.process_time()
    structure = mask_structure(entries, taxonomy, qa_settings.min_fragment_px, ArtefactStore.in_memory(dict(objects)))
    evaluate_entries(entries, unmapped, taxonomy, qa_settings, structure=structure)
    structure_ms = (time.process_time() - start) * 1000 / len(files) - qa_ms
    timed = timed_rounds(scenes, entries, objects, ignore, args.rounds)
    images, _, _, _ = build_consensus(entries, ArtefactStore.in_memory(dict(objects)), ConsensusSettings(), ignore)
    agreements = images["agreement"].to_list()
    median = {"raster_ms": timed["raster"], "qa_ms": qa_ms, "structure_ms": structure_ms,
              "consensus_ms": timed["reliability"], "plurality_ms": timed["plurality"]}
    ratio = (median["qa_ms"] + median["consensus_ms"]) / median["raster_ms"]
    fusion_ratio = timed["paired_ratio"]
    ratio_all = (median["qa_ms"] + median["structure_ms"] + median["consensus_ms"]) / median["raster_ms"]
    print(f"\nQA and consensus benchmark: {len(files)} images at 2048x1024, {ANNOTATORS} annotators each, one core, "
          "CPU time")
    print(f"  rasterize stage (3 masks: paint and encode)           {median['raster_ms']:7.2f} ms/image")
    print(f"  QA, default rules (3 entries, from class_pixels)     {median['qa_ms']:7.2f} ms/image")
    print(f"  consensus, reliability fusion (decode 3, vote rows, 3 pairwise IoUs, agreement map, estimate, "
          f"fused PNG and confidence map) {median['consensus_ms']:5.2f} ms/image, "
          f"{1000 / (median['qa_ms'] + median['consensus_ms']):.0f} images/s with QA")
    print(f"  consensus, plurality fusion                           {median['plurality_ms']:7.2f} ms/image")
    print(f"  [{'ok' if fusion_ratio <= 1 else 'MISS'}] reliability consensus / rasterize stage: {fusion_ratio:.2f} "
          "(median of paired per-round ratios)   target <= 1")
    print(f"  [{'ok' if ratio <= 1 else 'MISS'}] QA + consensus / rasterize stage: {ratio:.2f}   target <= 1")
    print(f"  opt-in mask-structure rules (decode 3, regions, fragments, 3 constraints; cold) "
          f"{median['structure_ms']:5.2f} ms/image, {len(structure)} of {entries.height} masks with findings")
    print(f"  [{'ok' if ratio_all <= 1 else 'over'}] with them on: {ratio_all:.2f}")
    print(f"  mean agreement of the constructed annotators: {statistics.fmean(agreements):.3f}")
    fusion = harness(args.harness_scenes, 2048, 1024) if args.harness_scenes else []
    out = home / "bench" / "consensus.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(orjson.dumps({"images": len(files), "median_ms": median, "ratio": ratio, "fusion_ratio": fusion_ratio,
                                  "ratio_with_structure_rules": ratio_all, "fusion_harness": fusion},
                                 option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
