"""`segpipe init` starts a project from an export; `segpipe demo` generates the demo project; `segpipe build`
turns a project's landing zone into a release; `segpipe batches` lists the batches and `segpipe batch
retry|remove ID` retries or removes one; `segpipe verify` checks a release ZIP or a whole release
folder; `segpipe inspect` summarizes a release ZIP; `segpipe releases` lists the published versions;
`segpipe fetch` unzips a version into a folder (and assembles its trainer layouts) and `segpipe pack` writes it as one ZIP, both checked;
`segpipe gc` deletes what the retention rule does not keep; `segpipe review export` writes the review queue
as a CVAT task."""

import argparse
import sys
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import get_args

from segpipe.core.release.settings import ExportName
from segpipe.core.shared.errors import ConfigError
from segpipe.environment import PIPELINE_FILE, current_environment

STORE_COMMANDS = ("releases", "fetch", "pack", "gc")  # read the store a project's pipeline.yaml names


def build_parser() -> argparse.ArgumentParser:
    """Every subcommand and option, each with its help text (segpipe_tests/test_cli.py walks the tree)."""
    parser = argparse.ArgumentParser(prog="segpipe", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                     help="what to do; `segpipe COMMAND --help` for its options")
    add = _adder(commands)
    demo = add("demo", help="generate the deterministic demo landing zone")
    demo.add_argument("--out", type=Path, default=None, help="folder to write into (default: $SEGPIPE_HOME or ./.segpipe)")
    demo.add_argument("--scenes", type=int, default=120, help="how many street scenes to generate (default: 120)")
    demo.add_argument("--width", type=int, default=1024, help="image width in pixels (default: 1024)")
    demo.add_argument("--height", type=int, default=512, help="image height in pixels (default: 512)")
    demo.add_argument("--seed", type=int, default=0, help="random seed: the same seed gives the same files (default: 0)")
    init = add("init", help="start a project from an export: a taxonomy of its labels, a generic "
                            "pipeline.yaml, the export landed as one batch")
    init.add_argument("path", help="the export: a folder, a .zip archive, or a URL such as s3://bucket/prefix")
    init.add_argument("--into", type=Path, default=None, help="the project folder to write (default: $SEGPIPE_HOME "
                                                              "or ./.segpipe)")
    init.add_argument("--format", default=None, help="the export's format (default: its batch.json's, else detected)")
    init.add_argument("--licence", default=None, help="the data's licence: an SPDX id (CC-BY-4.0) or the terms in words")
    init.add_argument("--origin", default=None, help="where the data came from: a URL")
    init.add_argument("--attribution", default=None, help="whom to credit for the data")
    init.add_argument("--draft", action="store_true", help="a taxonomy of the export's labels even when a packaged "
                                                           "preset covers them")
    build = add("build", help="ingest every ready batch and publish a release (run history in "
                              "$DAGSTER_HOME, else the project's dagster_home/)")
    backfill = add("backfill", help="after a taxonomy edit: remap every ingested batch and publish a release")
    batches = add("batches", help="list every batch: landed, ingested, failed or removed, with its last run; "
                                  "then each landed entry that cannot be a batch, and why")
    batch = add("batch", help="retry or remove one batch")
    batch_commands = batch.add_subparsers(dest="batch_command", required=True, metavar="ACTION",
                                          help="retry or remove; `segpipe batch ACTION --help` for its options")
    add_batch = _adder(batch_commands)
    retry = add_batch("retry", help="run the batch's ingest, mapping and drawing again, as landed now")
    remove = add_batch("remove", help="drop the batch's partition and tables, so releases leave it out; "
                                      "the removal is recorded in the store")
    for command in (retry, remove):
        command.add_argument("batch_id", help="the batch, as `segpipe batches` lists it")
    review = add("review", help="send the review queue to CVAT and back (docs/review.md)")
    review_commands = review.add_subparsers(dest="review_command", required=True, metavar="ACTION",
                                            help="export; `segpipe review ACTION --help` for its options")
    review_export = _adder(review_commands)(
        "export", help="write the last build's review queue as a CVAT for images 1.1 task archive: the images, "
                       "their fused masks as pre-annotations and the disputed pixels marked")
    review_export.add_argument("out", type=Path, help="the .zip to write")
    for command in (build, backfill, batches, retry, remove, review_export):
        command.add_argument("--project", type=Path, default=None, help="the project folder (default: $SEGPIPE_HOME "
                                                                        "or ./.segpipe)")
    build.add_argument("--workers", type=_at_least_one, default=None, metavar="N",
                       help="processes the batch runs go to, each ingesting and drawing one batch (default: "
                            "the machine's cores, at most 2; 1 runs them in this process)")
    backfill.add_argument("--workers", type=_at_least_one, default=1, metavar="N",
                          help="processes the remapping runs go to, each over a range of batches (default 1: "
                               "this process; 2 is faster after an edit that changes masks, and holds two "
                               "processes' memory)")
    for command in (build, backfill, retry, remove):
        command.add_argument("--verbose", action="store_true", help="print Dagster's own log (DEBUG lines included) "
                                                                    "and a line per step instead of progress bars")
    check = add("check-source", help="read one export (folder, .zip or URL) as ingestion would, without Dagster")
    check.add_argument("path", help="a folder, a .zip archive, or a URL such as s3://bucket/prefix")
    check.add_argument("--format", default=None, help="the export's format (default: batch.json's, else detected)")
    check.add_argument("--taxonomy", type=Path, default=None, help="a taxonomy YAML; masks are rasterized with it")
    check.add_argument("--source", default=None,
                       help="whose mapping rules apply (default: batch.json's source, else the format's name)")
    check.add_argument("--out", type=Path, required=True, help="folder for the tables, the quarantine report and masks")
    pseudonym = add("pseudonym", help="print the pseudonym tables and releases use for an annotator "
                                      "(or, with --batch, the one releases use for a batch)")
    pseudonym.add_argument("identity", nargs="+", help="a user name or email, as in batch.json or the CVAT export")
    pseudonym.add_argument("--batch", action="store_true", help="the identities are batch ids")
    verify = add("verify", help="check a release ZIP (SHA256SUMS, manifest schema, meta.json), a release folder "
                                "(every object and shared part against _RELEASE.json, and its ZIPs read together), or "
                                "an unzipped release")
    verify.add_argument("release", help="a release ZIP, a release folder .../releases/<dataset>/<version> (a path or a "
                                        "URL such as s3://bucket/releases/<dataset>/<version>), or a folder segpipe "
                                        "fetch wrote")
    verify.add_argument("--mask-sample", type=int, default=64, help="how many masks to decode, spread evenly over the "
                                                                     "manifest (default: 64; all of them when fewer)")
    inspect = add("inspect", help="print a release's version, splits, class shares and QA summary")
    inspect.add_argument("release", help="the release ZIP: a path or a URL")
    releases = add("releases", help="list the published versions in the configured store")
    fetch = add("fetch", help="download a published version, check every ZIP against _RELEASE.json and unzip them "
                              "into a new folder, checked as verify does")
    pack = add("pack", help="write a published version as one self-contained ZIP, checked as verify does")
    for command in (fetch, pack):
        command.add_argument("version", help="a version name or `latest` (in SEGPIPE_STORAGE_ROOT), or a release "
                                             "folder's path or URL .../releases/<dataset>/<version>")
        command.add_argument("--mask-sample", type=int, default=64, help="how many masks to decode, spread evenly over "
                                                                         "the manifest (default: 64)")
    fetch.add_argument("dir", type=Path, help="the folder to write: new, or empty")
    fetch.add_argument("--layout", action="append", default=[], choices=get_args(ExportName),
                       help="also assemble this trainer layout (release.exports) in DIR/<layout>/: its images linked "
                            "from images/, hf's Parquet files with the bytes embedded; checked against SHA256SUMS. "
                            "Repeat for several")
    pack.add_argument("--out", type=Path, default=None, help="the ZIP to write (default: ./<dataset>-<version>.zip)")
    gc = add("gc", help="delete the versions the retention rule (pipeline.yaml `release`) does not keep, the "
                        "shared parts no kept version uses, and the masks no table names (a taxonomy edit's old ones)")
    gc.add_argument("--keep-last", type=int, default=None, help="keep this many newest versions (default: "
                                                                "release.keep_last in pipeline.yaml)")
    gc.add_argument("--dry-run", action="store_true", help="only say what would be deleted")
    for command in (releases, fetch, pack, gc):
        command.add_argument("--dataset", default=None, help="the dataset (default: dataset_name in pipeline.yaml)")
        command.add_argument("--project", type=Path, default=None, help="the project whose store and pipeline.yaml "
                                                                        "to use (default: $SEGPIPE_HOME or ./.segpipe)")
    return parser


def _adder(commands: "argparse._SubParsersAction"):
    """add_parser whose help is also the subcommand's own description (its --help shows it)."""
    def add(name: str, help: str) -> argparse.ArgumentParser:
        return commands.add_parser(name, help=help, description=help[0].upper() + help[1:] + ".")
    return add


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command in ("build", "backfill", "batches", "batch", "review"):
        _use_project(args.project, parser)
    if args.command in STORE_COMMANDS:
        _use_store_of_project(args, parser)
    commands_by_name = {
        "init": lambda: _init(args, parser), "demo": lambda: _demo(args), "build": lambda: _build(args, backfill=False),
        "backfill": lambda: _build(args, backfill=True), "check-source": lambda: _check_source(args, parser),
        "pseudonym": lambda: _pseudonym(args), "verify": lambda: _verify(args), "inspect": lambda: _inspect(args),
        "releases": lambda: _releases(args), "batches": _batches, "batch": lambda: _batch(args),
        "fetch": lambda: _from_store(args), "pack": lambda: _from_store(args), "gc": lambda: _gc(args, parser),
        "review": lambda: _review_export(args),
    }
    try:
        return commands_by_name[args.command]()
    except Exception as exc:
        config_error = _config_error(exc)
        if config_error is None:
            raise
        print(f"segpipe: configuration error:\n{config_error}", file=sys.stderr)
        return 2


def _config_error(exc: BaseException | None) -> ConfigError | None:
    """The ConfigError behind `exc`: Dagster wraps one raised while its definitions load."""
    while exc is not None and not isinstance(exc, ConfigError):
        exc = exc.__cause__
    return exc


def _demo(args: argparse.Namespace) -> int:
    from segpipe.demo import generate_demo

    out = args.out or Path(current_environment().landing_root).parent
    summary = generate_demo(out, n_scenes=args.scenes, width=args.width, height=args.height, seed=args.seed)
    print(f"demo landing zone: {summary.landing_root} ({summary.n_scenes} scenes, batches: {', '.join(summary.batch_ids)})")
    print(f"planted defects and honeypots: {summary.ground_truth_path}")
    return 0


def _init(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from segpipe.cli.project import InitError, Provenance, format_init, init_project
    from segpipe.core.ingest.formats import READERS
    from segpipe.io.locations import open_location

    if args.format is not None and args.format not in READERS:
        parser.error(f"--format {args.format!r} is not one of {sorted(READERS)}")
    env = current_environment()
    fs, path = open_location(args.path, env.s3_endpoint_url)
    if not fs.exists(path):
        parser.error(f"{args.path}: no such folder, archive or prefix")
    into = (args.into or env.home).resolve()
    try:
        result = init_project(fs, path, into, args.format, Provenance(args.licence, args.origin, args.attribution),
                              args.draft)
    except InitError as exc:
        print(f"segpipe init: {exc}", file=sys.stderr)
        return 1
    build = "segpipe build" if into == env.home.resolve() else f"segpipe build --project {into}"
    print(format_init(result, build))
    return 0


def _use_store_of_project(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """Point a store command at --project's store; refuse to look for a dataset no project names
    (the packaged pipeline.yaml's `dataset` is nobody's), rather than report it has no releases."""
    from segpipe.cli.project import point_at_project

    if args.project is not None and not args.project.is_dir():
        parser.error(f"--project {args.project}: no such folder")
    point_at_project(args.project)
    env = current_environment()
    if args.dataset is None and "/" not in getattr(args, "version", "") and not env.has_project:
        parser.error(f"{env.home} holds no project (no {PIPELINE_FILE}), so there is no dataset to look for: pass "
                     "--project DIR (the folder `segpipe init --into` or `segpipe build --project` used), set "
                     "SEGPIPE_HOME to it, or name the dataset with --dataset")


def _use_project(project: Path | None, parser: argparse.ArgumentParser) -> None:
    from segpipe.cli.project import use_project

    if project is not None and not project.is_dir():
        parser.error(f"--project {project}: no such folder; `segpipe init EXPORT --into {project}` writes one")
    use_project(project)


def _at_least_one(text: str) -> int:
    number = int(text)
    if number < 1:
        raise argparse.ArgumentTypeError(f"{text}: must be at least 1")
    return number


def _dagster_log_level(verbose: bool) -> str:
    """The level of Dagster's own log: quiet unless --verbose (the summary says why a run failed, the
    UI has the rest), so no DEBUG line comes before the summary."""
    import logging

    logging.getLogger("dagster").setLevel(logging.DEBUG if verbose else logging.WARNING)
    return "DEBUG" if verbose else "CRITICAL"


def _progress(verbose: bool):
    from segpipe.cli.progress import StepProgress

    return StepProgress(sys.stderr, bars=False if verbose else None)  # bars would tangle with the log lines


def _build(args: argparse.Namespace, backfill: bool) -> int:
    import logging

    import dagster as dg

    from segpipe.cli.build_summary import format_summary
    from segpipe.cli.run_failure import read_run_failure
    from segpipe.definitions import defs as load_defs
    from segpipe.cli.local_build import DEFAULT_BATCH_WORKERS, NothingToBuild, run_local_build, run_taxonomy_backfill

    log_level = _dagster_log_level(args.verbose)
    env = current_environment()
    defs = load_defs()
    with dg.DagsterInstance.get() as instance:
        try:
            outcome = (run_taxonomy_backfill(defs, instance, env, log_level, _progress(args.verbose),
                                             batch_workers=args.workers) if backfill
                       else run_local_build(defs, instance, env, log_level, _progress(args.verbose),
                                            batch_workers=args.workers or DEFAULT_BATCH_WORKERS))
        except NothingToBuild as exc:
            print(f"segpipe {'backfill' if backfill else 'build'}: {exc}", file=sys.stderr)
            return 1
        # A step that raised ConfigError (a batch of which no label maps) is a configuration error, as one
        # found before any run is: its report goes to stderr and the exit status is 2.
        failed_runs = [*([outcome.failed_run_id] if not outcome.success else []), *outcome.failed_batches.values()]
        configuration = any(step.error_type == ConfigError.__name__
                            for run_id in failed_runs for step in read_run_failure(instance, run_id).steps)
        logging.disable(logging.INFO)  # the summary's table loads log each file; no run records them any more
        try:
            print(format_summary(outcome, defs, instance, env), file=sys.stderr if configuration else sys.stdout)
        finally:
            logging.disable(logging.NOTSET)
    return 0 if outcome.success and not outcome.failed_batches else 2 if configuration else 1


def _batches() -> int:
    import dagster as dg

    from segpipe.cli.batches import batch_rows, format_batch_rows, landing_problems

    env = current_environment()
    with dg.DagsterInstance.get() as instance:
        print(format_batch_rows(batch_rows(instance, env), landing_problems(env)))
    return 0


def _batch(args: argparse.Namespace) -> int:
    import dagster as dg

    from segpipe.cli.batches import UnknownBatch, remove_batch, retry_batch
    from segpipe.cli.failure_summary import format_failure
    from segpipe.cli.run_failure import read_run_failure
    from segpipe.definitions import defs as load_defs

    log_level = _dagster_log_level(args.verbose)
    env, defs = current_environment(), load_defs()
    with dg.DagsterInstance.get() as instance:
        try:
            if args.batch_command == "remove":
                key, record = remove_batch(defs, instance, env, args.batch_id)
                print(f"batch {args.batch_id}: removed (was {record['state']}: {record['entries']} entries accepted, "
                      f"{record['quarantined']} quarantined); "
                      f"{len(record['tables_deleted'])} tables deleted; record: {env.storage_root}/{key}")
                print("later releases leave it out; `segpipe batch retry` brings it back while its folder is landed")
                return 0
            run = retry_batch(defs, instance, env, args.batch_id, log_level, _progress(args.verbose))
        except UnknownBatch as exc:
            print(f"segpipe batch {args.batch_command}: {exc}", file=sys.stderr)
            return 1
        if run.success:
            print(f"batch {args.batch_id}: ingested, mapped and drawn (run {run.run_id[:8]}); "
                  "`segpipe build` releases it")
            return 0
        lines = format_failure(read_run_failure(instance, run.run_id), [args.batch_id], defs, instance, env)
        print("\n".join([f"batch {args.batch_id}: retry failed (run {run.run_id[:8]})", *lines[1:]]))
    return 1


def _review_export(args: argparse.Namespace) -> int:
    import logging

    import dagster as dg

    from segpipe.cli.review_export import NothingToReview, export_review_queue
    from segpipe.definitions import defs as load_defs

    logging.disable(logging.INFO)  # each table load logs its file; no run records them
    try:
        with dg.DagsterInstance.get() as instance:
            count = export_review_queue(load_defs(), instance, current_environment(), args.out)
    except NothingToReview as exc:
        print(f"segpipe review export: {exc}", file=sys.stderr)
        return 1
    finally:
        logging.disable(logging.NOTSET)
    print(f"review queue: {count} images written to {args.out}; create a CVAT task with its labels and upload it "
          "(docs/review.md), then land CVAT's export as a batch with batch.json `\"kind\": \"review\"`")
    return 0


def _pseudonym(args: argparse.Namespace) -> int:
    from segpipe.core.ingest.pseudonym import annotator_key, batch_pseudonym, pseudonymize

    env = current_environment()
    key = annotator_key(env.pseudonym_key, env.pseudonym_key_path)
    name = batch_pseudonym if args.batch else pseudonymize
    for identity in args.identity:
        print(f"{identity}\t{name(identity, key)}")
    return 0


def _releases(args: argparse.Namespace) -> int:
    from segpipe.store.release_read import latest_version, list_releases
    from segpipe.cli.release_listing import format_release_table
    from segpipe.core.config.pipeline import load_pipeline_settings
    from segpipe.io.locations import open_location

    env = current_environment()
    dataset = args.dataset or load_pipeline_settings(env.pipeline_path).dataset_name
    fs, root = open_location(env.storage_root, env.s3_endpoint_url)
    print(format_release_table(dataset, list_releases(fs, root, dataset), latest_version(fs, root, dataset)))
    return 0


def _from_store(args: argparse.Namespace) -> int:
    from segpipe.cli.release_store import fetch, pack
    from segpipe.store.release_fetch import FetchRefused

    try:
        if args.command == "fetch":
            print(fetch(args.version, args.dir, args.dataset, args.mask_sample, tuple(args.layout)))
        else:
            print(pack(args.version, args.out, args.dataset, args.mask_sample))
    except (FetchRefused, PermissionError) as exc:
        print(f"segpipe {args.command}: {args.version}: {exc}", file=sys.stderr)
        return 1
    return 0


def _gc(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from segpipe.cli.release_store import gc

    if args.keep_last is not None and args.keep_last < 1:
        parser.error("--keep-last must be at least 1: the newest version is always kept")
    try:
        print(gc(args.dataset, args.keep_last, args.dry_run))
    except (RuntimeError, PermissionError) as exc:  # no create-only writes, an unreadable claim, the claim held too long
        print(f"segpipe gc: {exc}", file=sys.stderr)
        return 1
    return 0


def _check_source(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from segpipe.core.ingest.formats import READERS
    from segpipe.core.ingest.pseudonym import annotator_key
    from segpipe.cli.source_check import check_source, format_source_check
    from segpipe.core.taxonomy.model import load_taxonomy
    from segpipe.io.locations import open_location

    if args.format is not None and args.format not in READERS:
        parser.error(f"--format {args.format!r} is not one of {sorted(READERS)}")
    if args.taxonomy is not None and not args.taxonomy.is_file():
        parser.error(f"--taxonomy {args.taxonomy}: no such file")
    env = current_environment()
    taxonomy = load_taxonomy(args.taxonomy) if args.taxonomy is not None else None
    fs, path = open_location(args.path, env.s3_endpoint_url)
    if not fs.exists(path):
        parser.error(f"{args.path}: no such folder, archive or prefix")
    key = annotator_key(env.pseudonym_key, env.pseudonym_key_path)
    check = check_source(fs, path, args.out, key, args.format, taxonomy, args.source)
    print(format_source_check(check, args.out, args.taxonomy))
    return 1 if check.blocked else 0


@contextmanager
def _open_release(url: str) -> Iterator[zipfile.ZipFile]:
    """The release ZIP at a path or fsspec URL, read in place (seeking, not downloading it whole)."""
    from segpipe.io.locations import open_location

    fs, path = open_location(url, current_environment().s3_endpoint_url)
    if fs.info(path)["type"] != "file":  # a refused read raises PermissionError, not "missing"
        raise FileNotFoundError("not a file")
    with fs.open(path, "rb") as raw, zipfile.ZipFile(raw) as archive:
        yield archive


def _verify(args: argparse.Namespace) -> int:
    from segpipe.cli.release_verify import verify_target

    report = verify_target(args.release, args.mask_sample)
    for problem in report.problems:
        print(f"segpipe verify: {problem}", file=sys.stderr)
    if report.problems:
        print(f"{args.release}: FAILED, {len(report.problems)} problems", file=sys.stderr)
        return 1
    print(f"{args.release}: OK ({report.summary})")
    return 0


def _inspect(args: argparse.Namespace) -> int:
    from segpipe.cli.release_inspect import release_summary

    try:
        with _open_release(args.release) as archive:
            print(release_summary(archive, args.release.rstrip("/").rsplit("/", 1)[-1]))
    except (FileNotFoundError, PermissionError, zipfile.BadZipFile, KeyError) as exc:
        print(f"segpipe inspect: {args.release}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
