"""Finding the image an annotation names, one way for every reader.

Exports seldom keep their images where the annotation's path says: CVAT writes `images/` or
`images/<subset>/`, COCO exporters `images/`, `images/<subset>/`, `<subset>/`, `JPEGImages/`,
`data/` or beside the JSON, LabelMe writes absolute paths of the annotator's machine. So a lookup
tries, in order:

1. the path the annotation names, resolved against the folder it is relative to, when it stays
   inside the batch (an absolute path or one that climbs out is never followed);
2. the places the reader's tools write images, with the path's tail and then its base name;
3. a file with the same base name anywhere in the batch, when exactly one exists; several are an
   `image_ambiguous` error listing them.

Extensions compare case-insensitively (`a.JPG` is `a.jpg`); a name without an extension (CVAT
video frames, mask stems) may match any PNG or JPEG. Where no file has the exact name, names compare
in Unicode NFC: macOS writes `café.png` decomposed (NFD) while annotation tools write it composed,
and the two look the same to whoever reads "not in the batch". The index is built once per batch
from the listing the source already holds, so no lookup lists files.
"""

import copy
import posixpath
import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from segpipe.core.shared.errors import InputError
from segpipe.core.shared.quarantine_rules import IMAGE_AMBIGUOUS, IMAGE_MISSING, UNSAFE_PATH

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
MAX_LISTED = 10
_DRIVE = re.compile(r"[A-Za-z]:")  # C:/data, and C:data, which Windows resolves against C:'s current folder


@dataclass(frozen=True)
class ImageLookup:
    """Where an annotation's image is: `file_name` is the batch path found, or, when `error` says why
    none was, the path the annotation names (its base name beside the annotation when that path
    leaves the batch)."""

    file_name: str
    error: InputError | None = None

    @property
    def found(self) -> bool:
        return self.error is None


def inside_batch(folder: str, path: str) -> str | None:
    """`path` as an annotation writes it (backslashes are separators), resolved against a folder of
    the batch; None when it is absolute, has a drive letter or climbs out of the batch."""
    slashed = path.replace("\\", "/")
    if slashed.startswith("/") or _DRIVE.match(slashed):
        return None
    resolved = posixpath.normpath(f"{folder}/{slashed}" if folder else slashed)
    return None if resolved in (".", "..") or resolved.startswith("../") else resolved


def base_name(path: str) -> str:
    """The last component of a path written with either separator."""
    return path.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]


def _split(path: str) -> tuple[str, str]:
    """(path without its extension, the extension in lower case), the extension "" when it has none."""
    stem, suffix = posixpath.splitext(path)
    return (stem, suffix.lower()) if suffix else (path, "")


def _composed(text: str) -> str:
    """The NFC form, under which names that differ only in how accents are encoded are one name."""
    return unicodedata.normalize("NFC", text)


def _join(*parts: str) -> str:
    return "/".join(part.strip("/") for part in parts if part.strip("/"))


def _candidates(reference: str, exact: str | None, name: str, places: Sequence[str]) -> Iterator[str]:
    """The exact path, then each place with the reference's tail and with its base name, each once
    and made only when the one before is not found: most images are where the annotation says."""
    if exact is not None:
        yield exact
    tail = inside_batch("", reference)
    seen = {exact, None}
    for place in places:
        for candidate in (tail and _join(place, tail), _join(place, name)):
            if candidate not in seen:
                seen.add(candidate)
                yield candidate


class ImageIndex:
    """The batch's files, indexed for lookups: every name (readable or refused, so a refused image is
    found and reported as refused), and the PNG and JPEG files by path and by base name, without
    their extension.

    `without(files)` is the same index with some files (a reader's own annotation files, such as
    mask PNGs that share their image's stem) never returned.
    """

    def __init__(self, names: Iterable[str]) -> None:
        self._names: frozenset[str] = frozenset(names)
        self._excluded: frozenset[str] = frozenset()
        by_stem: dict[str, list[str]] = defaultdict(list)
        by_base: dict[str, list[str]] = defaultdict(list)
        for name in sorted(self._names):
            stem, suffix = _split(name)
            if suffix in IMAGE_SUFFIXES:
                by_stem[_composed(stem)].append(name)
                by_base[_composed(stem.rsplit("/", 1)[-1])].append(name)
        self._by_stem, self._by_base = dict(by_stem), dict(by_base)

    def without(self, files: Iterable[str]) -> "ImageIndex":
        """A view that never returns `files`; the index itself is shared, not rebuilt."""
        view = copy.copy(self)
        view._excluded = self._excluded | frozenset(files)
        return view

    def _holds(self, name: str) -> bool:
        return name in self._names and name not in self._excluded

    def find(self, reference: str, where: str, base: str = "", places: Sequence[str] = (),
             default_suffix: str = "", any_suffix: bool = False) -> ImageLookup:
        """The image `reference` names, relative to the folder `base`, tried as the module says.

        `places` are batch folders where the reader's tools write images. With `any_suffix`, the
        reference is a name without extension (a CVAT frame, a mask's stem) that matches any PNG or
        JPEG, and `default_suffix` completes it when nothing is found. `where` starts every
        message: the annotation file, and the image when the file annotates many.
        """
        exact = inside_batch(base, reference)
        name = base_name(reference)
        if name in ("", ".", ".."):  # names a folder, never a file: nothing to look for by name
            return ImageLookup(reference, InputError(IMAGE_MISSING if exact is not None else UNSAFE_PATH, (
                f"{where}: image path {reference!r} does not name a file")))
        candidates: list[str] = []
        for candidate in _candidates(reference, exact, name, places):
            matches = self._matches(candidate, any_suffix)
            if matches:
                return self._one(matches, reference, where, candidate)
            candidates.append(candidate)
        expected = (exact if exact is not None else _join(base, name)) + (default_suffix if any_suffix else "")
        anywhere = self._anywhere(name, any_suffix)
        if anywhere:
            return self._one(anywhere, reference, where, expected)
        if exact is None:
            return ImageLookup(expected, InputError(UNSAFE_PATH, (
                f"{where}: image path {reference!r} does not name a file inside the batch, and no file of the batch "
                f"is named {name!r}")))
        shown = [f"{candidate}.*" if any_suffix else candidate for candidate in candidates[:MAX_LISTED]]
        looked = ", ".join(map(repr, shown)) + (", ..." if len(candidates) > MAX_LISTED else "")
        return ImageLookup(expected, InputError(IMAGE_MISSING, (
            f"{where}: image {reference!r} is not in the batch (looked at {looked}, and for a file named {name!r} "
            "anywhere)")))

    def namesakes(self, stem: str) -> list[str]:
        """The images whose path without extension is `stem` (a LabelMe JSON's image beside it)."""
        return [name for name in self._by_stem.get(_composed(stem), ()) if name not in self._excluded]

    def _matches(self, candidate: str, any_suffix: bool) -> list[str]:
        """The file at `candidate`: itself, else the images there whose extension differs only in
        case, or, with `any_suffix`, every image with that path before its extension."""
        if not any_suffix and self._holds(candidate):
            return [candidate]
        stem, suffix = (candidate, "") if any_suffix else _split(candidate)
        return [path for path in self._by_stem.get(_composed(stem), ())
                if path not in self._excluded and (any_suffix or _split(path)[1] == suffix)]

    def _anywhere(self, name: str, any_suffix: bool) -> list[str]:
        stem, suffix = (name, "") if any_suffix else _split(name)
        return [path for path in self._by_base.get(_composed(stem), ())
                if path not in self._excluded and (any_suffix or _split(path)[1] == suffix)]

    def _one(self, matches: list[str], reference: str, where: str, expected: str) -> ImageLookup:
        """The single match, or an image_ambiguous error listing the candidates."""
        if len(matches) == 1:
            return ImageLookup(matches[0])
        listed = ", ".join(repr(m) for m in matches[:MAX_LISTED]) + (", ..." if len(matches) > MAX_LISTED else "")
        return ImageLookup(expected, InputError(IMAGE_AMBIGUOUS, (
            f"{where}: image {reference!r} could be any of {len(matches)} files of the batch ({listed})")))
