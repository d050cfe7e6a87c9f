"""Checking a published release folder: every object against its `_RELEASE.json`, and the ZIP on its own.

The ZIP's own checks (its SHA256SUMS, manifest and meta.json) cannot see a change to the objects
beside it, nor one to the ZIP's bytes that leaves its members intact; the marker's SHA-256 of
each object can. Every problem names the object (or the ZIP member) and what is wrong, and an
object that cannot be read because access is refused says so, rather than looking missing.
"""

from dataclasses import dataclass

import fsspec
import orjson

from segpipe.core.release.verify import ReleaseProblem, Verification, verify_release_file
from segpipe.store.create_only import is_s3, object_sha256
from segpipe.store import keys

SHA256_HEX = 64
FOLDER = "(folder)"


@dataclass(frozen=True)
class FolderVerification:
    problems: list[ReleaseProblem]
    objects_checked: int  # objects hashed against the marker
    archive: Verification | None  # the ZIP's own checks; None when it could not be opened


def access_problem(fs: fsspec.AbstractFileSystem, exc: PermissionError, action: str = "read") -> str:
    """What a refused read (or write: `action`) means and what to check, for the store at hand."""
    if is_s3(fs):
        return (f"access denied ({exc}): check the credentials segpipe uses (AWS_ACCESS_KEY_ID and "
                f"AWS_SECRET_ACCESS_KEY, or AWS_PROFILE), SEGPIPE_S3_ENDPOINT_URL, and that they may {action} this bucket")
    return f"permission denied ({exc}): check that the user running segpipe may {action} it"


def verify_release_folder(fs: fsspec.AbstractFileSystem, path: str, mask_sample: int = 64) -> FolderVerification:
    """The release in `path` (`.../releases/<dataset>/<version>`): its marker names this dataset and
    version, every object it lists matches its SHA-256, no other object is there, and its ZIP passes
    verify_release_file."""
    fs.invalidate_cache(path)  # listings cached earlier in this process would hide a changed object
    marker, problems = _read_marker(fs, path)
    if marker is None:
        return FolderVerification(problems, 0, None)
    dataset, version = path.rstrip("/").rsplit("/", 2)[-2:]
    for field, expected in (("dataset", dataset), ("version", version)):
        if marker.get(field) != expected:
            problems.append(ReleaseProblem(keys.RELEASE_MARKER, f"{field} is {marker.get(field)!r}, but the folder is "
                                                                f"{expected!r}: the release was moved or renamed"))
    files = marker["files"]
    for name, expected in sorted(files.items()):
        problems += _object_problems(fs, f"{path}/{name}", name, expected)
    for name in sorted(_object_names(fs, path, problems) - set(files) - {keys.RELEASE_MARKER}):
        problems.append(ReleaseProblem(name, f"not listed in {keys.RELEASE_MARKER}: not part of the release"))
    archive_name = keys.archive_name(dataset, version)
    if archive_name not in files:
        problems.append(ReleaseProblem(archive_name, f"not listed in {keys.RELEASE_MARKER}: the release has no ZIP"))
        return FolderVerification(problems, len(files), None)
    try:
        with fs.open(f"{path}/{archive_name}", "rb") as f:
            archive = verify_release_file(f, mask_sample)
    except FileNotFoundError:
        return FolderVerification(problems, len(files), None)  # reported above as missing
    except PermissionError as exc:
        return FolderVerification([*problems, ReleaseProblem(archive_name, access_problem(fs, exc))], len(files), None)
    except OSError as exc:
        return FolderVerification([*problems, ReleaseProblem(archive_name, f"unreadable: {exc}")], len(files), None)
    problems += [ReleaseProblem(f"{archive_name}: {p.member}", p.problem) for p in archive.problems]
    return FolderVerification(problems, len(files), archive)


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
