"""Peak memory and wall time of the whole graph as the dataset grows, at one image size.

Run with `make bench` (or `python -m segpipe_tests.bench.scale_sweep [--sizes 1000 3000 10000]
[--ratio-size 5000]`). Data: the Cityscapes-style scenes of whole_graph.py (its helpers, imported),
at 512x256 unless --width/--height say otherwise, generated once into $SEGPIPE_HOME/bench/cache.

Each size runs in a fresh child process, on a temporary Dagster SQLite instance and store, as
`segpipe build` runs the graph (segpipe/cli/local_build.py), in batches of whole_graph.BATCH_SCENES:
- cold: every batch ingested, mapped and drawn, then QA, consensus, sampling and release;
- at --ratio-size only, then: a nightly build with 1% new scenes in one more batch, and an
  alias-only taxonomy backfill (ALIAS_EDIT: a mapping for a label no scene holds, so no mask
  changes), each as a ratio of its wall time to the cold build's.

Peak memory is the sum over the build's processes: every SAMPLE_S the parent takes the resident set of
the child plus the pages private to every process it started (tree_bytes, from /proc/PID/smaps_rollup;
a process forked from the build, as Dagster's per-run watcher is, shares the build's pages until it
execs, so summed resident sets would count them twice), and keeps the largest, overall and per step
(the steps' windows come from Dagster's step records), with the step or gap between steps where the
peak fell. The child's own ru_maxrss is reported beside it. The target
(issue 19): under 1 GiB and flat, the largest size at most FLAT_TOLERANCE above the smallest.
Results: $SEGPIPE_HOME/bench/scale_sweep.json, written after each size.
"""

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import orjson

from segpipe_tests.bench.rasterize import ensure_data, json_files
from segpipe_tests.bench.whole_graph import (
    BATCH_SCENES, FLAT_TOLERANCE, MIB, _cpu_seconds, _peak_rss_mib, _phase, bench_pipeline, bench_project,
    land_batch, launched_copy, new_scenes,
)

PEAK_RSS_TARGET_MIB = 1024.0
TARGETS = {"peak_rss_mib": PEAK_RSS_TARGET_MIB, "nightly_over_cold": 0.10, "backfill_over_cold": 0.20}
# issue 19: a nightly costs at most this much more than the cold build's cost per image for its new images
NIGHTLY_FIXED_S = 10.0
SAMPLE_S = 0.2
DATA_SCENES = 10_100  # one generated set for every sweep up to 10,000 scenes: each size takes its first scenes
# A mapping for a label no generated scene holds: the taxonomy changes, no mask does.
ALIAS_EDIT = ("    - {label: polegroup,            to: void}",
              "    - {label: polegroup,            to: void}\n    - {label: pole group,           to: pole}")


# --- parent: the memory of a process tree ------------------------------------------------------


def _process_tree(root: int) -> list[int]:
    """root and every process descended from it, from /proc/*/stat, but copies of their parent in the
    moment of a launch (whole_graph.launched_copy)."""
    parents: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:  # gone meanwhile
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(child for child in parents.get(pid, []) if not launched_copy(child, pid))
    return tree


def _memory_bytes(pid: int, fields: tuple[str, ...]) -> int:
    """The sum of `fields` (kB lines) of /proc/PID/smaps_rollup; 0 for a process gone meanwhile."""
    total = 0
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            name, _, value = line.partition(":")
            if name in fields:
                total += int(value.split()[0]) * 1024
    except (OSError, IndexError, ValueError):
        return 0
    return total


def tree_bytes(root: int) -> int:
    """The build's memory: the resident set of its process, plus the pages private to each process it
    started. A process forked from the build shares all of its pages until it execs, and a library it
    maps is resident in the build already: summing resident sets would count those pages twice, and
    proportional set sizes would depend on unrelated processes mapping the same libraries."""
    return _memory_bytes(root, ("Rss",)) + sum(
        _memory_bytes(pid, ("Private_Clean", "Private_Dirty")) for pid in _process_tree(root) if pid != root)


class TreeSampler:
    """Samples tree_bytes of a process tree every SAMPLE_S in a thread: (time, bytes)."""

    def __init__(self, root: int) -> None:
        self.root, self.samples = root, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.time(), tree_bytes(self.root)))
            self._stop.wait(SAMPLE_S)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def peak_mib(self, start: float = 0.0, end: float = float("inf")) -> float:
        return max((rss for at, rss in self.samples if start <= at <= end), default=0) / MIB

    def peak_time(self, start: float, end: float) -> float | None:
        within = [(rss, at) for at, rss in self.samples if start <= at <= end]
        return max(within)[1] if within else None


def _peak_at(at: float | None, windows: list[tuple[str, float, float]]) -> str:
    """The step whose window holds the moment of the peak, else which steps it fell between."""
    if at is None:
        return "no sample"
    for step, start, end in windows:
        if start <= at <= end:
            return step
    before = max(((end, step) for step, _, end in windows if end < at), default=(None, "the start"))[1]
    after = min(((start, step) for step, start, _ in windows if start > at), default=(None, "the end"))[1]
    return f"outside any step: after {before}, before {after}"


# --- child: the builds of one size --------------------------------------------------------------


def _step_windows(instance, since: float) -> list[tuple[str, float, float]]:
    """(step, start, end) of every step of the runs launched since a time."""
    windows = []
    for record in instance.get_run_records():
        if record.create_timestamp.timestamp() < since:
            continue
        for stats in instance.get_run_step_stats(record.dagster_run.run_id):
            if stats.start_time and stats.end_time:
                windows.append((stats.step_key, stats.start_time, stats.end_time))
    return windows


def child_build(data: Path, size: int, work_root: Path, with_ratios: bool) -> dict:
    import dagster as dg

    from segpipe.cli.local_build import DEFAULT_BATCH_WORKERS, run_local_build, run_taxonomy_backfill
    from segpipe.definitions import defs as load_defs
    from segpipe.environment import current_environment
    from segpipe_tests.bench.backfill import step_seconds

    files = json_files(data)
    extra = new_scenes(size)
    if len(files) < size + extra:
        raise SystemExit(f"{data}: {len(files)} scenes, {size + extra} needed")
    with tempfile.TemporaryDirectory(prefix="segpipe-scale-sweep-", dir=work_root) as tmp:
        work = Path(tmp)
        landing, taxonomy = bench_project(work, data, files[:size], bench_pipeline())
        phases, windows = {}, {}
        with dg.instance_for_test() as instance:
            def timed(name: str, build, landed: int, **options) -> None:
                started, start, cpu = time.time(), time.perf_counter(), _cpu_seconds()
                outcome = build(load_defs(), instance, current_environment(), **options)
                phases[name] = _phase(outcome, time.perf_counter() - start, _cpu_seconds() - cpu,
                                      step_seconds(instance, started), landed)
                phases[name].update(started_at=started, ended_at=time.time(), self_peak_rss_mib=_peak_rss_mib())
                windows[name] = _step_windows(instance, started)

            timed("cold", run_local_build, size, batch_workers=DEFAULT_BATCH_WORKERS)  # as `segpipe build` runs
            if with_ratios:
                land_batch(landing, "cs-nightly", data, files[size:size + extra])
                timed("nightly", run_local_build, size + extra, batch_workers=DEFAULT_BATCH_WORKERS)
                text = taxonomy.read_text()
                if ALIAS_EDIT[0] not in text:
                    raise SystemExit(f"{taxonomy}: the line {ALIAS_EDIT[0].strip()!r} to edit is not there")
                taxonomy.write_text(text.replace(*ALIAS_EDIT))
                timed("backfill", run_taxonomy_backfill, size + extra)
    return {"size": size, "new_scenes": extra if with_ratios else 0, "phases": phases, "step_windows": windows}


# --- parent: one size in a fresh process --------------------------------------------------------


def run_child(data: Path, size: int, work_root: Path, with_ratios: bool) -> dict:
    command = [sys.executable, "-m", "segpipe_tests.bench.scale_sweep", "--child", "--data", str(data),
               "--child-size", str(size), "--work", str(work_root)] + (["--with-ratios"] if with_ratios else [])
    child = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)  # its stderr shows progress
    sampler = TreeSampler(child.pid)
    out, _ = child.communicate()
    sampler.stop()
    if child.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed (exit {child.returncode}), see its stderr above")
    result = orjson.loads(out.strip().splitlines()[-1])
    for name, phase in result["phases"].items():
        phase["peak_rss_mib"] = sampler.peak_mib(phase["started_at"], phase["ended_at"])
        phase["peak_at"] = _peak_at(sampler.peak_time(phase["started_at"], phase["ended_at"]),
                                    result["step_windows"][name])
        steps: dict[str, float] = {}
        for step, start, end in result["step_windows"][name]:
            steps[step] = max(steps.get(step, 0.0), sampler.peak_mib(start, end))
        phase["step_peak_rss_mib"] = dict(sorted(steps.items(), key=lambda kv: -kv[1]))
    result["peak_rss_mib"] = sampler.peak_mib()
    del result["step_windows"]
    return result


def judge(results: list[dict], ratio_size: int | None) -> dict:
    verdicts: dict[str, bool] = {f"peak_rss_under_1GiB_at_{r['size']}": r["peak_rss_mib"] < PEAK_RSS_TARGET_MIB
                                 for r in results}
    verdicts.update({f"counts_balance_at_{r['size']}": all(p["counts_balance"] for p in r["phases"].values())
                     for r in results})
    cold_peaks = [r["phases"]["cold"]["peak_rss_mib"] for r in results]
    if len(results) > 1:
        verdicts["cold_peak_rss_flat"] = cold_peaks[-1] <= cold_peaks[0] * (1 + FLAT_TOLERANCE)
    for r in results:
        if r["size"] == ratio_size:
            cold = r["phases"]["cold"]["wall_s"]
            verdicts["nightly_over_cold"] = r["phases"]["nightly"]["wall_s"] / cold <= TARGETS["nightly_over_cold"]
            verdicts["nightly_within_fixed_cost"] = r["phases"]["nightly"]["wall_s"] <= nightly_budget_s(r)
            verdicts["backfill_over_cold"] = r["phases"]["backfill"]["wall_s"] / cold <= TARGETS["backfill_over_cold"]
    return verdicts


def nightly_budget_s(result: dict) -> float:
    """The nightly's allowance at this size: NIGHTLY_FIXED_S plus the cold build's wall time per
    image for each new scene."""
    cold = result["phases"]["cold"]
    return NIGHTLY_FIXED_S + result["new_scenes"] * cold["wall_s"] / result["size"]


def print_report(report: dict) -> None:
    print(f"\nWhole graph on {report['data']['width']}x{report['data']['height']} Cityscapes-style scenes, batches of "
          f"{BATCH_SCENES}, Dagster on SQLite, {report['machine']['cpus']} CPUs")
    header = f"{'size':>6s} {'cold s':>8s} {'img/s':>6s} {'peak MiB (tree)':>15s} {'child maxrss':>12s}  ratios"
    print(header)
    print("-" * len(header))
    for r in report["results"]:
        cold = r["phases"]["cold"]
        ratios = "  ".join(f"{name} {p['wall_s']:.1f} s = {p['wall_s'] / cold['wall_s']:.3f} of cold"
                           + (f" (at most {nightly_budget_s(r):.1f} s)" if name == "nightly" else "")
                           for name, p in r["phases"].items() if name != "cold")
        print(f"{r['size']:6d} {cold['wall_s']:8.1f} {cold['images_per_s']:6.2f} {r['peak_rss_mib']:15.0f} "
              f"{cold['self_peak_rss_mib']['self']:12.0f}  {ratios}")
    for r in report["results"]:
        top = list(r["phases"]["cold"]["step_peak_rss_mib"].items())[:6]
        print(f"  {r['size']}: cold peak by step (MiB): " + ", ".join(f"{step} {mib:.0f}" for step, mib in top)
              + f"; the peak in {r['phases']['cold']['peak_at']}")
    print("\ntargets " + str({**TARGETS, "nightly_fixed_s": NIGHTLY_FIXED_S}) + f", flat within {FLAT_TOLERANCE:.0%}:")
    for name, met in report["verdicts"].items():
        print(f"  [{'ok' if met else 'MISS'}] {name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 3000, 10000])
    parser.add_argument("--ratio-size", type=int, default=5000,
                        help="the size whose run adds the nightly and backfill builds (0: none)")
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--height", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    home = Path(os.environ.get("SEGPIPE_HOME", Path.cwd() / ".segpipe"))
    parser.add_argument("--cache", type=Path, default=home / "bench" / "cache")
    parser.add_argument("--out", type=Path, default=home / "bench" / "scale_sweep.json")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--child-size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--with-ratios", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        result = child_build(args.data, args.child_size, args.work, args.with_ratios)
        sys.stdout.write(orjson.dumps(result).decode() + "\n")
        return

    from segpipe_tests.bench.ingest import code_version

    code = code_version()
    ratio_size = args.ratio_size or None
    sizes = sorted(set(args.sizes) | ({ratio_size} if ratio_size else set()))
    print(f"measuring segpipe at {code}", flush=True)
    started = time.perf_counter()
    largest = max(DATA_SCENES, *(size + new_scenes(size) for size in sizes))
    data = ensure_data(args.cache, largest, args.width, args.height, args.seed, images=True)
    generated = time.perf_counter() - started
    results = []
    for size in sizes:
        print(f"size {size}: cold build{', nightly and backfill' if size == ratio_size else ''} in a fresh process ...",
              flush=True)
        results.append(run_child(data, size, args.cache.parent, size == ratio_size))
        report = {
            "code": code,
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                        "load_average": os.getloadavg()},
            "data": {"root": str(data), "width": args.width, "height": args.height, "batch_scenes": BATCH_SCENES,
                     "alias_edit": ALIAS_EDIT[1].strip().splitlines()[-1].strip()},
            "targets": TARGETS, "flat_tolerance": FLAT_TOLERANCE, "sizes_planned": sizes, "results": results,
            "verdicts": judge(results, ratio_size), "generation_s": generated,
            "total_s": time.perf_counter() - started,
        }
        if code_version() != code:
            report["code_changed_during_run"] = code_version()
        args.out.parent.mkdir(parents=True, exist_ok=True)
        # written after each size: a long sweep cut short keeps what it measured
        args.out.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    if "code_changed_during_run" in report:
        print("WARNING: segpipe/ changed while the benchmark ran; the figures mix two versions of the code")
    print_report(report)
    print(f"\nwrote {args.out} (total {report['total_s']:.0f} s, data generation {generated:.0f} s)")


if __name__ == "__main__":
    main()
