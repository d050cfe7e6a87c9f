"""A taxonomy mapping-only backfill against a cold build of the same data, through the whole graph.

Generates the demo landing zone (default 120 scenes at 2048x1024), runs a cold build (ingest,
map, draw, QA, consensus, sampling, release) with Dagster on a temporary SQLite instance, edits
one alias in the taxonomy, runs the backfill (map, remap, QA, consensus, sampling, release), and
prints both wall times and their ratio (target: backfill at most 20% of the cold build), with the
time of each stage from Dagster's step records: the per-batch stages (ingest, map, draw, remap)
apart from the stages every new mask must go through again (QA, consensus, sampling, release).
Results go to $SEGPIPE_HOME/bench/backfill.json.
"""

import argparse
import os
import tempfile
import time
from pathlib import Path

import dagster as dg
import orjson

from segpipe.core.demo import generate_demo
from segpipe.definitions import defs as load_defs
from segpipe.environment import PACKAGE_CONFIG, current_environment
from segpipe.local_build import run_local_build, run_taxonomy_backfill

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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scenes", type=int, default=120)
    parser.add_argument("--width", type=int, default=2048)
    parser.add_argument("--height", type=int, default=1024)
    args = parser.parse_args()
    out = Path(os.environ.get("SEGPIPE_HOME", ".segpipe")) / "bench" / "backfill.json"
    with tempfile.TemporaryDirectory(prefix="segpipe-bench-") as tmp:
        work = Path(tmp)
        demo = generate_demo(work / "demo", n_scenes=args.scenes, width=args.width, height=args.height, seed=0)
        taxonomy = work / "taxonomy.yaml"
        taxonomy.write_text((PACKAGE_CONFIG / "taxonomy.yaml").read_text())
        os.environ.update({"SEGPIPE_LANDING_ROOT": str(demo.landing_root), "SEGPIPE_STORAGE_ROOT": str(work / "store"),
                           "SEGPIPE_TAXONOMY": str(taxonomy), "SEGPIPE_PSEUDONYM_KEY_FILE": str(work / "key")})
        with dg.instance_for_test() as instance:
            started, start = time.time(), time.perf_counter()
            cold = run_local_build(load_defs(), instance, current_environment())
            cold_s = time.perf_counter() - start
            cold_steps = step_seconds(instance, started)
            taxonomy.write_text(taxonomy.read_text().replace("    automobile: car", "    automobile: road"))
            started, start = time.time(), time.perf_counter()
            backfill = run_taxonomy_backfill(load_defs(), instance, current_environment())
            backfill_s = time.perf_counter() - start
            backfill_steps = step_seconds(instance, started)
    entries = cold.release_metadata["counts"]["input"]
    result = {
        "scenes": args.scenes, "size": f"{args.width}x{args.height}", "entries": entries,
        "cold_build_s": round(cold_s, 2), "backfill_s": round(backfill_s, 2), "ratio": round(backfill_s / cold_s, 3),
        "new_release": backfill.release_metadata["version"] != cold.release_metadata["version"],
        "cold_steps_s": {k: round(v, 2) for k, v in sorted(cold_steps.items())},
        "backfill_steps_s": {k: round(v, 2) for k, v in sorted(backfill_steps.items())},
    }
    per_batch = [sum(v for k, v in steps.items() if k in PER_BATCH_STEPS) for steps in (cold_steps, backfill_steps)]
    print(f"{entries} entries ({args.scenes} scenes at {args.width}x{args.height}), whole graph on one machine:")
    print(f"  cold build             {cold_s:8.1f} s")
    print(f"  mapping-only backfill  {backfill_s:8.1f} s   = {backfill_s / cold_s:.2f} of the cold build (target <= 0.20)")
    print(f"  per-batch stages       {per_batch[0]:8.1f} s cold, {per_batch[1]:.1f} s backfill "
          f"= {per_batch[1] / per_batch[0]:.2f} (ingest, map, draw vs map, remap)")
    for step in sorted(set(cold_steps) | set(backfill_steps)):
        print(f"    {step:32s} {cold_steps.get(step, 0.0):7.2f} s cold {backfill_steps.get(step, 0.0):7.2f} s backfill")
    print(f"  new release published: {result['new_release']}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
