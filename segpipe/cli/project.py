"""Projects: `segpipe init` turns an export into one, and `segpipe build --project` builds one.

A project is a folder, the one `$SEGPIPE_HOME` names (default `./.segpipe`): its `pipeline.yaml`
and `taxonomy.yaml`, its landing zone `landing/`, and what builds add (`store/`, the pseudonym key,
`dagster_home/` when DAGSTER_HOME is unset). init writes the first three from an export, read with
the ingestion code check-source runs, so the first build releases the user's data: a taxonomy of
the export's labels (or a preset that covers them), the generic pipeline.yaml, and the export as
one batch.

The export is copied into the landing zone, not linked: ingestion never follows symlinks (a
hostile export could point anywhere), a landed batch must not change under later builds, and a ZIP
or a URL has nothing to link to. The copy goes through the same checked reader as ingestion, so a
file it refuses (a symlink, a nested archive) is reported by init and not copied, and an archive it
refuses as a whole stops init.
"""

import os
import re
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path

import fsspec
import orjson
import polars as pl

from segpipe.cli.source_check import SourceCheck, map_batch, mapping_lines, read_source, summary_lines
from segpipe.core.ingest.batch import IngestedBatch
from segpipe.core.ingest.landing import (BATCH_ID_PATTERN, BATCH_MANIFEST, PROVENANCE_KEYS, BatchManifest,
                                         parse_batch_manifest)
from segpipe.core.ingest.sources import open_source
from segpipe.core.shared.errors import InputError
from segpipe.core.shared.quarantine_rules import quarantine_rule
from segpipe.core.taxonomy.draft import DraftError, covers, draft_taxonomy, rekeyed_preset
from segpipe.core.taxonomy.model import parse_taxonomy
from segpipe.environment import PACKAGE_CONFIG, PIPELINE_FILE, TAXONOMY_FILE, current_environment

LANDING = "landing"
DAGSTER_HOME = "dagster_home"
# The presets made for a format's own exports, in order of preference: a preset is offered only for
# the dataset it describes, not for any export whose few labels happen to be among its classes.
PRESETS: dict[str, tuple[str, ...]] = {
    "cityscapes_polygons": ("cityscapes", "cityscapes_label_ids"),
    "voc_segmentation": ("pascal_voc",),
    "ade20k": ("ade20k",),
    "coco_instances": ("coco_stuff",),
}
BLANK_PROVENANCE = (
    "Written by segpipe init. Fill in licence (an SPDX id such as CC-BY-4.0, or the terms in words), origin (a URL "
    "where the data came from) and attribution (whom to credit): releases state them in meta.json and their "
    "datasheet (docs/landing.md).")
DAGSTER_YAML = """\
# Dagster's instance for this project's builds (`segpipe build` when DAGSTER_HOME is unset): run history
# in SQLite beside this file. `DAGSTER_HOME=<this folder> dagster dev -w workspace.yaml` shows the runs.
telemetry:
  enabled: false
"""


class InitError(Exception):
    """The export cannot start a project, or the project folder is taken; the message says why and what to do."""


@dataclass(frozen=True)
class Provenance:
    licence: str | None = None
    origin: str | None = None
    attribution: str | None = None


@dataclass(frozen=True)
class InitResult:
    project: Path
    batch: IngestedBatch
    mapped: pl.DataFrame  # the export's shapes under the written taxonomy
    manifest: BatchManifest  # the batch.json written
    taxonomy: str  # what taxonomy.yaml is, in words
    mapping: list[str]  # what check-source says of the export under that taxonomy (mapping_lines)
    files_copied: int
    bytes_copied: int


def init_project(fs: fsspec.AbstractFileSystem, path: str, into: Path, declared_format: str | None = None,
                 provenance: Provenance = Provenance(), draft: bool = False) -> InitResult:
    """Read the export at `path` and write the project folder `into`: taxonomy.yaml, pipeline.yaml and
    landing/<batch>/ with the export and its batch.json (written last: it marks the batch ready)."""
    taken = [into / name for name in (PIPELINE_FILE, TAXONOMY_FILE, LANDING) if (into / name).exists()]
    if taken:
        raise InitError(f"{into} already holds {', '.join(p.name for p in taken)}: init starts a new project; choose "
                        "another folder with --into, or land this export as a batch of that project (docs/landing.md)")
    given = {key: value for key, value in zip(PROVENANCE_KEYS, (provenance.licence, provenance.origin,
                                                                provenance.attribution), strict=True) if value}
    _manifest(given, "batch", "the --licence, --origin and --attribution options")
    exported = _exported_manifest(fs, path)
    batch_id = exported.get("batch_id") or _batch_id(path)
    # The tables are not kept, so the pseudonyms they hold need no lasting key. Read as check-source
    # reads it, without images: the taxonomy is drafted from the shapes of every entry, those whose
    # image is missing too (the summary says how many), but a project needs an image to release.
    batch = read_source(fs, path, batch_id, secrets.token_bytes(32), declared_format, lint_without_images=True)
    if batch.source_format is None or not _shapes_with_image(batch):
        found = "\n".join(summary_lines(batch))
        raise InitError(f"{path}: no annotated image could be read, so there is nothing to start a project from:\n"
                        f"{found}")
    source = exported.get("source") or batch.source_format
    text, described = _taxonomy_text(batch, source, batch_id, path, draft)
    doc = _batch_json(exported, given, batch.source_format, source)
    manifest = _manifest(doc, batch_id, f"{path}/{BATCH_MANIFEST} with init's additions")
    pipeline = (PACKAGE_CONFIG / PIPELINE_FILE).read_text()
    into.mkdir(parents=True, exist_ok=True)
    (into / TAXONOMY_FILE).write_text(text, encoding="utf-8")
    (into / PIPELINE_FILE).write_text(re.sub(r"(?m)^dataset_name: .*$", f"dataset_name: {batch_id}", pipeline, count=1))
    files, size = _copy_export(fs, path, into / LANDING / batch_id)
    (into / LANDING / batch_id / BATCH_MANIFEST).write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n")
    taxonomy = parse_taxonomy(text, str(into / TAXONOMY_FILE))
    mapped = map_batch(batch, taxonomy)
    mapping = mapping_lines(SourceCheck(batch, mapped, 0, taxonomy), str(into / TAXONOMY_FILE))
    return InitResult(into, batch, mapped, manifest, described, mapping, files, size)


def format_init(result: InitResult, next_command: str) -> str:
    """What init read and wrote, what is left to the user, and the command to run next."""
    landing = result.project / LANDING / result.manifest.batch_id
    blank = [key for key in PROVENANCE_KEYS if getattr(result.manifest, key) is None]
    lines = [
        *summary_lines(result.batch, result.mapping),
        f"project: {result.project}",
        f"  {TAXONOMY_FILE}: {result.taxonomy}",
        f"  {PIPELINE_FILE}: dataset {result.manifest.batch_id!r}; no strata and no target size, so every image that "
        "passes QA is released",
        f"  {LANDING}/{result.manifest.batch_id}/: the export, copied ({result.files_copied} files, "
        f"{_size(result.bytes_copied)}), and {BATCH_MANIFEST} (format {result.manifest.format}, "
        f"source {result.manifest.source!r})",
    ]
    if blank:
        listed = " and ".join([", ".join(blank[:-1]), blank[-1]] if len(blank) > 1 else blank)
        lines.append(f"  {BATCH_MANIFEST}: {listed} left blank: fill them in, in {landing / BATCH_MANIFEST}, "
                     "so releases say under which terms the data may be used")
    lines += [f"note: {name} is set, so a build reads {os.environ[name]} instead of the project's"
              for name in ("SEGPIPE_LANDING_ROOT", "SEGPIPE_TAXONOMY", "SEGPIPE_PIPELINE_CONFIG") if name in os.environ]
    lines.append(f"next: {next_command}")
    return "\n".join(lines)


def point_at_project(folder: Path | None) -> None:
    """`folder` (a command's --project), when given, becomes SEGPIPE_HOME."""
    if folder is not None:
        os.environ["SEGPIPE_HOME"] = str(folder.resolve())


def use_project(folder: Path | None) -> None:
    """Point this process at a project (point_at_project); when DAGSTER_HOME is unset, the
    project's dagster_home/ keeps Dagster's run history."""
    point_at_project(folder)
    if "DAGSTER_HOME" not in os.environ:
        dagster_home = current_environment().home.resolve() / DAGSTER_HOME
        dagster_home.mkdir(parents=True, exist_ok=True)
        if not (dagster_home / "dagster.yaml").exists():
            (dagster_home / "dagster.yaml").write_text(DAGSTER_YAML)
        os.environ["DAGSTER_HOME"] = str(dagster_home)


def _shapes_with_image(batch: IngestedBatch) -> bool:
    """Whether an accepted image carries a shape: without one, a build of the project releases nothing."""
    return not batch.shapes.filter(pl.col("entry_id").is_in(batch.images["entry_id"].implode())).is_empty()


def _batch_json(exported: dict, given: dict[str, str], source_format: str, source: str) -> dict:
    """The landed batch's batch.json: the export's own keys, the format read and the source whose
    rules the taxonomy has, and each of licence, origin and attribution as given, else as the export
    states it, else blank under a comment asking for it."""
    provenance = {key: given.get(key, exported.get(key, "")) for key in PROVENANCE_KEYS}
    comment = {} if all(provenance.values()) else {"comment": BLANK_PROVENANCE}
    return {**comment, **exported, "format": source_format, "source": source, **provenance}


def _size(n: int) -> str:
    for scale, unit in ((1e9, "GB"), (1e6, "MB"), (1e3, "kB")):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


def _taxonomy_text(batch: IngestedBatch, source: str, name: str, path: str, draft: bool) -> tuple[str, str]:
    """taxonomy.yaml's text and what it is in words: the first preset made for the export's format
    whose rules map every label, unless a draft is asked for, else a draft of the export's labels."""
    for preset in () if draft else PRESETS.get(batch.source_format or "", ()):
        preset_path = PACKAGE_CONFIG / "presets" / f"{preset}.yaml"
        text = preset_path.read_text()
        taxonomy = parse_taxonomy(text, str(preset_path))
        [preset_source] = taxonomy.mappings
        if covers(taxonomy, preset_source, batch.shapes):
            return (rekeyed_preset(text, preset_source, source, f"segpipe/config/presets/{preset}.yaml", path),
                    f"the {preset} preset ({len(taxonomy.classes)} classes), whose rules map every label of the "
                    "export; `segpipe init --draft` writes a taxonomy of just the export's labels instead")
    try:
        text = draft_taxonomy(name, source, batch.shapes, path)
    except DraftError as exc:
        raise InitError(str(exc)) from None
    classes = len(parse_taxonomy(text, path).classes)
    return text, (f"a draft of the export's labels, {classes} classes: check their names and colours, and set "
                  "has_instances for countable objects")


def _exported_manifest(fs: fsspec.AbstractFileSystem, path: str) -> dict:
    """The export's own batch.json, checked as ingestion would check it; {} when it has none."""
    try:
        with open_source(fs, path) as source:
            if BATCH_MANIFEST not in source.names():
                return {}
            data, origin = source.read(BATCH_MANIFEST), source.origin(BATCH_MANIFEST)
        try:
            doc = orjson.loads(data)
        except orjson.JSONDecodeError:
            doc = None  # parse_batch_manifest says what is wrong with it
        named = doc.get("batch_id") if isinstance(doc, dict) else None
        batch_id = named if isinstance(named, str) else _batch_id(path)
        parse_batch_manifest(data, batch_id, origin)
    except InputError as exc:
        raise _refused(exc) from None
    if not BATCH_ID_PATTERN.match(batch_id):
        raise InitError(f"{origin}: batch_id {batch_id!r} is not a batch id (letters, digits, '.', '_', '-'); "
                        "remove it, and the export's name is used")
    return doc


def _manifest(doc: dict, batch_id: str, origin: str) -> BatchManifest:
    try:
        return parse_batch_manifest(orjson.dumps(doc), batch_id, origin)
    except InputError as exc:
        raise _refused(exc) from None


def _refused(error: InputError) -> InitError:
    """Why ingestion would refuse the export, with its rule and what to do about it."""
    return InitError(f"{error} ({error.rule}: {quarantine_rule(error.rule).action})")


def _batch_id(path: str) -> str:
    """The export's name, made a valid batch id (letters, digits, '.', '_', '-')."""
    name = path.rstrip("/").rsplit("/", 1)[-1].removesuffix(".zip")
    batch_id = re.sub(r"[^A-Za-z0-9._-]+", "-", name).lstrip("._-")[:128]
    return batch_id if BATCH_ID_PATTERN.match(batch_id) else "export"


def _copy_export(fs: fsspec.AbstractFileSystem, path: str, folder: Path) -> tuple[int, int]:
    """Copy every file of the export the checked reader accepts, but its batch.json, into `folder`;
    (files, bytes) copied."""
    files = size = 0
    folder.mkdir(parents=True, exist_ok=True)
    with open_source(fs, path) as source:
        for name in source.names():
            if name == BATCH_MANIFEST:
                continue
            target = folder / name
            target.parent.mkdir(parents=True, exist_ok=True)
            with source.open(name) as stream, target.open("wb") as out:
                shutil.copyfileobj(stream, out)
            files, size = files + 1, size + target.stat().st_size
    return files, size
