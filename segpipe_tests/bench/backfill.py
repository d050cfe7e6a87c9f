"""Taxonomy mapping-only backfills against a cold build of the same data, through the whole graph.

Generates the demo landing zone (default 120 scenes at 2048x1024), runs a cold build (ingest,
map, draw, QA, consensus, sampling, release) with Dagster on a temporary SQLite instance, then two
edits of different reach, each followed by `segpipe backfill` (map, remap, QA, consensus,
sampling, release): an alias for the demo's unmapped label (a few masks change), then a remap of
one vendor's car label (every mask of that vendor changes). For each it prints the wall time, its
ratio to the cold build (target: at most 0.20), how many masks changed, and the time of each step
from Dagster's step records. `--part-mib` sets release.part_mib (default: the demo's, which keeps the
demo's release one ZIP), so the release's images go into shared parts that a backfill does not
rewrite. Results go to $SEGPIPE_HOME/bench/backfill.json.
"""

import argparse
import os
import tempfile
import time
from pathlib import Path

import dagster as dg
import orjson

from segpipe.demo import DEMO_CONFIG, generate_demo
from segpipe.definitions import defs as load_defs
from segpipe.environment import current_environment
from segpipe.cli.local_build import run_local_build, run_taxonomy_backfill

PER_BATCH_STEPS = ("ingest_annotation_batch", "mapped_shapes", "label_masks", "annotation_masks")


def step_seconds(instance: dg.DagsterInstance, since: float) -> dict[str, float]:
    """Seconds spent in each step of the runs launched since a time, summed over partitions."""
    totals: dict[str, float] = {}
    for record in instance.get_run_records():
        if record.create_timestamp.timestamp() < since:
            continue
        for stats in instance.get_run_step_stats(record.dagster_run.run_id):
            if stats.start_time and stats.end_time:
                totals[stats.step_key] = totals.get(stats.step_key, 0.0) + stats.end_time - stats.start_time
    return totals


def changed_masks(defs: dg.Definitions, instance: dg.DagsterInstance, before: dict[str, str]) -> tuple[int, dict]:
    """How many entries' class masks differ from `before` (entry -> mask key), and the new keys."""
    keys = {}
    for batch in instance.get_dynamic_partitions("annotation_batches"):
        masks = defs.load_asset_value("annotation_masks", instance=instance, partition_key=batch)
        keys.update(masks.select("entry_id", "mask_key").iter_rows())
    return sum(keys[e] != before.get(e) for e in keys), keys


def edits(demo, taxonomy_text: str) -> list[tuple[str, str]]:
    """Two mapping-only edits of different reach: the demo's unmapped label gets an alias (a few
    entries change), then one vendor's car label is remapped (every entry of that vendor changes)."""
    defect = next(d for d in orjson.loads(Path(demo.ground_truth_path).read_bytes())["defects"]
                  if d["kind"] == "unmapped_label")
    source = orjson.loads((Path(demo.landing_root) / defect["batch_id"] / "batch.json").read_bytes())["source"]
    alias = taxonomy_text.replace(f"  {source}:\n", f"  {source}:\n    {defect['label']}: pole\n", 1)
    return [(f"alias '{defect['label']}: pole' for {source}", alias),
            ("remap vendor_b 'automobile' from car to road", alias.replace("    automobile: car", "    automobile: road"))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scenes", type=int, default=120)
    parser.add_argument("--width", type=int, default=2048)
    parser.add_argument("--height", type=int, default=1024)
    parser.add_argument("--part-mib", type=float, default=None, help="release.part_mib (default: the demo's)")
    args = parser.parse_args()
    out = Path(os.environ.get("SEGPIPE_HOME", ".segpipe")) / "bench" / "backfill.json"
    with tempfile.TemporaryDirectory(prefix="segpipe-bench-") as tmp:
        work = Path(tmp)
        demo = generate_demo(work / "demo", n_scenes=args.scenes, width=args.width, height=args.height, seed=0)
        taxonomy = work / "taxonomy.yaml"
        taxonomy.write_text((DEMO_CONFIG / "taxonomy.yaml").read_text())
        pipeline = Path(demo.pipeline_path)
        if args.part_mib is not None:
            pipeline = work / "pipeline.yaml"
            pipeline.write_text(Path(demo.pipeline_path).read_text() + f"release:\n  part_mib: {args.part_mib}\n")
        os.environ.update({"SEGPIPE_LANDING_ROOT": str(demo.landing_root), "SEGPIPE_STORAGE_ROOT": str(work / "store"),
                           "SEGPIPE_TAXONOMY": str(taxonomy), "SEGPIPE_PIPELINE_CONFIG": str(pipeline),
                           "SEGPIPE_PSEUDONYM_KEY_FILE": str(work / "key")})
        with dg.instance_for_test() as instance:
            started, start = time.time(), time.perf_counter()
            cold = run_local_build(load_defs(), instance, current_environment())
            cold_s = time.perf_counter() - start
            cold_steps = step_seconds(instance, started)
            _, keys = changed_masks(load_defs(), instance, {})
            runs = []
            for name, text in edits(demo, taxonomy.read_text()):
                taxonomy.write_text(text)
                started, start = time.time(), time.perf_counter()
                backfill = run_taxonomy_backfill(load_defs(), instance, current_environment())
                backfill_s = time.perf_counter() - start
                changed, keys = changed_masks(load_defs(), instance, keys)
                runs.append({"edit": name, "backfill_s": round(backfill_s, 2), "ratio": round(backfill_s / cold_s, 3),
                             "masks_changed": changed, "steps_s": step_seconds(instance, started),
                             "new_release": backfill.release_metadata["version"] != cold.release_metadata["version"],
                             "parts": backfill.release_metadata.get("parts", 0),
                             "parts_written": backfill.release_metadata.get("parts_written", 0)})
    entries = cold.release_metadata["entries"]["input"]
    result = {"scenes": args.scenes, "size": f"{args.width}x{args.height}", "entries": entries,
              "part_mib": args.part_mib, "cold_parts": cold.release_metadata.get("parts", 0),
              "cold_build_s": round(cold_s, 2), "cold_steps_s": {k: round(v, 2) for k, v in sorted(cold_steps.items())},
              "backfills": [{**r, "steps_s": {k: round(v, 2) for k, v in sorted(r["steps_s"].items())}} for r in runs]}
    print(f"{entries} entries ({args.scenes} scenes at {args.width}x{args.height}), whole graph on one machine, "
          f"Dagster on SQLite; cold: one run per batch, as the landing sensor launches them; backfill: one run over "
          f"every batch, as `segpipe backfill` and a single-run backfill in the UI launch it:")
    print(f"  cold build {cold_s:.1f} s (per-batch stages {sum(v for k, v in cold_steps.items() if k in PER_BATCH_STEPS):.1f} s)")
    for r in runs:
        per_batch = sum(v for k, v in r["steps_s"].items() if k in PER_BATCH_STEPS)
        print(f"  backfill after {r['edit']}: {r['backfill_s']:.1f} s = {r['ratio']:.2f} of the cold build "
              f"(target <= 0.20); {r['masks_changed']} of {entries} masks changed; per-batch stages {per_batch:.1f} s; "
              f"new release: {r['new_release']}; parts written {r['parts_written']} of {r['parts']}")
    steps = sorted(set(cold_steps).union(*(r["steps_s"] for r in runs)))
    print(f"    {'step':32s} {'cold':>7s}" + "".join(f" {'edit ' + str(i + 1):>8s}" for i in range(len(runs))))
    for step in steps:
        print(f"    {step:32s} {cold_steps.get(step, 0.0):7.2f}" + "".join(f" {r['steps_s'].get(step, 0.0):8.2f}" for r in runs))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
