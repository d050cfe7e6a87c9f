"""Hostile inputs: time and peak memory of ingesting each case of the catalogue, under an address-space limit.

Run with `make bench` (or `python -m segpipe_tests.bench.hostile [--limit-mib 1536] [case ...]`).
Each case of segpipe_tests/hostile_inputs.py is written into a temporary landing folder, then
ingested as the ingest asset reads a batch, in a fresh process whose address space is limited
(RLIMIT_AS): a parser whose memory grew with the attacker's file (the 200,000-deep JSON once took
23.6 GB) fails there instead of quarantining. The limit is 1.5 GiB because the imports alone
reserve about 1.1 GiB of address space (Polars and its thread, Arrow, thread stacks) while about
140 MiB is resident; at 1 GiB the allocators failed at random, before any input was read. The
child runs one Polars thread and Arrow's system allocator (ARROW_DEFAULT_MEMORY_POOL=system:
mimalloc, its default here, reserves another GiB it never uses), so the address space it reports
is what it maps. Reported per case: the outcome, the ingest time measured inside the child
(interpreter start and imports excluded), the child's RSS once imports are done, its peak RSS
(ru_maxrss from wait4) and its peak address space (VmPeak). A case that exceeds the limit or
raises is reported as such and makes the run exit 1. Results: $SEGPIPE_HOME/bench/hostile.json.

`--ingest LANDING CASE...` is the child side: it ingests the named cases, already built under
LANDING, one after the other, and prints one JSON line per case (segpipe_tests/core/ingest/
test_hostile_catalogue.py runs the whole catalogue through it in one limited process).
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import orjson

KEY = b"bench-hostile-key-0123"
TIMEOUT_S = 300
ADDRESS_SPACE_MIB = 1536
LIMITED_ENV = {"POLARS_MAX_THREADS": "1", "ARROW_DEFAULT_MEMORY_POOL": "system"}


def _status_mib(field: str) -> float:
    """VmRSS or VmPeak of this process, in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise LookupError(f"no {field} in /proc/self/status")


def ingest_cases(landing: Path, case_ids: list[str]) -> None:
    """Child side: each case ingested in turn, one JSON line each."""
    from segpipe_tests.landed_batch import ingest_landed

    for case_id in case_ids:
        start_rss = _status_mib("VmRSS")
        start = time.perf_counter()
        result = ingest_landed(landing, case_id, KEY)
        seconds = time.perf_counter() - start
        print(json.dumps({"case": case_id, "released": result.images.height,
                          "quarantined": result.quarantine.select("file_name", "rule").rows(),
                          "seconds": seconds, "start_rss_mib": start_rss, "address_space_mib": _status_mib("VmPeak")}),
              flush=True)


def address_space_limit(limit_mib: int = ADDRESS_SPACE_MIB):
    """A preexec_fn that limits the child's address space."""
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit_mib << 20, limit_mib << 20))
    return limit


def limited_env() -> dict[str, str]:
    return {**os.environ, **LIMITED_ENV}


def measure(case_id: str, limit_mib: int) -> dict:
    """Build one case, ingest it in a fresh limited process, and read that process's peak RSS."""
    from segpipe_tests.hostile_inputs import case

    hostile = case(case_id)
    with tempfile.TemporaryDirectory(prefix="segpipe-bench-hostile-") as tmp:
        hostile.build(Path(tmp), hostile.id)
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            child = subprocess.Popen(
                [sys.executable, "-m", "segpipe_tests.bench.hostile", "--ingest", tmp, hostile.id],
                stdout=out, stderr=err, preexec_fn=address_space_limit(limit_mib), env=limited_env())
            timer = threading.Timer(TIMEOUT_S, child.kill)
            timer.start()
            _, status, usage = os.wait4(child.pid, 0)
            timer.cancel()
            child.returncode = os.waitstatus_to_exitcode(status)
            out.seek(0)
            err.seek(0)
            lines = out.read().decode().splitlines()
            error = err.read().decode(errors="replace").strip().splitlines()
    row = {"case": hostile.id, "category": hostile.category, "peak_rss_mib": usage.ru_maxrss / 1024,
           "exit_code": child.returncode}
    if child.returncode != 0 or not lines:
        return {**row, "outcome": f"FAILED: {error[-1] if error else f'exit {child.returncode}'}", "seconds": None,
                "start_rss_mib": None, "address_space_mib": None}
    report = json.loads(lines[-1])
    rules = Counter(rule for _, rule in report["quarantined"])
    outcome = f"{report['released']} released, {len(report['quarantined'])} quarantined" + (
        f" ({', '.join(f'{rule} x{n}' if n > 1 else rule for rule, n in sorted(rules.items()))})" if rules else "")
    return {**row, "outcome": outcome, "seconds": report["seconds"], "start_rss_mib": report["start_rss_mib"],
            "address_space_mib": report["address_space_mib"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cases", nargs="*", help="case ids (default: every case of the catalogue)")
    parser.add_argument("--limit-mib", type=int, default=ADDRESS_SPACE_MIB, help="address-space limit of each child (MiB)")
    parser.add_argument("--ingest", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.ingest:
        ingest_cases(args.ingest, args.cases)
        return
    from segpipe_tests.hostile_inputs import CASES

    ids = args.cases or [c.id for c in CASES]
    results = []
    print(f"Hostile inputs: each case ingested in a fresh process limited to {args.limit_mib} MiB of address space")
    print(f"{'case':<36} {'category':<16} {'ingest s':>8} {'RSS start':>9} {'peak RSS MiB':>12} {'VmPeak':>7}  outcome")
    for case_id in ids:
        r = measure(case_id, args.limit_mib)
        results.append(r)
        seconds = f"{r['seconds']:.3f}" if r["seconds"] is not None else "-"
        start = f"{r['start_rss_mib']:.0f}" if r["start_rss_mib"] is not None else "-"
        mapped = f"{r['address_space_mib']:.0f}" if r["address_space_mib"] is not None else "-"
        print(f"{r['case']:<36} {r['category']:<16} {seconds:>8} {start:>9} {r['peak_rss_mib']:>12.0f} {mapped:>7}"
              f"  {r['outcome']}", flush=True)
    failed = [r["case"] for r in results if r["exit_code"] != 0]
    done = [r for r in results if r["seconds"] is not None]
    if done:
        slowest = max(done, key=lambda r: r["seconds"])
        largest = max(done, key=lambda r: r["peak_rss_mib"])
        print(f"{len(results)} cases in {len({r['category'] for r in results})} categories; slowest {slowest['case']} "
              f"{slowest['seconds']:.2f} s; largest peak RSS {largest['case']} {largest['peak_rss_mib']:.0f} MiB")
    home = Path(os.environ.get("SEGPIPE_HOME", Path.cwd() / ".segpipe"))
    out = home / "bench" / "hostile.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    print(f"wrote {out}")
    if failed:
        sys.exit(f"failed within {args.limit_mib} MiB: {', '.join(failed)}")


if __name__ == "__main__":
    main()
