"""`segpipe verify`: a lone release ZIP, a whole release folder, or an unzipped release, checked;
every problem is one line.

A folder (`.../releases/<dataset>/<version>`, a path or a URL) is checked object by object
against its `_RELEASE.json`, its shared parts too, as well as through its ZIPs read together; a
lone ZIP only against itself; a local folder with SHA256SUMS and no `_RELEASE.json` (what
`segpipe fetch` writes, or any unzipped release) file by file. A refused read is reported as an
access problem with what to check, never as a missing file.
"""

from dataclasses import dataclass
from pathlib import Path

from fsspec.implementations.local import LocalFileSystem

from segpipe.core.release.layout import SHA256SUMS
from segpipe.core.release.verify import FolderFiles, Verification, verify_release, verify_release_file
from segpipe.environment import current_environment
from segpipe.io.locations import open_location
from segpipe.store.keys import RELEASE_MARKER
from segpipe.store.release_check import access_problem, verify_release_folder


@dataclass(frozen=True)
class VerifyReport:
    problems: list[str]  # "<object or member>: <what is wrong>"
    summary: str  # what was checked, for the OK line


def verify_target(url: str, mask_sample: int) -> VerifyReport:
    fs, path = open_location(url, current_environment().s3_endpoint_url)
    try:
        kind = fs.info(path)["type"]
    except FileNotFoundError:
        return VerifyReport([f"{url}: no such release ZIP or release folder"], "")
    except PermissionError as exc:
        return VerifyReport([f"{url}: {access_problem(fs, exc)}"], "")
    if kind == "directory" and _unzipped(fs, path):
        result = verify_release(FolderFiles(Path(path)), mask_sample)
        return VerifyReport([f"{p.member}: {p.problem}" for p in result.problems], _zip_summary(result))
    if kind == "directory":
        folder = verify_release_folder(fs, path, mask_sample)
        archive = folder.archive
        zips = f"its ZIP and {folder.parts} parts" if folder.parts else "its ZIP"
        zip_summary = "" if archive is None else f"; {zips}: {_zip_summary(archive)}"
        return VerifyReport([f"{p.member}: {p.problem}" for p in folder.problems],
                            f"{folder.objects_checked} objects match _RELEASE.json{zip_summary}")
    try:
        with fs.open(path, "rb") as f:
            result = verify_release_file(f, mask_sample)
    except PermissionError as exc:
        return VerifyReport([f"{url}: {access_problem(fs, exc)}"], "")
    return VerifyReport([f"{p.member}: {p.problem}" for p in result.problems], _zip_summary(result))


def _zip_summary(result: Verification) -> str:
    return (f"{result.files_checked} files match SHA256SUMS, {result.images} images in index.csv match the manifest "
            f"schema and meta.json, {masks_decoded(result.masks_decoded, result.images)}")


def masks_decoded(decoded: int, images: int) -> str:
    """How many of the release's masks were decoded, and why not all (the --mask-sample limit)."""
    if decoded == images:
        return f"all {images} masks decoded"
    return f"{decoded} of {images} masks decoded: an even sample over the manifest, as --mask-sample asks"


def _unzipped(fs, path: str) -> bool:
    """A local folder holding an unzipped release rather than a store's release folder."""
    folder = Path(fs._strip_protocol(path))
    return isinstance(fs, LocalFileSystem) and (folder / SHA256SUMS).is_file() and not (folder / RELEASE_MARKER).exists()
