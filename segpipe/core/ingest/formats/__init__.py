"""Annotation format readers, by the name a batch manifest declares, and detection when it declares none."""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from segpipe.core.shared.errors import InputError
from segpipe.core.shared.quarantine_rules import AMBIGUOUS_FORMAT, ANNOTATIONS_MISSING, UNKNOWN_FORMAT
from segpipe.core.ingest.formats.annotation import AnnotatedImage, BoxMask, Shape
from segpipe.core.ingest.formats.cityscapes import CITYSCAPES
from segpipe.core.ingest.formats.cityscapes_pngs import CITYSCAPES_PNGS
from segpipe.core.ingest.formats.coco import COCO_INSTANCES
from segpipe.core.ingest.formats.coco_panoptic import COCO_PANOPTIC
from segpipe.core.ingest.formats.coco_results import COCO_RESULTS
from segpipe.core.ingest.formats.cvat import CVAT_IMAGES
from segpipe.core.ingest.formats.cvat_video import CVAT_VIDEO
from segpipe.core.ingest.formats.labelme import LABELME
from segpipe.core.ingest.formats.mask_folders import ADE20K, IMAGE_MASK_FOLDERS, VOC_SEGMENTATION
from segpipe.core.ingest.formats.reader import EVIDENCE_FILES, EVIDENCE_IMAGES, FormatReader, ReaderOptions
from segpipe.core.ingest.image_lookup import ImageIndex

READERS: dict[str, FormatReader] = {
    reader.name: reader
    for reader in (
        CVAT_IMAGES, CVAT_VIDEO, COCO_INSTANCES, COCO_PANOPTIC, COCO_RESULTS, CITYSCAPES, CITYSCAPES_PNGS, LABELME, VOC_SEGMENTATION, ADE20K, IMAGE_MASK_FOLDERS,
    )
}


@dataclass(frozen=True)
class FormatChoice:
    """The reader for a batch, the annotation files it reads, why it was chosen, the files other
    formats claimed, and the companions (file -> why it is not read) the claiming formats' tools
    write beside their annotations: ingest lists the last two as unused rather than taking their
    PNGs for images."""

    reader: FormatReader
    files: list[str]
    reason: str
    passed_over: dict[str, list[str]] = field(default_factory=dict)
    companions: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class _Claim:
    """The files one format would read, and a few batch images they name or pair with."""

    reader: FormatReader
    files: list[str]
    images: list[str]

    @property
    def strength(self) -> tuple[bool, bool]:
        """Naming images the batch holds counts first, reading content rather than names second."""
        return bool(self.images), self.reader.claims_by_content

    def evidence(self) -> str:
        examples = ", ".join(repr(image) for image in self.images)
        if self.images and self.reader.claims_by_content:
            return f"reads files that name images the batch holds ({examples})"
        if self.images:
            return f"only pairs files with images by their names ({examples})"
        if self.reader.claims_by_content:
            return "reads files whose content is in its format, but they name no image the batch holds"
        return "only matches file names, and no image of the batch pairs with them"


def formats_help() -> str:
    """One line per format: its name and the files it accepts."""
    return "\n".join(f"  {reader.name}: {reader.accepts}" for reader in READERS.values())


def select_reader(
    names: Sequence[str], head: Callable[[str], bytes], declared: str | None, origin: str,
    images: ImageIndex | None = None, images_dir: str = "images",
) -> FormatChoice:
    """The reader for a batch: the declared format, else the format whose claim has the strongest
    evidence. Files no format claims never count. When several formats claim files, a claim whose
    files name images the batch holds beats one whose files do not, and at equal footing a claim
    read from the files' content beats one judged by file names alone: LabelMe JSONs that name
    their images beat the VOC masks labelme2voc wrote beside them, a COCO JSON beats PNGs that
    only sit in an ADE20K-like folder. Claims still equal are an error that says what each rests on
    and how to declare a format; so is no claim at all."""
    if declared is not None and declared not in READERS:
        raise InputError(UNKNOWN_FORMAT, f"{origin}: format {declared!r} is not one of {sorted(READERS)}")
    claims = {reader.name: files for reader in READERS.values() if (files := reader.annotation_files(names, head))}
    if declared is not None:
        return _declared(declared, claims, names, origin)
    if not claims:
        raise InputError(UNKNOWN_FORMAT, (
            f"{origin}: no reader recognizes the files of this batch; declare \"format\" in batch.json. "
            f"Formats and the files they accept:\n{formats_help()}"))
    if len(claims) == 1:
        [(name, files)] = claims.items()
        return FormatChoice(READERS[name], files, f"{name} is the only format whose files the batch holds",
                            companions=_companions(name, claims, names))
    index = images if images is not None else ImageIndex(names)
    weighed = [_weigh(READERS[name], files, head, index, images_dir) for name, files in claims.items()]
    best = max(claim.strength for claim in weighed)
    leaders = [claim for claim in weighed if claim.strength == best]
    if len(leaders) > 1:
        detail = "; ".join(f"{claim.reader.name} would read {claim.files[:3]} and {claim.evidence()}"
                           for claim in sorted(leaders, key=lambda c: c.reader.name))
        raise InputError(AMBIGUOUS_FORMAT, (
            f"{origin}: several formats match equally ({detail}); declare \"format\" in batch.json to choose one"))
    [winner] = leaders
    others = sorted((claim for claim in weighed if claim is not winner), key=lambda c: c.reader.name)
    reason = f"{winner.reader.name} {winner.evidence()}, while " + "; ".join(
        f"{claim.reader.name} {claim.evidence()}" for claim in others)
    return FormatChoice(winner.reader, winner.files, reason, _passed_over(winner.files, claims),
                        _companions(winner.reader.name, claims, names))


def _declared(declared: str, claims: dict[str, list[str]], names: Sequence[str], origin: str) -> FormatChoice:
    files = claims.get(declared, [])
    if not files:
        raise InputError(ANNOTATIONS_MISSING, (
            f"{origin}: declared format {declared!r} but no file of the batch is one it accepts "
            f"({READERS[declared].accepts})"))
    return FormatChoice(READERS[declared], files, f"{declared} is the declared format", _passed_over(files, claims),
                        _companions(declared, claims, names))


def _weigh(reader: FormatReader, files: list[str], head: Callable[[str], bytes], index: ImageIndex,
           images_dir: str) -> _Claim:
    """A claim with the images its first files name, each once (several files may annotate one
    image: a Cityscapes label PNG and its instance PNG), stopping once a few are found."""
    own = index.without(files)
    found: dict[str, None] = {}
    for name in files[:EVIDENCE_FILES]:
        found.update(dict.fromkeys(reader.images_named(name, head, own, images_dir)))
        if len(found) >= EVIDENCE_IMAGES:
            break
    return _Claim(reader, files, list(found)[:EVIDENCE_IMAGES])


def _companions(chosen: str, claims: dict[str, list[str]], names: Sequence[str]) -> dict[str, str]:
    """The companions of every claiming format's files, with why each is not read (a passed-over
    format's also saying that the batch is read as another), less any file a format claims."""
    claimed = {file for files in claims.values() for file in files}
    found: dict[str, str] = {}
    for name in sorted(claims, key=lambda name: name != chosen):  # the chosen format's reasons first
        for file, why in READERS[name].companions(names, claims[name]).items():
            if file not in claimed:
                found.setdefault(file, why if name == chosen else f"{why}; and the batch is read as {chosen}, not {name}")
    return found


def _passed_over(chosen: list[str], claims: dict[str, list[str]]) -> dict[str, list[str]]:
    """What every other format claimed, less the chosen reader's own files."""
    taken = set(chosen)
    return {name: kept for name, files in claims.items() if (kept := [f for f in files if f not in taken])}


__all__ = [
    "READERS", "AnnotatedImage", "BoxMask", "FormatChoice", "FormatReader", "ReaderOptions", "Shape", "formats_help",
    "select_reader",
]
