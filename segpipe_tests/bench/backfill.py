"""A taxonomy mapping-only backfill against a cold build of the same data, through the whole graph.

Generates the demo landing zone (default 120 scenes at 2048x1024), runs a cold build (ingest,
map, draw, QA, consensus, sampling, release) with Dagster on a temporary SQLite instance, edits
one alias in the taxonomy, runs the backfill (map, remap, QA, consensus, sampling, release), and
prints both wall times and their ratio (target: backfill at most 20% of the cold build). Results
go to $SEGPIPE_HOME/bench/backfill.json.
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
        with dg.instance_for_test(temp_dir=str(work / "dagster")) as instance:
            start = time.perf_counter()
            cold = run_local_build(load_defs(), instance, current_environment())
            cold_s = time.perf_counter() - start
            taxonomy.write_text(taxonomy.read_text().replace("    automobile: car", "    automobile: road"))
            start = time.perf_counter()
            backfill = run_taxonomy_backfill(load_defs(), instance, current_environment())
            backfill_s = time.perf_counter() - start
    entries = cold.release_metadata["counts"]["input"]
    result = {
        "scenes": args.scenes, "size": f"{args.width}x{args.height}", "entries": entries,
        "cold_build_s": round(cold_s, 2), "backfill_s": round(backfill_s, 2), "ratio": round(backfill_s / cold_s, 3),
        "new_release": backfill.release_metadata["version"] != cold.release_metadata["version"],
    }
    print(f"{entries} entries ({args.scenes} scenes at {args.width}x{args.height}), whole graph on one machine:")
    print(f"  cold build             {cold_s:8.1f} s")
    print(f"  mapping-only backfill  {backfill_s:8.1f} s   = {backfill_s / cold_s:.2f} of the cold build (target <= 0.20)")
    print(f"  new release published: {result['new_release']}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
