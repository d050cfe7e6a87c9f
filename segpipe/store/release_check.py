"""Checking a published release folder: every object and shared part against its `_RELEASE.json`,
and the release's ZIPs read together.

The ZIPs' own checks (SHA256SUMS, manifest and meta.json) cannot see a change to the objects
beside them, nor one to a ZIP's bytes that leaves its members intact; the marker's SHA-256 of
each object and part can. Every problem names the object (or the ZIP member) and what is wrong, and an
object that cannot be read because access is refused says so, rather than looking missing.
"""

import contextlib
import io
import zipfile
from dataclasses import dataclass

import fsspec
import orjson
import polars as pl

from segpipe.core.release.verify import (
    PartedFiles,
    ReleaseProblem,
    Verification,
    end_record_problems,
    verify_release,
)
from segpipe.store.create_only import is_s3, object_sha256
from segpipe.store import keys

SHA256_HEX = 64
FOLDER = "(folder)"


@dataclass(frozen=True)
class FolderVerification:
    problems: list[ReleaseProblem]
    objects_checked: int  # objects and parts hashed against the marker
    archive: Verification | None  # the ZIPs' own checks, read together; None when one could not be opened
    parts: int = 0  # shared parts the marker lists


def access_problem(fs: fsspec.AbstractFileSystem, exc: PermissionError, action: str = "read") -> str:
    """What a refused read (or write: `action`) means and what to check, for the store at hand."""
    if is_s3(fs):
        return (f"access denied ({exc}): check the credentials segpipe uses (AWS_ACCESS_KEY_ID and "
                f"AWS_SECRET_ACCESS_KEY, or AWS_PROFILE), SEGPIPE_S3_ENDPOINT_URL, and that they may {action} this bucket")
    return f"permission denied ({exc}): check that the user running segpipe may {action} it"


def verify_release_folder(fs: fsspec.AbstractFileSystem, path: str, mask_sample: int = 64) -> FolderVerification:
    """The release in `path` (`.../releases/<dataset>/<version>`): its marker names this dataset and
    version, every object it lists (and every shared part, in `../parts/`) matches its SHA-256, no
    other object is there, and its ZIP, read together with its parts, passes verify_release."""
    fs.invalidate_cache(path)  # listings cached earlier in this process would hide a changed object
    marker, problems = _read_marker(fs, path)
    if marker is None:
        return FolderVerification(problems, 0, None)
    dataset, version = path.rstrip("/").rsplit("/", 2)[-2:]
    for field, expected in (("dataset", dataset), ("version", version)):
        if marker.get(field) != expected:
            problems.append(ReleaseProblem(keys.RELEASE_MARKER, f"{field} is {marker.get(field)!r}, but the folder is "
                                                                f"{expected!r}: the release was moved or renamed"))
    files, parts = marker["files"], marker.get("parts", {})
    for name, expected in sorted(files.items()):
        problems += _object_problems(fs, f"{path}/{name}", name, expected)
    for name in sorted(_object_names(fs, path, problems) - set(files) - {keys.RELEASE_MARKER}):
        problems.append(ReleaseProblem(name, f"not listed in {keys.RELEASE_MARKER}: not part of the release"))
    for name, recorded in sorted(parts.items()):
        problems += _object_problems(fs, part_path(path, name), part_label(name), recorded["sha256"])
    archive_name = keys.archive_name(dataset, version)
    if archive_name not in files:
        problems.append(ReleaseProblem(archive_name, f"not listed in {keys.RELEASE_MARKER}: the release has no ZIP"))
        return FolderVerification(problems, len(files) + len(parts), None)
    labelled = [(archive_name, f"{path}/{archive_name}"), *((part_label(n), part_path(path, n)) for n in sorted(parts))]
    with contextlib.ExitStack() as opened:
        archives = []
        for label, key in labelled:
            try:
                f = opened.enter_context(fs.open(key, "rb"))
                problems += [ReleaseProblem(f"{label}: {p.member}", p.problem) for p in end_record_problems(f)]
                f.seek(0)
                archives.append((label, opened.enter_context(zipfile.ZipFile(f))))
            except FileNotFoundError:
                return FolderVerification(problems, len(files) + len(parts), None)  # reported above as missing
            except PermissionError as exc:
                problems.append(ReleaseProblem(label, access_problem(fs, exc)))
                return FolderVerification(problems, len(files) + len(parts), None)
            except (OSError, zipfile.BadZipFile, ValueError) as exc:
                problems.append(ReleaseProblem(label, f"unreadable: {exc}"))
                return FolderVerification(problems, len(files) + len(parts), None)
        release = PartedFiles(archives)
        archive = verify_release(release, mask_sample)
        problems += [ReleaseProblem(_where(release, p.member, archive_name), p.problem) for p in archive.problems]
        problems += [ReleaseProblem(member, "held by two of the release's ZIPs") for member in release.duplicates]
        if keys.RELEASE_MEMBERS in files:
            problems += _member_index_problems(fs, f"{path}/{keys.RELEASE_MEMBERS}", release, archive_name)
    return FolderVerification(problems, len(files) + len(parts), archive, len(parts))


def part_path(version_path: str, name: str) -> str:
    """Where a version's shared part is: beside the version folders, in `parts/`."""
    return f"{version_path.rstrip('/').rsplit('/', 1)[0]}/{keys.PARTS_DIR}/{name}"


def part_label(name: str) -> str:
    return f"{keys.PARTS_DIR}/{name}"


def _where(release: PartedFiles, member: str, archive_name: str) -> str:
    """A problem's member, named with the ZIP that holds it."""
    return f"{release.holder(member) or archive_name}: {member}"


def _member_index_problems(fs: fsspec.AbstractFileSystem, key: str, release: PartedFiles,
                           archive_name: str) -> list[ReleaseProblem]:
    """members.parquet (whose bytes the marker vouched for above) must say where each file is:
    `segpipe pack` and the next build rely on it."""
    try:
        index = pl.read_parquet(io.BytesIO(fs.cat_file(key)))
    except (OSError, pl.exceptions.PolarsError) as exc:
        return [ReleaseProblem(keys.RELEASE_MEMBERS, f"unreadable: {exc}")]
    said = {path: part_label(part) if part else archive_name for path, part in index.select("path", "part").iter_rows()}
    found = {name: release.holder(name) for name in release.namelist()}
    if said == found:
        return []
    wrong = sorted(path for path in set(said) | set(found) if said.get(path) != found.get(path))
    return [ReleaseProblem(keys.RELEASE_MEMBERS, f"places {len(wrong)} files elsewhere than the release's ZIPs hold "
                                                 f"them, e.g. {wrong[0]}: in {said.get(wrong[0])}, found in "
                                                 f"{found.get(wrong[0])}")]


def _read_marker(fs: fsspec.AbstractFileSystem, path: str) -> tuple[dict | None, list[ReleaseProblem]]:
    marker_path = f"{path}/{keys.RELEASE_MARKER}"
    try:
        marker = orjson.loads(fs.cat_file(marker_path))
    except FileNotFoundError:
        return None, [ReleaseProblem(keys.RELEASE_MARKER, "missing: not a committed release folder (expected "
                                                          ".../releases/<dataset>/<version>/ holding it)")]
    except PermissionError as exc:
        return None, [ReleaseProblem(keys.RELEASE_MARKER, access_problem(fs, exc))]
    except (OSError, orjson.JSONDecodeError) as exc:
        return None, [ReleaseProblem(keys.RELEASE_MARKER, f"unreadable: {exc}")]
    files = marker.get("files") if isinstance(marker, dict) else None
    if not isinstance(files, dict) or not all(isinstance(d, str) and len(d) == SHA256_HEX for d in files.values()):
        return None, [ReleaseProblem(keys.RELEASE_MARKER, "has no 'files' object of name -> SHA-256: the objects "
                                                          "cannot be checked")]
    parts = marker.get("parts", {})
    if not isinstance(parts, dict) or not all(
            isinstance(p, dict) and isinstance(p.get("sha256"), str) and len(p["sha256"]) == SHA256_HEX
            and isinstance(p.get("size"), int) for p in parts.values()):
        return None, [ReleaseProblem(keys.RELEASE_MARKER, "its 'parts' is not an object of part name -> SHA-256 and "
                                                          "size: the parts cannot be checked")]
    return marker, []


def _object_names(fs: fsspec.AbstractFileSystem, path: str, problems: list[ReleaseProblem]) -> set[str]:
    """The names of the objects in the folder; a listing that fails is a problem, and nothing is unlisted."""
    try:
        return {p.rstrip("/").rsplit("/", 1)[-1] for p in fs.ls(path, detail=False)}
    except PermissionError as exc:
        problems.append(ReleaseProblem(FOLDER, f"cannot be listed, {access_problem(fs, exc)}"))
    except OSError as exc:
        problems.append(ReleaseProblem(FOLDER, f"cannot be listed: {exc}"))
    return set()


def _object_problems(fs: fsspec.AbstractFileSystem, key: str, name: str, expected: str) -> list[ReleaseProblem]:
    try:
        found = object_sha256(fs, key)
    except FileNotFoundError:
        return [ReleaseProblem(name, f"listed in {keys.RELEASE_MARKER} but missing")]
    except PermissionError as exc:
        return [ReleaseProblem(name, access_problem(fs, exc))]
    except OSError as exc:
        return [ReleaseProblem(name, f"unreadable: {exc}")]
    if found != expected:
        return [ReleaseProblem(name, f"SHA-256 is {found}, {keys.RELEASE_MARKER} says {expected}: the object changed "
                                     "after it was published; restore it from a copy that matches")]
    return []
