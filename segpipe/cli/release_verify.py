"""`segpipe verify`: a lone release ZIP, or a whole release folder, checked; every problem is one line.

A folder (`.../releases/<dataset>/<version>`, a path or a URL) is checked object by object
against its `_RELEASE.json` as well as through its ZIP; a lone ZIP only against itself. A refused
read is reported as an access problem with what to check, never as a missing file.
"""

from dataclasses import dataclass

from segpipe.core.release.verify import verify_release_file
from segpipe.environment import current_environment
from segpipe.io.locations import open_location
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
    if kind == "directory":
        folder = verify_release_folder(fs, path, mask_sample)
        archive = folder.archive
        zip_summary = "" if archive is None else (
            f"; its ZIP: {archive.files_checked} files match SHA256SUMS, {archive.images} images in index.csv match "
            f"the manifest schema and meta.json, {masks_decoded(archive.masks_decoded, archive.images)}")
        return VerifyReport([f"{p.member}: {p.problem}" for p in folder.problems],
                            f"{folder.objects_checked} objects match _RELEASE.json{zip_summary}")
    try:
        with fs.open(path, "rb") as f:
            result = verify_release_file(f, mask_sample)
    except PermissionError as exc:
        return VerifyReport([f"{url}: {access_problem(fs, exc)}"], "")
    return VerifyReport([f"{p.member}: {p.problem}" for p in result.problems],
                        f"{result.files_checked} files match SHA256SUMS, {result.images} images in index.csv match "
                        f"the manifest schema and meta.json, {masks_decoded(result.masks_decoded, result.images)}")


def masks_decoded(decoded: int, images: int) -> str:
    """How many of the release's masks were decoded, and why not all (the --mask-sample limit)."""
    if decoded == images:
        return f"all {images} masks decoded"
    return f"{decoded} of {images} masks decoded: an even sample over the manifest, as --mask-sample asks"
